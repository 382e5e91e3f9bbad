"""Retention of audit records per regulator profile, legal holds, and restriction of personal data.

- Audit records are kept `audit.retention.years[profile]` years (cn 20, us 6, eu 5-7);
  records of AML rules the longer of that and `aml_years`.
- A legal hold on a client keeps all of that client's records past their period.
- Personal data in records older than `purpose_days` has served its purpose: it is
  restricted (masked in `audit show`, unmasked only with a logged reason), never deleted
  while the retention period runs (PIPL art. 47).
- Records past retention and not held are reported as due for disposal. The audit tables
  refuse DELETE, so disposal is a deliberate database-owner procedure (docs/audit.md);
  `steward audit retention --apply` records what was due in a `retention.applied` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.audit.log import EVENT, Event, append
from engine.config.base import Config
from engine import clock
from engine.errors import StewardError

PERSONAL_FACTS = ("name", "birth_date", "age", "phone", "email")
RESTRICTED = "[restricted: personal data past its purpose]"


class LegalHold(SQLModel, table=True):
    __tablename__ = "legal_hold"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, index=True)
    reason: str
    placed_by: str = Field(max_length=64)
    placed_at: datetime
    released_by: str | None = Field(default=None, max_length=64)
    released_at: datetime | None = None


HOLD = LegalHold.__table__  # type: ignore[attr-defined]


def years(cfg: Config, rule_id: str | None = None) -> int:
    r = cfg.audit.retention
    base = r.years.get(cfg.regulator_profile, max(r.years.values()))
    return max(base, r.aml_years) if rule_id in r.aml_rules else base


def _years_before(d: date, n: int) -> datetime:
    try:
        day = d.replace(year=d.year - n)
    except ValueError:  # 29 February
        day = d.replace(year=d.year - n, day=28)
    return datetime.combine(day, time.min, timezone.utc)


def place_hold(conn: Connection, client_id: str, reason: str, actor: str) -> int:
    if not reason.strip():
        raise StewardError("--reason: a legal hold names its reason (case or request reference)")
    res = conn.execute(HOLD.insert().values(client_id=client_id, reason=reason, placed_by=actor,
                                            placed_at=clock.now()).returning(HOLD.c.id))
    hold_id = int(res.scalar_one())
    append(conn, [Event("hold.placed", actor=actor, client_id=client_id, data={"hold": hold_id, "reason": reason})])
    return hold_id


def release_hold(conn: Connection, hold_id: int, actor: str) -> None:
    row = conn.execute(select(HOLD).where(HOLD.c.id == hold_id)).first()
    if row is None or row.released_at is not None:
        raise StewardError(f"no active legal hold with id {hold_id}; `steward audit retention` lists them")
    conn.execute(update(HOLD).where(HOLD.c.id == hold_id).values(released_by=actor, released_at=clock.now()))
    append(conn, [Event("hold.released", actor=actor, client_id=row.client_id, data={"hold": hold_id})])


def held_clients(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute(select(HOLD.c.client_id).where(HOLD.c.released_at.is_(None)))}


def is_restricted(at: datetime, today: date, cfg: Config) -> bool:
    return (today - at.date()).days > cfg.audit.retention.purpose_days


def restrict(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data with personal data masked (for views of restricted records)."""
    out = dict(data)
    if isinstance(out.get("facts"), dict):
        out["facts"] = {k: (RESTRICTED if k in PERSONAL_FACTS and v is not None else v) for k, v in out["facts"].items()}
    for k in ("text", "subject"):
        if out.get(k) is not None:
            out[k] = RESTRICTED
    if isinstance(out.get("message"), dict):  # the words of a rule.fired event (one event per firing)
        out["message"] = restrict(out["message"])
    return out


@dataclass
class RetentionReport:
    profile: str
    years: int
    today: date
    events: int = 0
    restricted: int = 0
    """Events whose personal data is past its purpose (masked in views)."""
    due: int = 0
    """Events past retention and not under legal hold."""
    held: int = 0
    """Events past retention kept because of a legal hold."""
    holds: list[Any] = field(default_factory=list)


def report(conn: Connection, cfg: Config, today: date) -> RetentionReport:
    n = years(cfg)
    rep = RetentionReport(cfg.regulator_profile, n, today)
    c = EVENT.c
    rep.events = int(conn.execute(select(func.count()).select_from(EVENT)).scalar() or 0)
    purpose = datetime.combine(today, time.min, timezone.utc).timestamp() - cfg.audit.retention.purpose_days * 86400
    rep.restricted = int(conn.execute(select(func.count()).where(
        c.at < datetime.fromtimestamp(purpose, timezone.utc))).scalar() or 0)
    held = held_clients(conn)
    aml = cfg.audit.retention.aml_rules
    groups = [("all", n)] if not aml else [("aml", years(cfg, aml[0])), ("other", n)]
    for kind, yrs in groups:
        q = select(c.client_id, func.count()).where(c.at < _years_before(today, yrs)).group_by(c.client_id)
        if kind == "aml":
            q = q.where(c.rule_id.in_(aml))
        elif kind == "other":
            q = q.where(c.rule_id.not_in(aml) | c.rule_id.is_(None))
        for client_id, count in conn.execute(q):
            if client_id in held:
                rep.held += count
            else:
                rep.due += count
    rep.holds = list(conn.execute(select(HOLD).where(HOLD.c.released_at.is_(None)).order_by(HOLD.c.id)))
    return rep


def apply(conn: Connection, cfg: Config, today: date, actor: str) -> RetentionReport:
    """Record the retention run: what is restricted, due and held (disposal is an owner procedure)."""
    rep = report(conn, cfg, today)
    append(conn, [Event("retention.applied", actor=actor, as_of=today, data={
        "profile": rep.profile, "years": rep.years, "purpose_days": cfg.audit.retention.purpose_days,
        "events": rep.events, "restricted": rep.restricted, "due_for_disposal": rep.due, "kept_by_hold": rep.held,
        "holds": [h.id for h in rep.holds]})])
    return rep

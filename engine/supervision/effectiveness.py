"""`steward report effectiveness`: per rule, what fired, what went out, and what came of it.

- fired: firings recorded (any status), in the period
- sent: messages with a provider receipt; tasks: call tasks created
- held: messages that waited at least once (quiet hours, deferral)
- dropped: firings stopped by a policy stage or dropped/dead in the outbox
- outcomes: tasks closed with an outcome (a contact row), or, for messages, clients who
  traded within 30 days after the message (reactivation)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from engine.models import Trade
from engine.dispatch.outbox import OUTBOX
from engine.pipeline.recording import FIRING

TRADE = Trade.__table__  # type: ignore[attr-defined]
STOPPED = ("suppressed", "dropped", "dead", "deferred")
OUTCOME_DAYS = 30


@dataclass(frozen=True)
class RuleEffect:
    rule_id: str
    fired: int
    sent: int
    held: int
    dropped: int
    outcomes: int

    @property
    def outcome_rate(self) -> float | None:
        return self.outcomes / self.sent if self.sent else None


def _count(conn: Connection, q: object) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in conn.execute(q)}  # type: ignore[call-overload]


def effectiveness(conn: Connection, start: date, end: date) -> list[RuleEffect]:
    in_period = and_(FIRING.c.as_of >= start, FIRING.c.as_of <= end)
    by_rule = select(FIRING.c.rule_id, func.count()).where(in_period).group_by(FIRING.c.rule_id)
    fired = _count(conn, by_rule)
    dropped = _count(conn, by_rule.where(FIRING.c.status.in_(STOPPED)))
    tasks = _count(conn, by_rule.where(FIRING.c.action_type == "task", FIRING.c.status.not_in(STOPPED)))
    done = _count(conn, by_rule.where(FIRING.c.action_type == "task", FIRING.c.status == "done"))
    joined = OUTBOX.join(FIRING, FIRING.c.id == OUTBOX.c.firing_id)
    ob = select(FIRING.c.rule_id, func.count()).select_from(joined).where(in_period, OUTBOX.c.kind == "client").group_by(FIRING.c.rule_id)
    sent = _count(conn, ob.where(OUTBOX.c.state == "sent"))
    held = {r: n for r, n in _held(conn, start, end).items()}
    traded = select(TRADE.c.client_id).where(TRADE.c.client_id == OUTBOX.c.client_id, TRADE.c.trade_date >= func.date(OUTBOX.c.sent_at),
                                              TRADE.c.trade_date <= func.date(OUTBOX.c.sent_at) + timedelta(days=OUTCOME_DAYS)) \
        if conn.dialect.name == "postgresql" else \
        select(TRADE.c.client_id).where(TRADE.c.client_id == OUTBOX.c.client_id, TRADE.c.trade_date >= func.date(OUTBOX.c.sent_at),
                                        TRADE.c.trade_date <= func.date(OUTBOX.c.sent_at, f"+{OUTCOME_DAYS} days"))
    reactivated = _count(conn, ob.where(OUTBOX.c.state == "sent", traded.exists()))
    out = []
    for rid in sorted(fired):
        is_task = rid in tasks or rid in done
        out.append(RuleEffect(rid, fired[rid], tasks.get(rid, 0) if is_task else sent.get(rid, 0), held.get(rid, 0),
                              dropped.get(rid, 0), done.get(rid, 0) if is_task else reactivated.get(rid, 0)))
    return out


def _held(conn: Connection, start: date, end: date) -> dict[str, int]:
    q = (select(FIRING.c.rule_id, OUTBOX.c.trail).select_from(OUTBOX.join(FIRING, FIRING.c.id == OUTBOX.c.firing_id))
         .where(FIRING.c.as_of >= start, FIRING.c.as_of <= end))
    counts: dict[str, int] = {}
    for rid, trail in conn.execute(q):
        if any(e.get("event") == "held" for e in trail or []):
            counts[rid] = counts.get(rid, 0) + 1
    return counts

"""The outbox: messages enqueued with their firing, then claimed, sent and marked.

Enqueue is a record hook: the outbox row commits in the same transaction as its firing.
Delivery steps, each committed before the next:

1. claim     state queued -> sending (phase claimed), lease_until = now + lease
2. transmit  phase -> transmitting, then the channel call with the idempotency key
3. record    state -> sent with the provider's receipt (or retry / dead letter)

A crash anywhere leaves a `sending` row whose lease runs out; the next dispatcher
takes it over. If it crashed before `transmitting`, nothing went out. If it crashed
while transmitting, the resend carries the same idempotency key: an idempotent
channel (the HTTP gateway) answers with the first receipt and delivers nothing new.
E-mail cannot promise that (see engine.dispatch.channels.email): `dispatch.email.on_uncertain`
chooses between resending with the same Message-ID and parking the row as `uncertain`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.engine import Connection

from engine.audit import log as auditlog
from engine.dispatch import channels
from engine.dispatch import contact_policy
from engine.dispatch.channels import ChannelError, OutMessage, PermanentError
from engine.config.base import Config
from engine.errors import StewardError
from engine.language.rendering import mask
from engine.dispatch.tables import Outbox
from engine import clock
from engine.db import encode_rows, write_rows
from engine.models import Client
from engine.pipeline.policy import StageContext
from engine.pipeline.recording import FIRING

OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]
StepHook = Callable[[str, int], None]
"""Called after each committed step ('claimed', 'transmitting', 'sent', 'recorded') with the row id."""


auditlog.register_event_name(
    "outbox.changed", "an outbox message changed state outside a send: held or dropped at send time, parked "
    "uncertain, requeued from the dead letters, confirmed sent by hand, dropped on an opt-out")
DISPATCH_ACTOR = "dispatch"


def _audit(conn: Connection, name: str, row: Any, status: str, now: datetime, actor: str = DISPATCH_ACTOR,
           reason: str | None = None, **data: Any) -> None:
    """The audit event of one outbox state change, in the transaction that makes the change."""
    auditlog.append(conn, [auditlog.Event(
        name, actor=actor, client_id=row.client_id, rule_id=row.rule_id, rule_hash=row.rule_hash,
        firing_id=row.firing_id, channel=row.channel, status=status, reason=reason, at=now,
        data={"outbox_id": row.id, "kind": row.kind, **data})])


def utcnow() -> datetime:
    return clock.now()


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone columns; they were stored as UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def idempotency_key(rule_id: str, rule_hash: str, client_id: str, window: date | str) -> str:
    """One key per rule version, client and contact window (the firing day)."""
    return hashlib.sha256(f"{rule_id}\0{rule_hash}\0{client_id}\0{window}".encode()).hexdigest()


def event(at: datetime, name: str, reason: str | None = None, detail: str = "") -> dict[str, Any]:
    return {"at": at.isoformat(), "event": name, "reason": reason, "detail": detail}


# ------------------------------------------------------------------ enqueue


def _outbox_row(ctx: StageContext, r: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    if r["action_type"] != "message" or r["status"] not in ("pending", "deferred"):
        return None
    bypass, outside = ctx.cache.get(contact_policy.RULES, {}).get(r["rule_id"], (False, "hold"))
    row = {
        "idempotency_key": idempotency_key(r["rule_id"], r["rule_hash"], r["client_id"], r["as_of"]),
        "kind": "client", "firing_id": r.get("id"), "rule_id": r["rule_id"], "rule_hash": r["rule_hash"],
        "client_id": r["client_id"], "rule_class": r["rule_class"], "channel": r["channel"], "locale": r["locale"],
        "subject": r["subject"], "body": r["message"], "bypass_window": bypass, "outside_window": outside,
        "state": "queued", "reason": None, "not_before": None, "next_attempt_at": now, "attempts": 0,
        "trail": [event(now, "queued")], "created_at": now, "updated_at": now,
    }
    hold = ctx.cache.get(contact_policy.HOLDS, {}).get((r["rule_id"], r["client_id"]))
    if r["status"] == "deferred":
        hold = (contact_policy.next_open(ctx.cfg, contact_policy.now_of(ctx), days_later=1), r["reason"])
    if hold is not None:
        until, reason = hold
        row.update(state="held", reason=reason, not_before=until, next_attempt_at=None,
                   trail=[event(now, "held", reason, f"until {until.isoformat()}")])
    return row


def enqueue(conn: Connection, ctx: StageContext, rows: list[dict[str, Any]]) -> None:
    """Record hook: one outbox row per message firing, in the firing's transaction."""
    prepare_enqueue(conn, ctx, rows)(conn)


def prepare_enqueue(conn: Connection, ctx: StageContext, rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    """`enqueue` in two steps: the outbox rows are built now, before the firings have ids (and
    before the batch takes the write lock); the returned step inserts them once they have."""
    now = contact_policy.now_of(ctx)  # the same clock the contact-window stage used
    pairs = [(r, o) for r, o in ((r, _outbox_row(ctx, r, now)) for r in rows) if o is not None]
    if not pairs:
        return _nothing
    names, data = encode_rows(conn, OUTBOX, [o for _, o in pairs], skip=("firing_id",))

    def write(c: Connection) -> None:
        write_rows(c, OUTBOX, ["firing_id", *names], [(r["id"], *t) for (r, _), t in zip(pairs, data)])
    return write


def _nothing(conn: Connection) -> None:
    return None



# ------------------------------------------------------------------ claim


@dataclass
class Claimed:
    id: int
    prev_phase: str | None
    """The phase the row had when it was claimed: 'transmitting' means an earlier send may have gone out."""
    token: int = 0
    """Fencing token of this claim: every later step of this dispatcher requires the row to still carry it."""


Fence = tuple[str, int]
"""(worker, claim token): a step commits only while the row is still this claim's."""


def _claimable(now: datetime) -> Any:
    return or_(and_(OUTBOX.c.state == "queued", OUTBOX.c.next_attempt_at <= now),
               and_(OUTBOX.c.state == "sending", OUTBOX.c.lease_until < now))


def _claim_values(now: datetime, worker: str, lease: float) -> dict[str, Any]:
    return {"state": "sending", "phase": "claimed", "claimed_by": worker, "attempts": OUTBOX.c.attempts + 1,
            "claim_token": OUTBOX.c.claim_token + 1, "lease_until": now + timedelta(seconds=lease), "updated_at": now}


def claim(engine: Engine, cfg: Config, now: datetime, worker: str, limit: int | None = None) -> list[Claimed]:
    """Claim due rows for this worker. PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: conditional UPDATE."""
    limit = limit or cfg.dispatch.retry.batch_size
    lease = cfg.dispatch.retry.lease_seconds
    pick = select(OUTBOX.c.id, OUTBOX.c.phase, OUTBOX.c.claim_token).where(_claimable(now)).order_by(OUTBOX.c.id).limit(limit)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            rows = list(conn.execute(pick.with_for_update(skip_locked=True)))
            if rows:
                conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows]))
                             .values(**_claim_values(now, worker, lease)))
            return [Claimed(r.id, r.phase, r.claim_token + 1) for r in rows]
        claimed = []
        for r in list(conn.execute(pick)):
            res = conn.execute(update(OUTBOX).where(OUTBOX.c.id == r.id, OUTBOX.c.claim_token == r.claim_token, _claimable(now))
                               .values(**_claim_values(now, worker, lease)))
            if res.rowcount == 1:
                claimed.append(Claimed(r.id, r.phase, r.claim_token + 1))
        return claimed


# ------------------------------------------------------------------ send and record


def _append(conn: Connection, row_id: int, values: dict[str, Any], ev: dict[str, Any], fence: Fence | None = None) -> bool:
    """Apply one step; with a fence, only while the row is still that claim's (atomic: one conditional UPDATE)."""
    trail = conn.execute(select(OUTBOX.c.trail).where(OUTBOX.c.id == row_id)).scalar_one()
    q = update(OUTBOX).where(OUTBOX.c.id == row_id)
    if fence is not None:
        q = q.where(OUTBOX.c.claimed_by == fence[0], OUTBOX.c.claim_token == fence[1], OUTBOX.c.state == "sending")
    res = conn.execute(q.values(**values, trail=[*trail, ev], updated_at=ev_time(ev)))
    return res.rowcount == 1


def ev_time(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["at"])


def _set_firing(conn: Connection, firing_id: int | None, status: str, reason: str | None = None) -> None:
    if firing_id is not None:
        conn.execute(update(FIRING).where(FIRING.c.id == firing_id).values(status=status, reason=reason))


def _own_firing(row: Any) -> int | None:
    """The firing whose status follows this row: a client message's own (an escalation notice
    points at the task it escalates, whose status is the advisor's, not the notice's)."""
    return int(row.firing_id) if row.kind == "client" and row.firing_id is not None else None


def _recipient(conn: Connection, row: Any) -> str | None:
    if row.recipient:
        return str(row.recipient)
    c = conn.execute(select(CLIENT.c.phone, CLIENT.c.email).where(CLIENT.c.id == row.client_id)).first()
    if c is None:
        return None
    address = c.email if row.channel == "email" else c.phone
    return str(address) if address else None


@dataclass
class DispatchSummary:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0
    dropped: int = 0
    uncertain: int = 0
    released: int = 0
    lost: int = 0
    """Rows another dispatcher took over (our lease ran out) before we transmitted: skipped, not sent."""
    errors: list[str] = field(default_factory=list)


def _backoff(cfg: Config, attempts: int) -> timedelta:
    r = cfg.dispatch.retry
    return timedelta(seconds=min(r.backoff_seconds * 2 ** max(attempts - 1, 0), r.backoff_max_seconds))


def _fail(conn: Connection, cfg: Config, row: Any, e: ChannelError, now: datetime, worker: Fence, s: DispatchSummary) -> None:
    final = isinstance(e, PermanentError) or row.attempts >= cfg.dispatch.retry.max_attempts
    if final:
        reason = e.code if isinstance(e, PermanentError) else "RETRIES_EXHAUSTED"
        if _append(conn, row.id, {"state": "dead", "phase": None, "reason": reason, "last_error": str(e)},
                   event(now, "dead", reason, f"attempt {row.attempts}: {e}"), worker):
            _audit(conn, "send.attempted", row, "dead", now, reason=reason, attempt=row.attempts, error=str(e))
        _set_firing(conn, _own_firing(row), "dead", reason)
        s.dead += 1
        return
    when = now + _backoff(cfg, row.attempts)
    if _append(conn, row.id, {"state": "queued", "phase": None, "reason": e.code, "last_error": str(e), "next_attempt_at": when},
               event(now, "retry", e.code, f"attempt {row.attempts} failed: {e}; next at {when.isoformat()}"), worker):
        _audit(conn, "send.attempted", row, "retry", now, reason=e.code, attempt=row.attempts, error=str(e),
               next_attempt_at=when.isoformat())
    s.retried += 1


def _client_zone(conn: Connection, cfg: Config, client_id: str | None) -> Any:
    """The client's own zone (windows are their local time), else the branch's."""
    from engine.facts.client_time import zone
    from engine.models import Client

    name = conn.execute(select(Client.__table__.c.timezone).where(Client.__table__.c.id == client_id)).scalar()  # type: ignore[attr-defined]
    return zone(cfg, name)


def _gate(conn: Connection, cfg: Config, row: Any, now: datetime, worker: Fence, s: DispatchSummary) -> bool:
    """Send-time checks: contact window, recipient. False when the row was held or dropped."""
    tz = _client_zone(conn, cfg, row.client_id) if row.kind == "client" else cfg.tz
    if row.kind == "client" and not row.bypass_window and not contact_policy.in_window(cfg, now, tz):
        if row.outside_window == "drop":
            if _append(conn, row.id, {"state": "dropped", "phase": None, "reason": "WINDOW_CLOSED"},
                       event(now, "dropped", "WINDOW_CLOSED", "outside the contact window at send time"), worker):
                _audit(conn, "outbox.changed", row, "dropped", now, reason="WINDOW_CLOSED")
            _set_firing(conn, _own_firing(row), "dropped", "WINDOW_CLOSED")
            s.dropped += 1
            return False
        until = contact_policy.next_open(cfg, now, tz=tz)
        if _append(conn, row.id, {"state": "held", "phase": None, "reason": "WINDOW_QUIET_HOURS", "not_before": until,
                                  "attempts": row.attempts - 1},
                   event(now, "held", "WINDOW_QUIET_HOURS", f"outside the contact window at send time; until {until.isoformat()}"), worker):
            _audit(conn, "outbox.changed", row, "held", now, reason="WINDOW_QUIET_HOURS", until=until.isoformat())
        s.held += 1
        return False
    return True


def _process(engine: Engine, cfg: Config, c: Claimed, now: datetime, me: str,
             on_step: StepHook | None, s: DispatchSummary, clock: Callable[[], datetime]) -> None:
    worker: Fence = (me, c.token)
    with engine.begin() as conn:
        row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == c.id)).one()
        if row.claim_token != c.token or row.claimed_by != me or row.state != "sending":
            s.lost += 1  # another dispatcher took the row over after our lease ran out: it is theirs now
            return
        if not _gate(conn, cfg, row, now, worker, s):
            return
        channel = channels.get(row.channel, cfg.dispatch) if row.channel in channels.names() else None
        if channel is not None and c.prev_phase == "transmitting" and not channel.idempotent \
                and cfg.dispatch.email.on_uncertain == "review":
            if _append(conn, row.id, {"state": "uncertain", "phase": None, "reason": "SEND_UNCERTAIN"},
                       event(now, "uncertain", "SEND_UNCERTAIN", "crashed during a non-idempotent send; check the mailbox "
                             "for the Message-ID, then `steward dispatch resolve`"), worker):
                _audit(conn, "outbox.changed", row, "uncertain", now, reason="SEND_UNCERTAIN")
            s.uncertain += 1
            return
        to = _recipient(conn, row)
        if not to:
            _fail(conn, cfg, row, PermanentError("NO_ADDRESS", f"client {row.client_id} has no {row.channel} address"), now, worker, s)
            return
        # Fencing: the ownership check and the lease extension are one conditional UPDATE, committed
        # right before the channel call; a dispatcher whose claim was taken over stops here.
        lease_until = clock() + timedelta(seconds=cfg.dispatch.retry.lease_seconds)
        if not _append(conn, row.id, {"phase": "transmitting", "recipient": to, "lease_until": lease_until},
                       event(now, "transmitting", None, to), worker):
            s.lost += 1
            return
    if on_step:
        on_step("transmitting", c.id)
    msg = OutMessage(row.idempotency_key, row.channel, to, row.subject, row.body or "", row.locale, row.client_id)
    try:
        receipt = channels.get(row.channel, cfg.dispatch).send(msg)
    except ChannelError as e:
        with engine.begin() as conn:
            _fail(conn, cfg, row, e, now, worker, s)
        return
    if on_step:
        on_step("sent", c.id)
    with engine.begin() as conn:
        done = _append(conn, row.id, {"state": "sent", "phase": None, "receipt": receipt, "sent_at": utcnow(), "reason": None},
                       event(utcnow(), "sent", None, receipt), worker)
        if done:
            _set_firing(conn, _own_firing(row), "sent")
            _audit(conn, "send.attempted", row, "sent", now, attempt=row.attempts, recipient=mask(to))
            _audit(conn, "send.receipt", row, "sent", now, receipt=receipt)
    s.sent += done
    if on_step:
        on_step("recorded", c.id)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dispatch_once(engine: Engine, cfg: Config, now: datetime | None = None, worker: str | None = None,
                  on_step: StepHook | None = None) -> DispatchSummary:
    """Claim the due rows and send each; safe to run in several processes at once."""
    now = now or utcnow()
    worker = worker or worker_id()
    s = DispatchSummary()
    started = time.monotonic()

    def clock() -> datetime:  # the pass's time, advanced by the real time spent: leases count from each step
        return now + timedelta(seconds=time.monotonic() - started)

    for c in claim(engine, cfg, now, worker):
        s.claimed += 1
        if on_step:
            on_step("claimed", c.id)
        _process(engine, cfg, c, now, worker, on_step, s, clock)
    return s


# ------------------------------------------------------------------ operator actions


def _require_actor(actor: str | None) -> str:
    if not actor:
        raise StewardError("name the acting user (--as or STEWARD_USER): the audit log records who changed the message")
    return actor


def retry_dead(conn: Connection, row_id: int, now: datetime | None = None, actor: str | None = None) -> bool:
    """Put a dead or uncertain message back in the queue (a supervisor's decision, recorded with who)."""
    actor = _require_actor(actor)
    now = now or utcnow()
    row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == row_id)).first()
    if row is None or row.state not in ("dead", "uncertain"):
        return False
    _append(conn, row_id, {"state": "queued", "attempts": 0, "next_attempt_at": now, "reason": None},
            event(now, "requeued", None, f"from {row.state} by {actor}"))
    _audit(conn, "outbox.changed", row, "requeued", now, actor=actor, previous=row.state)
    return True


def mark_sent_by_hand(conn: Connection, row_id: int, receipt: str, now: datetime | None = None,
                      actor: str | None = None) -> bool:
    """Close an `uncertain` row after finding the message in the mailbox."""
    actor = _require_actor(actor)
    now = now or utcnow()
    row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == row_id)).first()
    if row is None or row.state != "uncertain":
        return False
    _append(conn, row_id, {"state": "sent", "receipt": receipt, "sent_at": now}, event(now, "sent", None, f"confirmed by {actor}: {receipt}"))
    _set_firing(conn, _own_firing(row), "sent")
    _audit(conn, "outbox.changed", row, "sent", now, actor=actor, receipt=receipt)
    _audit(conn, "send.receipt", row, "sent", now, actor=actor, receipt=receipt, by_hand=True)
    return True


def drop_marketing(conn: Connection, client_ids: list[str], reason: str, now: datetime | None = None) -> int:
    """Stop every unsent marketing message of these clients (an opt-out takes effect at once)."""
    now = now or utcnow()
    rows = list(conn.execute(select(OUTBOX).where(
        OUTBOX.c.client_id.in_(client_ids), OUTBOX.c.rule_class == "marketing", OUTBOX.c.state.in_(("held", "queued")))))
    for r in rows:
        _append(conn, r.id, {"state": "dropped", "reason": reason}, event(now, "dropped", reason, "client opted out"))
        _set_firing(conn, r.firing_id, "dropped", reason)
        _audit(conn, "outbox.changed", r, "dropped", now, reason=reason)
    return len(rows)

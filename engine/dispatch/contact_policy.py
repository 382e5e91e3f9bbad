"""Contact-policy stages: consent and opt-out, do-not-call, contact window, frequency caps,
arbitration. Registered by engine.composition through engine.pipeline.policy.register_stage.

Each stage writes its verdict into the decision's trail with a reason code. The window
stage keeps a message live when it only has to wait: it records a `held` step and tells
the outbox (through `ctx.cache`) when the window opens; the dispatcher enforces the
window again at send time. The clock is `ctx.cache["now"]` when set (releases, tests),
else the wall clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from engine.config.base import Config
from engine.config.dispatch import parse_period
from engine.facts import client_time
from engine.dispatch.tables import DoNotCall
from engine import clock
from engine.models import Client, Consent
from engine.pipeline.policy import Decision, StageContext, register_stage, unindexed
from engine.pipeline.recording import FIRING

CONSENT = Consent.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]
DNC = DoNotCall.__table__  # type: ignore[attr-defined]
HOLDS = "contact_policy.holds"
"""ctx.cache key: {(rule_id, client_id): (not_before, reason)} for the outbox."""
RULES = "contact_policy.rules"
"""ctx.cache key: {rule_id: (bypass_window, outside_window)} for the outbox."""
EXCLUDE = "contact_policy.exclude_firing"
"""ctx.cache key: a firing id left out of the counts (the held message being re-checked)."""
COUNTED = ("pending", "open", "sent")
"""Firing statuses that count as a contact made or on its way (caps, arbitration)."""


def now_of(ctx: StageContext) -> datetime:
    now = ctx.cache.get("now")
    return now if isinstance(now, datetime) else clock.now()


# Windows are the client's local time: engine.facts.client_time (the branch zone when a client has none).
window_of, in_window, next_open = client_time.window_of, client_time.in_window, client_time.next_open


def client_zone(cfg: Config, d: Decision) -> ZoneInfo:
    return client_time.zone(cfg, d.match.facts.get("timezone"))


def bypasses_window(d: Decision) -> bool:
    spec = d.match.rule.spec
    return spec.urgent and spec.rule_class == "service"


def _is_message(d: Decision) -> bool:
    return bool(d.match.rule.spec.action.type == "message")


def _cid(d: Decision) -> str:
    return str(d.match.facts["client_id"])


@dataclass(frozen=True)
class _Consents:
    """One client's consent rows, as the consent stage asks them."""

    marketing_out: tuple[str, Any] | None
    """(channel, recorded_at) of the first marketing opt-out, by channel."""
    opted_out: frozenset[tuple[str, str]]
    """(channel, purpose) pairs opted out of."""
    marketing_granted: frozenset[str]
    """Channels with a granted marketing consent."""


_NO_CONSENTS = _Consents(None, frozenset(), frozenset())


def _consents(rows: list[tuple[str, str, str, Any]]) -> _Consents:
    out: tuple[str, Any] | None = None
    opted_out: set[tuple[str, str]] = set()
    granted: set[str] = set()
    for c, p, st, at in rows:  # one pass (once per client of the book), rows by channel and purpose
        if st == "opted_out":
            opted_out.add((c, p))
            if out is None and p == "marketing":
                out = (c, at)
        elif st == "granted" and p == "marketing":
            granted.add(c)
    return _Consents(out, frozenset(opted_out), frozenset(granted))


@dataclass
class ConsentStage:
    name: str = "consent"

    def prepare(self, ctx: StageContext) -> None:
        rows: dict[str, list[tuple[str, str, str, Any]]] = defaultdict(list)
        if ctx.conn is not None:
            q = (select(CONSENT.c.client_id, CONSENT.c.channel, CONSENT.c.purpose, CONSENT.c.status, CONSENT.c.recorded_at)
                 .where(ctx.in_batch(CONSENT.c.client_id))
                 .order_by(CONSENT.c.client_id, CONSENT.c.channel, CONSENT.c.purpose))
            for cid, channel, purpose, status, at in ctx.conn.execute(q).all():
                rows[cid].append((channel, purpose, status, at))
        ctx.cache[self.name] = {cid: _consents(r) for cid, r in rows.items()}

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        consents = ctx.cache[self.name]
        for d in decisions:
            if d.live:
                self._one(ctx.cfg, d, consents.get(_cid(d), _NO_CONSENTS))

    def _one(self, cfg: Config, d: Decision, c: _Consents) -> None:
        purpose, channel = d.match.rule.spec.rule_class, d.match.rule.spec.action.channel
        if purpose == "marketing" and c.marketing_out:
            d.block(self.name, "suppressed", "OPTED_OUT_MARKETING",
                    f"opted out of marketing on {c.marketing_out[0]} at {c.marketing_out[1]}: stops marketing on every channel")
        elif (channel, purpose) in c.opted_out:
            d.block(self.name, "suppressed", "OPTED_OUT_CHANNEL", f"opted out of {purpose} on {channel}")
        elif purpose == "marketing" and cfg.dispatch.require_marketing_consent and channel not in c.marketing_granted:
            d.block(self.name, "suppressed", "CONSENT_MISSING", f"no marketing consent on {channel} (opt-in required)")
        else:
            d.passed(self.name)


@dataclass
class DoNotCallStage:
    name: str = "do_not_call"

    def prepare(self, ctx: StageContext) -> None:
        ctx.cache[self.name] = None  # loaded for the whole batch when a task first needs it (`_listed`)

    def _listed(self, ctx: StageContext) -> set[str]:
        listed = ctx.cache.get(self.name)
        if listed is None:
            listed = set()
            if ctx.conn is not None:
                q = (select(CLIENT.c.id).join(DNC, DNC.c.phone == CLIENT.c.phone)
                     .where(ctx.in_batch(CLIENT.c.id)))
                listed = {r[0] for r in ctx.conn.execute(q)}
            ctx.cache[self.name] = listed
        return listed

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        for d in decisions:
            if not d.live or d.match.rule.spec.action.type != "task":
                continue
            listed = self._listed(ctx)
            if _cid(d) not in listed:
                d.passed(self.name)
            elif d.match.rule.spec.rule_class == "marketing" or ctx.cfg.dispatch.do_not_call_blocks_service:
                d.block(self.name, "suppressed", "DO_NOT_CALL", "the client's phone is on the do-not-call list")
            else:
                d.passed(self.name, "on the do-not-call list; service call allowed (dispatch.do_not_call_blocks_service)")


@dataclass
class ContactWindowStage:
    name: str = "contact_window"

    def prepare(self, ctx: StageContext) -> None:
        ctx.cache.setdefault(HOLDS, {})
        ctx.cache.setdefault(RULES, {})

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        now = now_of(ctx)
        for d in decisions:
            if not d.live or not _is_message(d):
                continue
            spec = d.match.rule.spec
            ctx.cache[RULES][spec.id] = (bypasses_window(d), spec.outside_window)
            w, tz = window_of(ctx.cfg), client_zone(ctx.cfg, d)
            if in_window(ctx.cfg, now, tz):
                d.passed(self.name)
            elif bypasses_window(d):
                d.passed(self.name, f"WINDOW_BYPASS_URGENT: urgent service notice sent outside {w.start:%H:%M}-{w.end:%H:%M}")
            elif spec.outside_window == "drop":
                d.block(self.name, "dropped", "WINDOW_CLOSED", f"outside {w.start:%H:%M}-{w.end:%H:%M} and the rule says drop")
            else:
                until = next_open(ctx.cfg, now, tz=tz)
                ctx.cache[HOLDS][(spec.id, _cid(d))] = (until, "WINDOW_QUIET_HOURS")
                d.trail.append({"stage": self.name, "outcome": "held", "reason": "WINDOW_QUIET_HOURS",
                                "detail": f"held until {until.isoformat()}"})


def _counts(ctx: StageContext, since: Any, until: Any, channel: str | None, extra: Any = None) -> Counter[str]:
    if ctx.conn is None:
        return Counter()
    day = unindexed(FIRING.c.as_of)  # the batch's client range is the index to use (engine.pipeline.policy.unindexed)
    conds = [ctx.in_batch(FIRING.c.client_id), FIRING.c.rule_class == "marketing",
             unindexed(FIRING.c.status).in_(COUNTED), day >= since, day <= until]
    if channel:
        conds.append(FIRING.c.channel == channel)
    if extra is not None:
        conds.append(extra)
    if ctx.cache.get(EXCLUDE) is not None:
        conds.append(FIRING.c.id != ctx.cache[EXCLUDE])
    q = select(FIRING.c.client_id, func.count()).where(and_(*conds)).group_by(FIRING.c.client_id)
    return Counter({r[0]: int(r[1]) for r in ctx.conn.execute(q)})


@dataclass
class FrequencyCapStage:
    name: str = "frequency_cap"

    def prepare(self, ctx: StageContext) -> None:
        ctx.cache[self.name] = None  # counted for the whole batch when a marketing firing first needs it (`_caps`)

    def _caps(self, ctx: StageContext) -> dict[str, Any]:
        out = ctx.cache.get(self.name)
        if out is None:
            out = {}
            for cap in ctx.cfg.dispatch.frequency_caps:
                days = max(parse_period(cap.period).days, 1)
                since = ctx.as_of - timedelta(days=days - 1)
                out[cap.channel] = (cap, _counts(ctx, since, ctx.as_of, cap.channel))
            ctx.cache[self.name] = out
        return out

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        taken: Counter[str] = Counter()
        for d in decisions:
            spec = d.match.rule.spec
            if not d.live or spec.rule_class != "marketing":
                continue
            caps = self._caps(ctx)
            if spec.action.channel not in caps:
                continue
            cap, counts = caps[spec.action.channel]
            used = counts.get(_cid(d), 0) + taken[cap.channel]
            if used >= cap.max:
                d.block(self.name, "dropped", "FREQUENCY_CAP",
                        f"{used} marketing {cap.channel} contact(s) within {cap.period} (max {cap.max})")
            else:
                taken[cap.channel] += 1
                d.passed(self.name, f"{used + 1} of {cap.max} within {cap.period}")


@dataclass
class ArbitrationStage:
    name: str = "arbitration"

    def prepare(self, ctx: StageContext) -> None:
        ctx.cache[self.name] = None  # counted for the whole batch when a marketing message first needs it

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        room = ctx.cfg.dispatch.max_marketing_per_day
        winner: str | None = None
        for d in decisions:  # highest priority first
            spec = d.match.rule.spec
            if not d.live or spec.rule_class != "marketing" or not _is_message(d):
                continue
            if ctx.cache.get(self.name) is None:
                ctx.cache[self.name] = _counts(ctx, ctx.as_of, ctx.as_of, None, FIRING.c.action_type == "message")
            already = ctx.cache[self.name].get(_cid(d), 0)
            if already < room:
                ctx.cache[self.name][_cid(d)] = already + 1
                winner = winner or spec.id
                d.passed(self.name)
                continue
            lost = f"{room} marketing message(s) already chosen for this client today" + (f" ({winner} first)" if winner else "")
            if spec.on_conflict == "drop":
                d.block(self.name, "dropped", "ARBITRATION_DROPPED", lost)
            else:
                d.block(self.name, "deferred", "ARBITRATION_DEFERRED", lost + "; deferred to the next day")


def register() -> None:
    """Called once by engine.composition.install()."""
    register_stage(ConsentStage(), 200)
    register_stage(DoNotCallStage(), 300)
    register_stage(ContactWindowStage(), 400)
    register_stage(FrequencyCapStage(), 500)
    register_stage(ArbitrationStage(), 600)


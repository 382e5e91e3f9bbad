"""Releasing held messages: each is re-checked against its rule before it may go.

A message held for quiet hours or deferred by arbitration is released when its time
comes only if the rule that fired is still loaded, enabled and unchanged, its condition
still holds on the client's current facts, and every policy stage passes it again.
Otherwise it is dropped with a reason code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine.dispatch import contact_policy
from engine.facts import base as facts_mod
from engine.config.base import Config
from engine.language.loading import RuleSet
from engine.pipeline.matching import EVAL_FAILED, Match, holds
from engine.models import Advisor
from engine.dispatch.outbox import OUTBOX, DispatchSummary, _append, _set_firing, aware, event, utcnow
from engine.pipeline.run import render_firing
from engine.pipeline.policy import Decision, StageContext, apply_all

ADVISOR = Advisor.__table__  # type: ignore[attr-defined]


def _drop(conn: Connection, row: Any, reason: str, detail: str, now: datetime) -> None:
    _append(conn, row.id, {"state": "dropped", "reason": reason}, event(now, "dropped", reason, detail))
    _set_firing(conn, row.firing_id, "dropped", reason)


def _advisors(conn: Connection, advisor_id: str | None) -> dict[str, dict[str, str]]:
    r = conn.execute(select(ADVISOR.c.id, ADVISOR.c.name).where(ADVISOR.c.id == advisor_id)).first()
    return {r.id: {"id": r.id, "name": r.name}} if r else {}


def _recheck(conn: Connection, cfg: Config, ruleset: RuleSet, row: Any, now: datetime) -> tuple[str, str, Decision | None]:
    """('ok', '', decision) or (reason, detail, None)."""
    rule = ruleset.get(row.rule_id)
    if rule is None or not rule.spec.enabled:
        return "RULE_GONE", f"rule {row.rule_id} is no longer loaded or enabled", None
    if rule.content_hash != row.rule_hash:
        return "RULE_CHANGED", f"rule {row.rule_id} changed since it fired; its new version decides next run", None
    today = now.astimezone(cfg.tz).date()
    f = facts_mod.facts_for(conn, cfg, today, row.client_id)
    if f is None:
        return "CLIENT_GONE", f"no client {row.client_id} as of {today}", None
    ok, error = holds(rule, f)
    if error:
        return EVAL_FAILED, error, None
    if not ok:
        return "CONDITION_GONE", f"the condition of {rule.id} no longer holds on {today}", None
    ctx = StageContext(conn, cfg, today, row.client_id, row.client_id,
                       cache={"now": now, contact_policy.EXCLUDE: row.firing_id})
    d = Decision(Match(rule, f))
    apply_all(ctx, [[d]])
    if not d.live:
        return d.reason or d.outcome, f"policy on release: {d.trail[-1]['detail'] if d.trail else ''}", None
    hold = ctx.cache.get(contact_policy.HOLDS, {}).get((rule.id, row.client_id))
    if hold is not None:
        return "HOLD", hold[0].isoformat(), d
    return "ok", "", d


def _release_one(conn: Connection, cfg: Config, ruleset: RuleSet, row: Any, now: datetime, s: DispatchSummary) -> None:
    verdict, detail, d = _recheck(conn, cfg, ruleset, row, now)
    if verdict == "HOLD":
        until = datetime.fromisoformat(detail)
        _append(conn, row.id, {"not_before": until, "reason": "WINDOW_QUIET_HOURS"},
                event(now, "held", "WINDOW_QUIET_HOURS", f"still outside the window; until {detail}"))
        s.held += 1
        return
    if d is None:
        _drop(conn, row, verdict, detail, now)
        s.dropped += 1
        return
    subject, body = row.subject, row.body
    if body is None:
        fr = render_firing(ruleset, d.match, _advisors(conn, d.match.facts.get("advisor_id")), now.astimezone(cfg.tz).date())
        if fr.error:
            _drop(conn, row, "RENDER_FAILED", fr.error, now)
            s.dropped += 1
            return
        subject, body = fr.subject, fr.message
    _append(conn, row.id, {"state": "queued", "reason": None, "next_attempt_at": now, "subject": subject, "body": body},
            event(now, "released", None, f"re-checked against {row.rule_id} ({row.rule_hash[:10]}): still applies"))
    _set_firing(conn, row.firing_id, "pending")
    s.released += 1


def release_due(engine: Engine, cfg: Config, ruleset: RuleSet, now: datetime | None = None) -> DispatchSummary:
    """Release (or drop) every held message whose time has come."""
    now = now or utcnow()
    s = DispatchSummary()
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(OUTBOX.c.id, OUTBOX.c.not_before).where(OUTBOX.c.state == "held"))
               if (aware(r.not_before) or now) <= now]
    for row_id in ids:
        with engine.begin() as conn:
            row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == row_id, OUTBOX.c.state == "held")).first()
            if row is not None:
                _release_one(conn, cfg, ruleset, row, now, s)
    return s

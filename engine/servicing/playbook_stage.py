"""Segment playbook (policy stage, order 150): which marketing reaches each segment.

DOMAIN.md gives each value x activity segment a service goal; `servicing.playbooks`
turns it into configuration. For a client in segment S, a live *marketing* firing
(message or task) is suppressed, with a reason code, when S's playbook

- switches marketing off (the dead segment: service notices only)  PLAYBOOK_SEGMENT_EXCLUDED
- does not list the rule (`rules: ["*"]` lists every rule)         PLAYBOOK_RULE_EXCLUDED
- does not list the rule's channel                                  PLAYBOOK_CHANNEL_EXCLUDED
- (any segment) the client's value quadrant does not use the        PLAYBOOK_QUADRANT_CHANNEL
  channel (`servicing.quadrant_channels`: give-up clients get no advisor's call), unless
  the rule carries a tag of `servicing.quadrant_exempt_tags` (retention, activation)
- saw a marketing firing within `cadence_days` (earlier days from   PLAYBOOK_CADENCE
  the firing log, today from the decisions already passed)

Service notices and service tasks always pass: a playbook shapes marketing, it never
stops a margin warning or a regulatory callback. A segment without a playbook, or a
client whose facts carry no segment, lets everything through. Without a database
(dry runs) the cadence only counts the day's own decisions.
"""

from __future__ import annotations

from datetime import date, timedelta
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from engine.pipeline.policy import Decision, StageContext, register_stage, unindexed
from engine.pipeline.recording import FIRING
from engine.config.servicing import SegmentPlaybook

NAME = "segment_playbook"
ORDER = 150
SEGMENT_EXCLUDED = "PLAYBOOK_SEGMENT_EXCLUDED"
RULE_EXCLUDED = "PLAYBOOK_RULE_EXCLUDED"
CHANNEL_EXCLUDED = "PLAYBOOK_CHANNEL_EXCLUDED"
CADENCE = "PLAYBOOK_CADENCE"
QUADRANT_CHANNEL = "PLAYBOOK_QUADRANT_CHANNEL"
REASONS = (SEGMENT_EXCLUDED, RULE_EXCLUDED, CHANNEL_EXCLUDED, QUADRANT_CHANNEL, CADENCE)
COUNTED = ("pending", "open", "sent", "done")
"""Firing statuses that count as marketing that reached (or is on its way to) the client."""
_LAST = f"{NAME}.last_marketing"


def exclusion(playbook: SegmentPlaybook, segment: str, rule_id: str, channel: str) -> tuple[str | None, str]:
    """(reason code or None when the playbook allows it, human detail) for one marketing firing."""
    if rule_id in playbook.exceptions:
        return None, f"segment {segment} playbook lets {rule_id} through (exceptions)"
    if not playbook.marketing:
        return SEGMENT_EXCLUDED, f"segment {segment}: service notices only (servicing.playbooks.{segment}.marketing)"
    if "*" not in playbook.rules and rule_id not in playbook.rules:
        return RULE_EXCLUDED, f"segment {segment} playbook does not list {rule_id} (rules: {', '.join(playbook.rules)})"
    if channel not in playbook.channels:
        allowed = ", ".join(playbook.channels) or "none"
        return CHANNEL_EXCLUDED, f"segment {segment} playbook does not use {channel} (channels: {allowed})"
    return None, f"segment {segment} playbook allows {rule_id} over {channel}"


def quadrant_exclusion(channels: Mapping[Any, tuple[str, ...]], quadrant: Any, channel: str,
                       detail: str) -> tuple[str | None, str]:
    """A marketing channel the client's value quadrant does not use (give-up clients: no advisor's call)."""
    allowed = channels.get(quadrant) if isinstance(quadrant, str) else None
    if allowed is None or channel in allowed:
        return None, detail
    return QUADRANT_CHANNEL, (f"value quadrant {quadrant} does not use {channel} (channels: {', '.join(allowed) or 'none'}; "
                              f"servicing.quadrant_channels.{quadrant})")


def _last_marketing(ctx: StageContext) -> dict[str, date]:
    """Client -> latest day with a counted marketing firing, within the longest cadence."""
    longest = max((p.cadence_days for p in ctx.cfg.servicing.playbooks.values()), default=0)
    if ctx.conn is None or longest == 0:
        return {}
    q = (select(FIRING.c.client_id, func.max(FIRING.c.as_of))
         .where(ctx.in_batch(FIRING.c.client_id), FIRING.c.rule_class == "marketing",  # by the client range
                unindexed(FIRING.c.status).in_(COUNTED), unindexed(FIRING.c.as_of) > ctx.as_of - timedelta(days=longest),
                unindexed(FIRING.c.as_of) <= ctx.as_of)
         .group_by(FIRING.c.client_id))
    return {r[0]: r[1] for r in ctx.conn.execute(q)}


class SegmentPlaybookStage:
    name = NAME

    def prepare(self, ctx: StageContext) -> None:
        ctx.cache.pop(_LAST, None)  # read for the whole batch when a marketing firing first needs it

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        for d in decisions:  # highest priority first: it wins the cadence slot
            spec, facts = d.match.rule.spec, d.match.facts
            if not d.live or spec.rule_class != "marketing":
                continue
            if _LAST not in ctx.cache:
                ctx.cache[_LAST] = _last_marketing(ctx)
            last: dict[str, date] = ctx.cache[_LAST]
            segment: str | None = facts.get("segment")
            playbook = ctx.cfg.servicing.playbooks.get(segment) if segment else None  # type: ignore[call-overload]
            reason, detail = None, ""
            if playbook is not None and segment is not None:
                reason, detail = exclusion(playbook, segment, spec.id, spec.action.channel)
            if reason is None and not set(spec.tags) & set(ctx.cfg.servicing.quadrant_exempt_tags):
                reason, detail = quadrant_exclusion(ctx.cfg.servicing.quadrant_channels, facts.get("value_quadrant"),
                                                    spec.action.channel, detail)
            if playbook is None or segment is None:
                if reason is not None:
                    d.block(NAME, "suppressed", reason, detail)
                continue
            if reason is None:
                reason, detail = self._cadence(ctx, playbook, segment, last.get(str(facts["client_id"])), detail)
            if reason is None:
                last[str(facts["client_id"])] = ctx.as_of
                d.passed(NAME, detail)
            else:
                d.block(NAME, "suppressed", reason, detail)

    @staticmethod
    def _cadence(ctx: StageContext, playbook: SegmentPlaybook, segment: Any, last: date | None,
                 detail: str) -> tuple[str | None, str]:
        n = playbook.cadence_days
        if n == 0 or last is None or (ctx.as_of - last).days >= n:
            return None, detail
        return CADENCE, (f"segment {segment}: marketing already on {last.isoformat()}, at most one per {n} days "
                         f"(servicing.playbooks.{segment}.cadence_days)")


def register() -> None:
    """Called once by engine.composition.install()."""
    register_stage(SegmentPlaybookStage(), ORDER)

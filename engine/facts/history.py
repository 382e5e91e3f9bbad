"""Fact providers: where a client stands in the servicing sequences, and account anniversaries.

The dormant activation sequence (tools tutorial, research share, advisor's visit) is read
back from what already happened, not kept as state: the firings of the sequence rules
that reached the client (or are on their way) and contacts imported from the firm's CRM
whose kind is a step's rule id, both since the client's latest trade. A trade restarts
the count, so the sequence stops once the client trades and starts again from the first
step if the client falls idle again.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, union_all

from engine.facts import festivals
from engine.facts.base import BOOL, NUMBER, STRING, FactContext, FactField, Facts, Params, ProviderSet
from engine.facts.playbook import next_session
from engine.facts.tables import ClientRecord
from engine.models import CashMovement, Contact, Firing

FIRING = Firing.__table__  # type: ignore[attr-defined]
CONTACT = Contact.__table__  # type: ignore[attr-defined]
RECORD = ClientRecord.__table__  # type: ignore[attr-defined]
MOVE = CashMovement.__table__  # type: ignore[attr-defined]
REACHED = ("sent", "delivered", "open", "done")
"""Firing statuses of a step that reached the client (a message sent, a task on the advisor's
list). A message still pending, held or deferred has not: else its own release from the
outbox would find its condition gone."""

PROVIDERS = ProviderSet()
"""The providers this module declares; engine.composition registers them."""


@PROVIDERS.provider(
    "servicing_sequence",
    FactField("activation_step", NUMBER, "service", "Steps of the dormant activation sequence (servicing.activation_sequence) that reached the client since the latest trade (or since opening): 0 none, 1 tools tutorial, 2 research share, 3 advisor's visit. Read from the sequence rules' firings that reached the client (a message sent or delivered, a task open or done) and from contacts whose kind is a step's rule id."),
    FactField("days_since_activation_step", NUMBER, "service", "Days since the latest step counted in activation_step; null when activation_step is 0."),
)
def _servicing_sequence(ctx: FactContext, batch: dict[str, Facts]) -> None:
    steps = ctx.cfg.servicing.activation_sequence
    rank = {rule_id: k + 1 for k, rule_id in enumerate(steps)}
    done: dict[str, list[tuple[str, date]]] = {}
    for cid, step, day in ctx.run(_sequence_steps, steps=list(steps)):
        done.setdefault(cid, []).append((step, day))
    for cid, f in batch.items():
        idle = f.get("days_since_last_trade")
        since = ctx.as_of - timedelta(days=idle) if idle is not None else f.get("opened_on")
        reached = [(rank[s], d) for s, d in done.get(cid, []) if since is None or d >= since]
        if not reached:
            f["activation_step"], f["days_since_activation_step"] = 0, None
            continue
        step, day = max(reached)
        f["activation_step"], f["days_since_activation_step"] = step, (ctx.as_of - day).days


def _sequence_steps(p: Params) -> Any:
    fired = (select(FIRING.c.client_id, FIRING.c.rule_id.label("step"), FIRING.c.as_of.label("day"))
             .where(FIRING.c.rule_id.in_(p.many("steps")), FIRING.c.status.in_(REACHED),
                    FIRING.c.as_of < p.as_of, p.in_batch(FIRING.c.client_id)))
    imported = (select(CONTACT.c.client_id, CONTACT.c.kind.label("step"), CONTACT.c.contacted_on.label("day"))
                .where(CONTACT.c.kind.in_(p.many("steps")), CONTACT.c.contacted_on < p.as_of,
                       p.in_batch(CONTACT.c.client_id)))
    both = union_all(fired, imported).subquery()
    return select(both.c.client_id, both.c.step, func.max(both.c.day)).group_by(both.c.client_id, both.c.step)


@PROVIDERS.provider(
    "anniversaries",
    FactField("account_years", NUMBER, "calendar", "Whole years since the account opened."),
    FactField("anniversary_due", BOOL, "calendar", "True when an account anniversary (one year or more) falls today or before the next trading day (a small occasion for maintenance clients)."),
)
def _anniversaries(ctx: FactContext, batch: dict[str, Facts]) -> None:
    nxt = next_session(ctx)
    for f in batch.values():
        opened = f.get("opened_on")
        if opened is None:
            f["account_years"], f["anniversary_due"] = None, False
            continue
        years = ctx.as_of.year - opened.year - ((ctx.as_of.month, ctx.as_of.day) < (opened.month, opened.day))
        nxt_anniv = festivals.next_birthday(opened, ctx.as_of)
        f["account_years"] = years
        f["anniversary_due"] = nxt_anniv.year > opened.year and (nxt_anniv == ctx.as_of or nxt_anniv < nxt)


@PROVIDERS.provider(
    "client_record",
    FactField("follow_up_due", BOOL, "service", "True when a follow-up planned in the client dynamic record (steward outcome --follow-up) is due on or before the evaluation date and not yet closed by a later reached call."),
    FactField("follow_up_days_overdue", NUMBER, "service", "Days since the earliest open follow-up fell due (0 on the day); null when none is due."),
    FactField("follow_up_need", STRING, "service", "What that follow-up is about (the need recorded with it)."),
    FactField("days_since_positive_outcome", NUMBER, "service", "Days since the latest call recorded with outcome positive (reached and satisfied); null if none."),
)
def _client_record(ctx: FactContext, batch: dict[str, Facts]) -> None:
    due: dict[str, tuple[date, str]] = {}
    for cid, day, text in ctx.run(_follow_ups):
        due.setdefault(cid, (day, text))
    positive = {cid: day for cid, day in ctx.run(_positive_outcomes)}
    for cid, f in batch.items():
        d = due.get(cid)
        f["follow_up_due"] = d is not None
        f["follow_up_days_overdue"] = (ctx.as_of - d[0]).days if d else None
        f["follow_up_need"] = d[1] if d else None
        p = positive.get(cid)
        f["days_since_positive_outcome"] = (ctx.as_of - p).days if p else None


def _follow_ups(p: Params) -> Any:
    return (select(RECORD.c.client_id, RECORD.c.due_on, RECORD.c.text)
            .where(RECORD.c.kind == "follow_up", RECORD.c.done_on.is_(None), RECORD.c.due_on <= p.as_of,
                   p.in_batch(RECORD.c.client_id))
            .order_by(RECORD.c.due_on, RECORD.c.id))


def _positive_outcomes(p: Params) -> Any:
    return (select(CONTACT.c.client_id, func.max(CONTACT.c.contacted_on))
            .where(CONTACT.c.outcome.like("positive%"), CONTACT.c.contacted_on <= p.as_of, p.in_batch(CONTACT.c.client_id))
            .group_by(CONTACT.c.client_id))


@PROVIDERS.provider(
    "winback",
    FactField("days_since_transfer_out", NUMBER, "activity", "Days since the latest transfer out to another firm; null if none."),
    FactField("winback_attempts", NUMBER, "service", "Firings of the win-back rules (servicing.winback_rules) since the latest transfer out that reached the client (sent, delivered, open or done)."),
    FactField("winback_declined", BOOL, "service", "True when a call since the latest transfer out was recorded as declined (the win-back stops)."),
    FactField("inflow_since_transfer_out", NUMBER, "activity", "Deposits since the latest transfer out, CNY (the win-back's outcome); null without a transfer out."),
)
def _winback(ctx: FactContext, batch: dict[str, Facts]) -> None:
    last_out = {cid: day for cid, day in ctx.run(_last_transfers_out)}
    attempts: dict[str, list[date]] = {}
    declined: dict[str, date] = {}
    inflows: dict[str, list[tuple[date, float]]] = {}
    if last_out:
        lo = min(last_out.values())
        for cid, day in ctx.run(_winback_attempts, since=lo, rules=list(ctx.cfg.servicing.winback_rules)):
            attempts.setdefault(cid, []).append(day)
        declined = {cid: day for cid, day in ctx.run(_declined_calls, since=lo)}
        for cid, day, amount in ctx.run(_deposits, since=lo):
            inflows.setdefault(cid, []).append((day, float(amount)))
    for cid, f in batch.items():
        out = last_out.get(cid)
        if out is None:
            f.update(days_since_transfer_out=None, winback_attempts=0, winback_declined=False,
                     inflow_since_transfer_out=None)
            continue
        f["days_since_transfer_out"] = (ctx.as_of - out).days
        f["winback_attempts"] = sum(1 for d in attempts.get(cid, []) if d >= out)
        f["winback_declined"] = cid in declined and declined[cid] >= out
        f["inflow_since_transfer_out"] = sum(a for d, a in inflows.get(cid, []) if d > out)


def _last_transfers_out(p: Params) -> Any:
    return (select(MOVE.c.client_id, func.max(MOVE.c.moved_on))
            .where(MOVE.c.kind == "transfer_out", MOVE.c.moved_on <= p.as_of, p.in_batch(MOVE.c.client_id))
            .group_by(MOVE.c.client_id))


def _winback_attempts(p: Params) -> Any:
    return (select(FIRING.c.client_id, FIRING.c.as_of)
            .where(FIRING.c.rule_id.in_(p.many("rules")), FIRING.c.status.in_(REACHED),
                   FIRING.c.as_of >= p.since, FIRING.c.as_of < p.as_of, p.in_batch(FIRING.c.client_id)))


def _declined_calls(p: Params) -> Any:
    return (select(CONTACT.c.client_id, func.max(CONTACT.c.contacted_on))
            .where(CONTACT.c.outcome.like("declined%"), CONTACT.c.contacted_on >= p.since,
                   CONTACT.c.contacted_on <= p.as_of, p.in_batch(CONTACT.c.client_id))
            .group_by(CONTACT.c.client_id))


def _deposits(p: Params) -> Any:
    return (select(MOVE.c.client_id, MOVE.c.moved_on, MOVE.c.amount)
            .where(MOVE.c.kind == "deposit", MOVE.c.moved_on >= p.since, MOVE.c.moved_on <= p.as_of,
                   p.in_batch(MOVE.c.client_id)))

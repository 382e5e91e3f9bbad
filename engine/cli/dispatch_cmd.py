"""`steward dispatch run|list|retry|resolve`, `steward outcome`, `steward dnc add|remove|list`,
`steward webhook`, `steward report effectiveness`."""

from __future__ import annotations

from datetime import date, timedelta

import typer
from rich.table import Table
from sqlalchemy import func, select

from engine import clock
from engine.cli import listing
from engine.cli.common import cfg, console, fail, open_db, parse_day, signed_in, user_errors
from engine.errors import StewardError

dispatch_app = typer.Typer(no_args_is_help=True)
dnc_app = typer.Typer(no_args_is_help=True)
report_app = typer.Typer(no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dispatch_app, name="dispatch", help="Send queued messages once; inspect and repair the outbox.")
    app.command("outcome")(outcome)
    app.add_typer(dnc_app, name="dnc", help="The do-not-call list.")
    app.command("webhook")(webhook)
    app.add_typer(report_app, name="report", help="Reports on what the rules achieved.")


@dispatch_app.command("run")
def run() -> None:
    """One dispatcher pass: release held messages that are due, then send what is queued.

    Example:

      steward dispatch run
    """
    from engine.dispatch.outbox import dispatch_once
    from engine.dispatch.release import release_due
    from scheduler.jobs import approved_rules

    with user_errors():
        c = cfg()
        eng = open_db(c)
        now = clock.now()
        r = release_due(eng, c, approved_rules(eng, c), now)  # held messages re-check against approved rules
        s = dispatch_once(eng, c, now)
    console.print(f"released {r.released}, dropped on re-check {r.dropped}; claimed {s.claimed}: sent {s.sent}, "
                  f"retrying {s.retried}, dead {s.dead}, held for quiet hours {s.held + r.held}, uncertain {s.uncertain}"
                  + (f"; {s.lost} taken over by another dispatcher after this one's lease ran out (not sent here)" if s.lost else ""))


@dispatch_app.command("list")
def list_(state_: str = typer.Option(None, "--state", help="held, queued, sending, sent, dead, dropped, uncertain (any case)"),
          limit: int = listing.limit_option(), page: int = listing.page_option()) -> None:
    """Outbox rows, newest first, with counts per state (dead letters: --state dead).

    Example:

      steward dispatch list --state dead
    """
    from engine.dispatch.outbox import OUTBOX

    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)).all())
            state = listing.choice("--state", state_, ("held", "queued", "sending", "sent", "dead", "dropped", "uncertain"),
                                   "state")
            q = select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit).offset((page - 1) * limit)
            rows = list(conn.execute(q.where(OUTBOX.c.state == state) if state else q))
    total = counts.get(state, 0) if state else sum(counts.values())
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "The outbox is empty.")
    t = Table(title="Outbox, newest first", caption=listing.page_caption("rows", len(rows), total, page, limit))
    for col in ("id", "kind", "rule", "client", "channel", "state", "reason", "attempts", "receipt / error"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(str(r.id), r.kind, r.rule_id or "", r.client_id or "", r.channel, r.state, r.reason or "",
                  str(r.attempts), r.receipt or r.last_error or "")
    console.print(t)


@dispatch_app.command("retry")
def retry(row_id: int = typer.Argument(..., help="outbox id of a dead or uncertain message")) -> None:
    """Queue a dead-letter (or uncertain) message again, e.g. after the provider is fixed.

    Recorded in the audit log (outbox.changed) with the signed-in user.

    Example:

      steward dispatch retry 42
    """
    from engine.dispatch.outbox import retry_dead

    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            who = signed_in(conn, "dispatch retry")
            ok = retry_dead(conn, row_id, actor=who.name)
    if not ok:
        fail(f"outbox row {row_id} is not dead or uncertain; `steward dispatch list --state dead` lists dead letters")
    console.print(f"outbox row {row_id} queued again.")


@dispatch_app.command("resolve")
def resolve(row_id: int = typer.Argument(..., help="outbox id of an uncertain message"),
            receipt: str = typer.Option(..., "--receipt", help="evidence it was delivered, e.g. the mailbox's Message-ID")) -> None:
    """Mark an uncertain e-mail as sent after finding it delivered (else use `dispatch retry`).

    Example:

      steward dispatch resolve 42 --receipt "<id@mail.example>"
    """
    from engine.dispatch.outbox import mark_sent_by_hand

    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            who = signed_in(conn, "dispatch resolve")
            ok = mark_sent_by_hand(conn, row_id, receipt, actor=who.name)
    if not ok:
        fail(f"outbox row {row_id} is not uncertain; `steward dispatch list --state uncertain` lists them")
    console.print(f"outbox row {row_id} marked sent.")


def _follow_up_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"--follow-up: expected a date as YYYY-MM-DD, got {value!r}") from None


def outcome(task_id: int = typer.Argument(..., help="firing id of the call task"),
            result: str = typer.Option(..., "--outcome", help="reached, positive (reached and satisfied), declined, wrong_number, no_answer, callback_later"),
            note: str = typer.Option(None, "--note", help="a short note kept with the contact record"),
            on: str = typer.Option(None, "--on", help="day of the call YYYY-MM-DD (default: today)"),
            need: str = typer.Option(None, "--need", help="a need the client raised, kept in the client dynamic record"),
            follow_up: str = typer.Option(None, "--follow-up", help="day YYYY-MM-DD of the next contact: a follow-up task is created then")) -> None:
    """Record the outcome of a call task as the signed-in advisor (writes a contact row; a callback sets
    callback_done) and the client dynamic record: the service, a need, the next follow-up.

    Example: steward outcome 42 --outcome reached --need "retirement plan" --follow-up 2026-12-04
    """
    from engine.pipeline.recording import FIRING
    from engine.servicing.task_outcomes import record_outcome

    with user_errors():
        c = cfg()
        eng = open_db(c)
        day = parse_day(on, c)
        due = _follow_up_day(follow_up)
        with eng.begin() as conn:
            me = signed_in(conn, "outcome")
            owner = conn.execute(select(FIRING.c.advisor_id).where(FIRING.c.id == task_id)).scalar()
            if owner is not None and owner != me.advisor_id:
                mine = me.advisor_id or "no advisor id: an admin links you with `steward users add NAME --advisor ID`"
                raise StewardError(f"task {task_id} is on advisor {owner}'s list, not yours ({mine})")
            r = record_outcome(conn, task_id, result, me.name, day, note, need, due)
    console.print(f"task {r.firing_id} ({r.client_id}): {result} recorded as {r.contact_kind}; task is {r.task_status}.")
    if due is not None:
        console.print(f"follow-up due {due.isoformat()} (evaluation date, {c.timezone}): the run on that day creates a call task.")


@dnc_app.command("add")
def dnc_add(phone: str = typer.Argument(..., help="phone number as the client gave it, e.g. 13800138000"), source: str = typer.Option("client", "--source", help="client, national, regulator"),
            note: str = typer.Option(None, "--note", help="why, e.g. how the request came in")) -> None:
    """Put a phone number on the do-not-call list (recorded in the audit log as dnc.added).

    Example:

      steward dnc add 13800138000 --note "asked on the phone"
    """
    from engine.dispatch import dnc

    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            who = signed_in(conn, "dnc add")
            dnc.add(conn, phone, source, note, who.name, clock.now())
    console.print(f"{phone} is on the do-not-call list.")


@dnc_app.command("remove")
def dnc_remove(phone: str = typer.Argument(..., help="phone number on the list")) -> None:
    """Take a phone number off the do-not-call list (recorded in the audit log as dnc.removed).

    Example:

      steward dnc remove 13800138000
    """
    from engine.dispatch import dnc

    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            who = signed_in(conn, "dnc remove")
            n = dnc.remove(conn, phone, who.name, clock.now())
    if not n:
        fail(f"{phone} is not on the do-not-call list")
    console.print(f"{phone} removed.")


@dnc_app.command("list")
def dnc_list() -> None:
    """The do-not-call list.

    Example:

      steward dnc list
    """
    from engine.dispatch.tables import DoNotCall

    t = DoNotCall.__table__  # type: ignore[attr-defined]
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            rows = list(conn.execute(select(t).order_by(t.c.phone)))
    for r in rows:
        console.print(f"{r.phone}  {r.source}  {r.added_at:%Y-%m-%d}  {r.note or ''}")
    console.print(f"{len(rows)} number(s).")


def webhook(port: int = typer.Option(None, "--port", help="override dispatch.webhook.port")) -> None:
    """Serve the gateway's inbound webhook (POST /inbound): opt-out replies take effect at once.

    Example:

      steward webhook --port 8090
    """
    from engine.dispatch.webhook import server

    with user_errors():
        c = cfg()
        srv = server(open_db(c), c, port)
    console.print(f"listening on http://{c.dispatch.webhook.host}:{srv.server_port}/inbound")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


@report_app.command("effectiveness")
def effectiveness(start: str = typer.Option(None, "--from", help="first firing day (default: 30 days ago)"),
                  end: str = typer.Option(None, "--to", help="last firing day (default: today)")) -> None:
    """Per rule: fired, sent (tasks: created), held, dropped, and the outcome rate.

    Example:

      steward report effectiveness --from 2026-06-01 --to 2026-06-30
    """
    from engine.supervision import effectiveness as rep

    with user_errors():
        c = cfg()
        hi = parse_day(end, c)
        lo = parse_day(start, c) if start else hi - timedelta(days=30)
        if lo > hi:
            raise StewardError(f"--from {lo} is after --to {hi}")
        eng = open_db(c)
        with eng.connect() as conn:
            rows = rep.effectiveness(conn, lo, hi)
    t = Table(title=f"Rule effectiveness {lo} .. {hi}")
    for col in ("rule", "fired", "sent / tasks", "held", "dropped", "outcomes", "outcome rate"):
        t.add_column(col, justify="left" if col == "rule" else "right")
    for r in rows:
        rate = f"{r.outcome_rate:.0%}" if r.outcome_rate is not None else "—"
        t.add_row(r.rule_id, str(r.fired), str(r.sent), str(r.held), str(r.dropped), str(r.outcomes), rate)
    console.print(t)
    console.print("Outcomes: tasks closed with `steward outcome`; messages: the client traded within 30 days of the send.")

"""`steward tasks --advisor ID [--date D]` (the day's call list) and `steward tasks done ID`."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from engine.servicing import calllist
from engine.language import expr
from engine.cli.common import cfg, console, fail, open_db, parse_day, user_errors
from engine.cli.dispatch_cmd import outcome
from engine.config.base import Config
from engine.errors import StewardError

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tasks")  # help: the callback's docstring, with its examples


app.command("done")(outcome)


@app.callback(invoke_without_command=True)
def tasks(
    ctx: typer.Context,
    advisor: str = typer.Option(None, "--advisor", "-a", help="advisor id whose call list to show"),
    day: str = typer.Option(None, "--date", help="day of the list YYYY-MM-DD (default: today)"),
) -> None:
    """The advisor's call list for a day; record a task's outcome (`tasks done`).

    Open tasks by priority within capacity and the segment budget.

    Examples:

      steward tasks --advisor A001

      steward tasks done 42 --outcome reached

      steward tasks --advisor A001 --date 2026-06-15
    """
    if ctx.invoked_subcommand is not None:
        return
    if advisor is None:
        fail("--advisor ID is required (e.g. steward tasks --advisor A001 --date 2026-11-20)")
    with user_errors():
        c = cfg()
        d = parse_day(day, c)
        eng = open_db(c)
        with eng.begin() as conn:
            cl = calllist.build(conn, c, advisor, d)
        reasons = _reasons(c)
    _print(cl, reasons)


def _reasons(c: Config) -> dict[str, tuple[str, tuple[str, ...]]]:
    """rule id -> (title, facts its condition reads); empty when the rules do not load."""
    from engine.language.loading import load_ruleset

    try:
        rs = load_ruleset(c)
    except StewardError:
        return {}
    return {r.id: (r.spec.title, tuple(sorted(expr.fields_of(r.node))) if r.node else ()) for r in rs.rules}


def _row(e: calllist.Entry, reasons: dict[str, tuple[str, tuple[str, ...]]]) -> list[str]:
    t = e.task
    title, fields = reasons.get(t.rule_id, (t.rule_id, ()))
    waited = f", waited {e.waited}d" if e.waited else ""
    return [str(e.position or ""), str(t.firing_id), t.client_id, e.group, f"{e.score} ({t.priority}{waited})",
            f"[bold]{title}[/]\n{calllist.key_facts(t.facts, fields)}", str(t.due_on or ""), e.slot or t.status,
            t.status]


def _table(title: str, entries: list[calllist.Entry], reasons: dict[str, Any]) -> Table:
    t = Table(title=title, show_lines=True)
    for col in ("#", "task", "client", "segment group", "score (priority)", "why", "due", "slot", "status"):
        t.add_column(col, overflow="fold")
    for e in entries:
        t.add_row(*_row(e, reasons))
    return t


def _print(cl: calllist.CallList, reasons: dict[str, Any]) -> None:
    used = cl.used()
    shares = ", ".join(f"{g} {used.get(g, 0)}/{q}" for g, q in cl.quotas.items() if q or used.get(g))
    console.print(_table(f"Call list of {cl.advisor_name} ({cl.advisor_id}) for {cl.day}: "
                         f"{len(cl.entries)} of {cl.capacity} slots", cl.entries, reasons))
    console.print(f"Budget used/share by segment group: {shares}. Slots: urgent first, then each group's share, "
                  "then spare slots to the best remaining tasks.", highlight=False)
    if cl.carried:
        to = cl.next_day.isoformat() if cl.next_day else "the next trading day"
        console.print(_table(f"Carried to {to} ({len(cl.carried)} open tasks did not fit; they stay open "
                             "and gain priority each day)", cl.carried[:20], reasons))
        if len(cl.carried) > 20:
            console.print(f"... and {len(cl.carried) - 20} more carried tasks.", highlight=False)
    console.print("Record a call with [bold]steward tasks done TASK --outcome reached[/].")


def print_overview(eng: Any, c: Config, day: Any) -> None:
    """One line per advisor: the day's call list against capacity and the segment budget (demo)."""
    with eng.begin() as conn:
        lists = calllist.build_all(conn, c, day)
    if not lists:
        return
    groups = list(lists[0].quotas)
    t = Table(title=f"Call lists for {day} (used/share per segment group; `steward tasks --advisor ID` for one)")
    for col in ("advisor", "capacity", "on list", *groups, "carried"):
        t.add_column(col, justify="left" if col == "advisor" else "right")
    for cl in lists:
        used = cl.used()
        t.add_row(cl.advisor_id, str(cl.capacity), str(len(cl.entries)),
                  *(f"{used.get(g, 0)}/{cl.quotas[g]}" for g in groups), str(len(cl.carried)))
    console.print(t)

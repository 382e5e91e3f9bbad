"""`steward report`: branch figures for a manager."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta

import typer
from rich.table import Table

from engine.supervision import report
from engine.cli.common import cfg, console, open_db, parse_day, user_errors
from engine.errors import StewardError
from engine.language.loading import load_ruleset


def register(app: typer.Typer) -> None:
    """`steward report branch`, in the `report` group the dispatch commands also use."""
    from engine.cli import dispatch_cmd

    group = getattr(dispatch_cmd, "report_app", None)
    if group is None:
        group = typer.Typer(no_args_is_help=True)
        app.add_typer(group, name="report", help="Reports on what the rules achieved.")
    group.command("branch")(report_)


def _counts(title: str, data: Mapping[str, Counter[str]]) -> Table:
    t = Table(title=title)
    for col in ("", "fired", "sent", "suppressed"):
        t.add_column(col, justify="left" if not col else "right")
    for key, c in sorted(data.items()):
        t.add_row(key, *(f"{c.get(k, 0):,}" for k in ("fired", "sent", "suppressed")))
    return t


def report_(
    start: str = typer.Option(None, "--from", help="first day YYYY-MM-DD (default: 4 weeks before --to)"),
    end: str = typer.Option(None, "--to", help="last day YYYY-MM-DD (default: today)"),
    outcome_days: int = typer.Option(30, "--outcome-days", min=1, help="days after a firing in which an outcome counts"),
) -> None:
    """Firings, sends and suppressions per rule and advisor; callbacks; outcomes; KPIs by week and segment.

    Example:

      steward report branch --from 2026-06-01 --to 2026-06-30
    """
    with user_errors():
        c = cfg()
        to = parse_day(end, c)
        frm = parse_day(start, c) if start else to - timedelta(days=27)
        if frm > to:
            raise StewardError(f"--from {frm} is after --to {to}")
        kinds = report.outcome_kinds(load_ruleset(c).rules)
        eng = open_db(c)
        with eng.connect() as conn:
            rep = report.build(conn, c, frm, to, kinds, outcome_days)
    console.print(f"[bold]Branch report {frm} .. {to}[/]")
    console.print(_counts("Per rule", rep.per_rule))
    console.print(_counts("Per advisor", rep.per_advisor))
    med = rep.callback_median_days
    console.print(f"Call tasks: {rep.tasks:,}, completed {rep.tasks_done:,}"
                  + (f" ({rep.tasks_done / rep.tasks:.0%})" if rep.tasks else "")
                  + (f"; callbacks made after {med:g} days (median of {len(rep.callback_days):,})" if med is not None else ""),
                  highlight=False)
    for kind, cnt in sorted(rep.outcomes.items()):
        word = "traded again" if kind == "activation" else "no transfer-out"
        console.print(f"{kind}: {cnt['firings']:,} firings, {cnt['success']:,} {word} within {outcome_days} days", highlight=False)
    t = Table(title="KPIs by week and segment (segment as of the last day)")
    for col in ("week", "segment", "retained assets", "churn rate", "new clients", "new assets"):
        t.add_column(col, justify="right" if col not in ("week", "segment") else "left")
    for k in rep.kpis:
        churn = "—" if k["churn_rate"] is None else f"{k['churn_rate']:.1%}"
        t.add_row(str(k["week"]), k["segment"], f"{k['retained_assets']:,.0f}", churn, f"{k['new_clients']:,}",
                  f"{k['new_assets']:,.0f}")
    console.print(t)

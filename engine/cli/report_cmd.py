"""`steward report`: branch figures for a manager."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

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
    group.command("effect")(effect_)


REPORT_COLUMNS = {
    "per-rule": ("rule_id", "fired", "sent", "suppressed"),
    "per-advisor": ("advisor_id", "fired", "sent", "suppressed"),
    "kpis": ("week", "segment", "retained_assets", "churn_rate", "new_clients", "new_assets"),
}


def _tables(rep: Any) -> list[tuple[str, tuple[str, ...], list[list[Any]]]]:
    counts = ("fired", "sent", "suppressed")
    return [
        ("per-rule", REPORT_COLUMNS["per-rule"], [[k, *(c.get(m, 0) for m in counts)] for k, c in sorted(rep.per_rule.items())]),
        ("per-advisor", REPORT_COLUMNS["per-advisor"],
         [[k, *(c.get(m, 0) for m in counts)] for k, c in sorted(rep.per_advisor.items())]),
        ("kpis", REPORT_COLUMNS["kpis"], [[str(k["week"]), k["segment"], k["retained_assets"], k["churn_rate"],
                                           k["new_clients"], k["new_assets"]] for k in rep.kpis]),
    ]


def write_tables(rep: Any, out: Path) -> list[Path]:
    """The report's tables as named columns: one workbook, or one CSV (UTF-8 with BOM) per table."""
    from engine import sheets

    suffix = out.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise StewardError(f"--out: {out} must end in .xlsx or .csv")
    tables = _tables(rep)
    paths = [out] if suffix == ".xlsx" else [out.with_name(f"{out.stem}-{name}.csv") for name, _, _ in tables]
    for p in paths:
        if p.exists():
            raise StewardError(f"--out: {p} already exists; choose a new name (reports are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".xlsx":
        sheets.write_xlsx(out, tables)
    else:
        for p, (_, header, rows) in zip(paths, tables):
            sheets.write_csv(p, header, rows)
    return paths


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
    out: Path = typer.Option(None, "--out", help="also write the tables: FILE.xlsx (one sheet each) or FILE.csv "
                                                 "(FILE-per-rule.csv, FILE-per-advisor.csv, FILE-kpis.csv); never overwrites"),
    csv_path: Path = typer.Option(None, "--csv", help="also write the weekly KPI rows to this CSV file"),
) -> None:
    """Firings, sends and suppressions per rule and advisor; callbacks; outcomes; KPIs by week and segment.

    Examples:

      steward report branch --from 2026-06-01 --to 2026-06-30

      steward report branch --from 2026-06-01 --to 2026-06-30 --out var/branch-2026-06.xlsx
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
        if out is not None:
            written = write_tables(rep, out)
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
    t = Table(title="KPIs by week and segment (segments from the data as of each week)")
    for col in ("week", "segment", "retained assets", "churn rate", "new clients", "new assets"):
        t.add_column(col, justify="right" if col not in ("week", "segment") else "left")
    for k in rep.kpis:
        churn = "—" if k["churn_rate"] is None else f"{k['churn_rate']:.1%}"
        t.add_row(str(k["week"]), k["segment"], f"{k['retained_assets']:,.0f}", churn, f"{k['new_clients']:,}",
                  f"{k['new_assets']:,.0f}")
    console.print(t)
    if out is not None:
        console.print(f"Wrote {', '.join(str(p) for p in written)}", highlight=False)
    if csv_path is not None:
        report.write_kpis_csv(rep, csv_path)
        console.print(f"KPI rows written to {csv_path}")


def effect_(
    start: str = typer.Option(None, "--from", help="first day YYYY-MM-DD (default: 8 weeks before --to)"),
    end: str = typer.Option(None, "--to", help="last day YYYY-MM-DD (default: today)"),
    cycle: str = typer.Option(None, "--cycle", help="weekly, monthly or quarterly (default: servicing.review.cycle)"),
    csv_dir: Path = typer.Option(None, "--csv", help="folder for effect_segments.csv, effect_moves.csv, effect_rules.csv"),
) -> None:
    """Effect review per cycle: segment moves, assets gained and churn per segment, rule outcomes.

    Example: steward report effect --from 2026-09-28 --to 2026-11-20 --cycle weekly --csv var/effect
    """
    from engine.supervision import effect

    with user_errors():
        c = cfg()
        to = parse_day(end, c)
        frm = parse_day(start, c) if start else to - timedelta(days=55)
        if frm > to:
            raise StewardError(f"--from {frm} is after --to {to}")
        kind = cycle or c.servicing.review.cycle
        if kind not in ("weekly", "monthly", "quarterly"):
            raise StewardError(f"--cycle: expected weekly, monthly or quarterly, got {kind!r}")
        eng = open_db(c)
        with eng.connect() as conn:
            reviews = effect.review(conn, c, frm, to, kind)  # type: ignore[arg-type]
    t = Table(title=f"Effect review {frm} .. {to}, {kind} (segments from the data as of each cycle's edges)")
    for col in ("cycle", "segment before", "clients", "stayed", "up", "down", "assets before", "change", "churn"):
        t.add_column(col, justify="left" if col in ("cycle", "segment before") else "right")
    for rev in reviews:
        for r in rev.segments:
            churn = "—" if r["churn_rate"] is None else f"{r['churn_rate']:.1%}"
            t.add_row(f"{rev.start}..{rev.end}", r["segment"], f"{r['clients']:,}", f"{r['stayed']:,}", f"{r['up']:,}",
                      f"{r['down']:,}", f"{r['assets_before']:,.0f}", f"{r['assets_change']:+,.0f}", churn)
    console.print(t)
    done = Counter[str]()
    for rev in reviews:
        for r in rev.rules:
            done.update({f"{r['rule_id']}|{k}": r[k] for k in ("fired", "tasks_done", "reached", "positive", "declined")})
    rules = sorted({k.split("|")[0] for k in done})
    rt = Table(title="Rule outcomes over the period")
    for col in ("rule", "fired", "tasks done", "reached", "positive", "declined"):
        rt.add_column(col, justify="left" if col == "rule" else "right")
    for rule in rules:
        rt.add_row(rule, *(f"{done[f'{rule}|{k}']:,}" for k in ("fired", "tasks_done", "reached", "positive", "declined")))
    console.print(rt)
    if csv_dir is not None:
        for p in effect.write_csv(reviews, csv_dir):
            console.print(f"wrote {p}")

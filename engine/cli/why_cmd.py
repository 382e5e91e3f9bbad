"""`steward why CLIENT [--date D]`: every rule's verdict for one client and day."""

from __future__ import annotations

import json
from datetime import date

import typer
from sqlalchemy import Engine, func, select

from engine.supervision import explain
from engine.audit.log import Event, append
from engine.config.base import Config
from engine.cli.common import cfg, console, open_db, parse_day, user_errors, viewer
from engine.language.loading import RuleSet, load_ruleset
from engine.pipeline.recording import RUN


def _ruleset(eng: Engine, c: Config, as_of: date) -> tuple[RuleSet, str]:
    """The version that ran on as_of (found by the rules hash its evaluation run recorded); else the
    last approved version; the working files only when nothing is approved."""
    from engine.compliance import review

    with eng.connect() as conn:
        ran = {r[0] for r in conn.execute(select(RUN.c.rules_version).where(RUN.c.as_of == as_of, RUN.c.mode == "run"))
               if r[0]}
    found = review.ruleset_that_ran(eng, c, ran) if ran else None
    if found is not None:
        return found[0], f"approved version {found[1].version}, the version that ran on {as_of}"
    try:
        ruleset, _, approved = review.approved_ruleset(eng, c)
        return ruleset, f"approved version {approved.version} (the current one: no run of {as_of} names its version)"
    except review.NothingApproved:
        return load_ruleset(c), "working files (no approved version yet)"


def register(app: typer.Typer) -> None:
    app.command("why")(why)


def why(
    client: str = typer.Argument(..., help="client id"),
    day: str = typer.Option(None, "--date", help="evaluation date YYYY-MM-DD (default: the latest evaluated day)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of text"),
) -> None:
    """For one client and day: every rule, whether it fired, and if not which condition failed.

    Examples:

      steward why C000001

      steward why C000001 --date 2026-06-15 --json
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            latest = conn.execute(select(func.max(RUN.c.as_of)).where(RUN.c.mode == "run")).scalar()
        as_of = parse_day(day, c) if day or latest is None else latest
        ruleset, source = _ruleset(eng, c, as_of)
        if not as_json:
            console.print(f"Rules: {source}", highlight=False)
        with eng.begin() as conn:
            ex = explain.explain_client(conn, c, ruleset, client, as_of)
            append(conn, [Event("client.viewed", actor=viewer(conn), client_id=client, as_of=as_of,
                                data={"command": "why", "facts": sorted(ex.facts)})])
    if as_json:
        console.print_json(json.dumps(_as_dict(ex), ensure_ascii=False, default=str))
        return
    _print(ex)


def _as_dict(ex: explain.Explanation) -> dict[str, object]:
    return {
        "client_id": ex.client_id, "as_of": ex.as_of.isoformat(), "evaluated": ex.evaluated, "facts": ex.facts,
        "facts_source": ex.facts_source,
        "rules": [{
            "rule_id": v.rule_id, "fired": v.fired, "holds": v.holds, "note": v.note,
            "failing": [{"condition": f.text, "values": f.values} for f in v.failing],
            "policy": v.stages, "dispatch": v.dispatch,
            "firing_id": v.firing.id if v.firing is not None else None,
        } for v in ex.verdicts],
    }


def _print(ex: explain.Explanation) -> None:
    f = ex.facts
    console.print(f"Facts: {ex.facts_source}", highlight=False)
    console.print(f"[bold]{ex.client_id}[/] on {ex.as_of}: segment {f.get('segment')}, advisor {f.get('advisor_id')}, "
                  f"locale {f.get('locale')}" + ("" if ex.evaluated else f"  [yellow](no evaluation run for {ex.as_of})[/]"),
                  highlight=False)
    for v in ex.verdicts:
        mark = "[green]FIRED[/]" if v.fired else ("[yellow]HOLDS[/]" if v.holds else "[dim]no[/]")
        firing = f" (firing {v.firing.id})" if v.fired else ""
        console.print(f"{mark} {v.rule_id}{firing} — {v.title}: {v.note}", highlight=False)
        for leaf in v.failing:
            console.print(f"      failed: {leaf}", highlight=False, markup=False)
        for line in v.stages:
            console.print(f"      policy: {line}", highlight=False, markup=False)
        for line in v.dispatch:
            console.print(f"      dispatch: {line}", highlight=False, markup=False)
    console.print("The words sent and the facts they were based on: steward audit show EVENT "
                  "(steward audit list --client ID lists the events).", highlight=False)

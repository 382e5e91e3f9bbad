"""`steward risk score FILE`: score a risk questionnaire and show every item's points."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from engine.facts import risk
from engine import clock
from engine.cli.common import cfg, console, open_db, user_errors
from engine.config.base import Config
from engine.errors import StewardError

app = typer.Typer(no_args_is_help=True)


@app.command("score")
def score(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="answer sheet, YAML or JSON (docs/risk.md)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    save: bool = typer.Option(False, "--save", help="store the assessment and set the client's level C1-C5 (client_id must exist)"),
) -> None:
    """Score an answer sheet: points per item, capacity and tolerance, recommended allocation,
    and the suitability level C1-C5 it maps to (servicing.risk.suitability). The sheet's
    format, the scoring and the mapping are explained in docs/risk.md.

    Examples:

      steward risk score answers.yaml

      steward risk score answers.yaml --save
    """
    with user_errors():
        c = cfg()
        sheet = risk.load_sheet(file)
        profile = risk.score(sheet, c.servicing.risk)
        if save:
            _save(c, sheet, profile)
    if as_json:
        sys.stdout.write(risk.dumps(profile) + "\n")
        return
    t = Table(title=f"Risk profile{' of ' + sheet.client_id if sheet.client_id else ''}")
    for col in ("part", "item", "answer", "points"):
        t.add_column(col, justify="right" if col == "points" else "left")
    for item, answer, points in profile.items:
        part = "capacity" if item == "age" or item in risk.CAPACITY_ITEMS else "tolerance"
        t.add_row(part, item, answer, str(points))
    console.print(t)
    low, medium, high = profile.allocation
    console.print(f"risk capacity  {profile.capacity:>3} ({profile.capacity_level})")
    console.print(f"risk tolerance {profile.tolerance:>3} ({profile.tolerance_level})")
    console.print(f"recommended allocation: low-risk {low}%, medium-risk {medium}%, high-risk {high}%")
    console.print(f"suitability level {risk.suitability_level(profile, c.servicing.risk)} "
                  "(servicing.risk.suitability, docs/risk.md)")


def _save(c: Config, sheet: risk.AnswerSheet, profile: risk.RiskProfile) -> None:
    """Store the assessment and set the client's level, in one transaction, with an audit event."""
    from sqlalchemy import select, update

    from engine.audit import log as auditlog
    from engine.cli.common import viewer
    from engine.errors import did_you_mean
    from engine.facts.tables import RiskAssessment
    from engine.models import Client

    if not sheet.client_id:
        raise StewardError("--save needs client_id in the answer sheet (docs/risk.md)")
    day = sheet.assessed_on or clock.now().astimezone(c.tz).date()
    low, medium, high = profile.allocation
    level = risk.suitability_level(profile, c.servicing.risk)
    clients = Client.__table__  # type: ignore[attr-defined]
    eng = open_db(c)
    with eng.begin() as conn:
        if conn.execute(select(clients.c.id).where(clients.c.id == sheet.client_id)).first() is None:
            near = [r[0] for r in conn.execute(select(clients.c.id).where(clients.c.id.like(sheet.client_id[:1] + "%")).limit(5000))]
            raise StewardError(f"client_id: no client {sheet.client_id!r} in the database{did_you_mean(sheet.client_id, near)}; "
                               "nothing was saved (import the client first: `steward import`)")
        conn.execute(RiskAssessment.__table__.insert().values(  # type: ignore[attr-defined]
            client_id=sheet.client_id, assessed_on=day, capacity_score=profile.capacity,
            tolerance_score=profile.tolerance, capacity_level=profile.capacity_level,
            tolerance_level=profile.tolerance_level, alloc_low=low, alloc_medium=medium, alloc_high=high,
            answers=sheet.model_dump(mode="json")))
        conn.execute(update(clients).where(clients.c.id == sheet.client_id).values(risk_level=level, risk_assessed_on=day))
        auditlog.append(conn, [auditlog.Event("risk.assessed", actor=viewer(conn), client_id=sheet.client_id, data={
            "assessed_on": day.isoformat(), "capacity": profile.capacity, "tolerance": profile.tolerance,
            "capacity_level": profile.capacity_level, "tolerance_level": profile.tolerance_level, "risk_level": level})])
    console.print(f"saved the assessment of {sheet.client_id} on {day}: risk level {level}")

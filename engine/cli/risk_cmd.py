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
    save: bool = typer.Option(False, "--save", help="store the assessment for the sheet's client_id"),
) -> None:
    """Score an answer sheet: points per item, capacity and tolerance, recommended allocation."""
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


def _save(c: Config, sheet: risk.AnswerSheet, profile: risk.RiskProfile) -> None:
    from engine.facts.tables import RiskAssessment

    if not sheet.client_id:
        raise StewardError("--save needs client_id in the answer sheet")
    day = sheet.assessed_on or clock.now().astimezone(c.tz).date()
    low, medium, high = profile.allocation
    eng = open_db(c)
    with eng.begin() as conn:
        conn.execute(RiskAssessment.__table__.insert().values(  # type: ignore[attr-defined]
            client_id=sheet.client_id, assessed_on=day, capacity_score=profile.capacity,
            tolerance_score=profile.tolerance, capacity_level=profile.capacity_level,
            tolerance_level=profile.tolerance_level, alloc_low=low, alloc_medium=medium, alloc_high=high,
            answers=sheet.model_dump(mode="json")))
    console.print(f"saved the assessment of {sheet.client_id} on {day}")

"""`steward supervision sample|queue|review`: the supervisory review queue."""

from __future__ import annotations

import typer
from rich.table import Table

from engine.supervision import sampling as supervision
from engine.cli.common import cfg, console, open_db, parse_day, signed_in, user_errors

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="supervision", help="Daily review sample of sent messages and completed tasks.")


@app.command("sample")
def sample(day: str = typer.Option(None, "--date", help="day whose sent messages and done tasks to sample (default: today)")) -> None:
    """Draw the day's risk-based sample and assign each item to a supervisor who is not its sender."""
    with user_errors():
        c = cfg()
        d = parse_day(day, c)
        eng = open_db(c)
        with eng.begin() as conn:
            res = supervision.sample(conn, d, c.audit.supervision)
    per = ", ".join(f"{k} {v}" for k, v in sorted(res.per_risk.items())) or "none"
    console.print(f"{d}: {res.candidates:,} sent messages and done tasks, {res.sampled:,} sampled ({per})", highlight=False)
    if res.unassigned:
        console.print(f"[yellow]{len(res.unassigned)} sampled items have no supervisor other than their sender "
                      f"(firings {', '.join(map(str, res.unassigned[:10]))}): give the sender a supervisor "
                      "(advisor.supervisor_id) or grant someone the supervisor role[/]", highlight=False)


@app.command("queue")
def queue(
    supervisor: str = typer.Option(None, "--supervisor", help="only this supervisor's reviews"),
    overdue: bool = typer.Option(False, "--overdue", help="only reviews past their due date"),
    show_all: bool = typer.Option(False, "--all", help="decided reviews too"),
) -> None:
    """Open reviews (oldest due first); overdue ones are marked."""
    with user_errors():
        c = cfg()
        today = parse_day(None, c)
        eng = open_db(c)
        with eng.connect() as conn:
            rows = supervision.overdue(conn, today) if overdue else supervision.queue(conn, supervisor, not show_all)
    if overdue and supervisor:
        rows = [r for r in rows if r.supervisor_id == supervisor]
    t = Table(title=f"Supervisory reviews ({len(rows)})")
    for col in ("id", "day", "firing", "kind", "risk", "sender", "supervisor", "due", "decision"):
        t.add_column(col)
    for r in rows:
        late = r.decision is None and r.due_on < today
        t.add_row(str(r.id), str(r.day), str(r.firing_id), r.kind, r.risk, r.sender or "", r.supervisor_id,
                  f"[red]{r.due_on} OVERDUE[/]" if late else str(r.due_on), r.decision or "")
    console.print(t)
    console.print("Review one: steward audit firing FIRING, then steward supervision review ID --decision ok|follow_up|escalate")


@app.command("review")
def review(
    review_id: int = typer.Argument(..., help="review id from `steward supervision queue`"),
    decision: str = typer.Option(..., "--decision", help="ok, follow_up or escalate"),
    comment: str = typer.Option(None, "--comment", help="what is wrong and what should happen (needed unless ok)"),
) -> None:
    """Record a decision and comment on one sampled item, as the signed-in supervisor.

    Example: steward supervision review 12 --decision follow_up --comment "advisor promised a return"
    """
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            supervision.decide(conn, review_id, signed_in(conn, "supervision review").name, decision, comment)
    console.print(f"review {review_id}: {decision} recorded", highlight=False)

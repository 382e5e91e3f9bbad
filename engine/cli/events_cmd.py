"""`steward events`: post events, serve the intake endpoint, replay, list, retry, check and test event rules."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import Engine, select

from engine.compliance import review
from engine.cli.common import cfg as load_cfg
from engine.cli.common import console, err_console, fail, open_db, user_errors
from engine.events import store
from engine.config.base import Config
from engine.language.event_rules import EventRuleSet, load_event_rules
from engine.language.event_schema import parse_jsonl
from engine.events.service import EventService

app = typer.Typer(no_args_is_help=True)


def approved_rules(eng: Engine, c: Config) -> EventRuleSet:
    """The event rules of the last approved version, saying which working files are unapproved and not used."""
    from engine.cli.review_cmd import print_unapproved

    rules, changes, approved = review.approved_event_rules(eng, c)
    err_console.print(f"Event rules: approved version {approved.version} (content {approved.content_hash[:12]}, "
                      f"approved by {approved.approved_by}), {len(rules.rules)} rule(s).", highlight=False)
    print_unapproved(changes, approved.version)
    return rules


def _summary(s: EventService) -> str:
    c = s.counters
    return (f"stored {c.stored}, duplicates {c.duplicates}, processed {c.processed}, failed {c.failed}, "
            f"firings {c.firings} (deadlines fired {c.deadlines_fired})")


@app.command("post")
def post(file: Path = typer.Argument(..., help="JSON lines, one event each (docs/events.md)"),
         process: bool = typer.Option(True, "--process/--no-process", help="process now (else a running `events serve` does)")) -> None:
    """Store the events of FILE (each id once), then process every stored event and due deadline."""
    with user_errors():
        c = load_cfg()
        if not file.is_file():
            fail(f"{file}: file not found")
        events = parse_jsonl(file.read_text(encoding="utf-8"), str(file))
        eng = open_db(c)
        refused: review.NothingApproved | None = None
        try:
            s = EventService(eng, c, approved_rules(eng, c) if process else None)
        except review.NothingApproved as nothing:  # the events are still stored: a replay processes them once approved
            s, refused = EventService(eng, c), nothing
        res = s.post(events)
        for eid in res.conflicts:
            err_console.print(f"[yellow]warning[/] event id {eid!r} was stored before with other content; the first one stands")
        if refused is not None:
            console.print(f"{_summary(s)}; not processed")
            fail(str(refused))
        if process:
            s.start()
            s.tick()
        console.print(_summary(s))
        for e in s.counters.errors:
            err_console.print(f"[red]failed[/] {e}")
        if s.counters.failed:
            raise typer.Exit(1)


@app.command("serve")
def serve(port: int = typer.Option(None, "--port", help="override events.port")) -> None:
    """Run the intake endpoint and the engine thread (replays stored events first) until Ctrl-C."""
    from engine.events.http import IntakeServer

    with user_errors():
        c = load_cfg()
        eng = open_db(c)
        s = EventService(eng, c, approved_rules(eng, c))
        stop = threading.Event()
        with IntakeServer(s, port=port) as srv:
            console.print(f"events: POST http://{c.events.host}:{srv.port}/events (rules {s.rules.version})")
            try:
                s.serve(stop)
            except KeyboardInterrupt:
                stop.set()
        console.print(_summary(s))


@app.command("replay")
def replay() -> None:
    """Process every stored-but-unprocessed event, then fire due deadlines."""
    with user_errors():
        c = load_cfg()
        eng = open_db(c)
        s = EventService(eng, c, approved_rules(eng, c))
        n = s.start()
        s.tick()
        console.print(f"replayed {n}; {_summary(s)}")


@app.command("list")
def list_(status: str = typer.Option(None, "--status", help="stored, processed or failed"),
          limit: int = typer.Option(50, "--limit")) -> None:
    """Stored events, newest first."""
    with user_errors():
        eng = open_db(load_cfg())
        q = select(store.EVENT).order_by(store.EVENT.c.seq.desc()).limit(limit)
        if status:
            q = q.where(store.EVENT.c.status == status)
        t = Table("seq", "id", "type", "client", "at", "status", "firings", "error")
        with eng.connect() as conn:
            for r in conn.execute(q):
                t.add_row(str(r.seq), r.event_id, r.type, r.client_id, str(r.occurred_at), r.status, str(r.firings), r.error or "")
            console.print(t)
            console.print(store.counts(conn))


@app.command("retry")
def retry() -> None:
    """Put failed events back to stored (then `events replay` or a running serve processes them)."""
    with user_errors():
        eng = open_db(load_cfg())
        with eng.begin() as conn:
            console.print(f"{store.retry_failed(conn)} failed event(s) back to stored")


@app.command("check")
def check() -> None:
    """Load and check every event rule and its templates as in the working files (what a submit would propose)."""
    with user_errors():
        rs = load_event_rules(load_cfg())
        for r in rs.rules:
            console.print(f"{r.id}: {r.rule.spec.when}")
        console.print(f"{len(rs.rules)} event rule(s) OK, version {rs.version}")


@app.command("test")
def test() -> None:
    """Run the timed event rule tests (rules/events/tests) on the working files; each case in its own scratch database, nothing is sent."""
    from engine.events.ruletest import run_all

    with user_errors():
        c = load_cfg()
        results = run_all(load_event_rules(c), c)
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]FAIL[/]"
            console.print(f"{mark} {r.rule}: {r.case}" + (f"\n    {r.detail}" if r.detail else ""), highlight=False)
        bad = sum(not r.ok for r in results)
        console.print(f"{len(results) - bad} passed, {bad} failed")
        if bad:
            raise typer.Exit(1)

"""`steward demo`, `import`, `run` and `evaluate`."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.facts import base as facts_mod
from engine.pipeline import run as pipeline
from engine.pipeline import shards
from engine.cli.common import cfg, console, err_console, open_db, parse_day, progress_bar, user_errors
from engine.cli import review_cmd, tasks_cmd
from engine.config.base import Config
from engine.errors import Problem, SourceErrors, StewardError, did_you_mean, rel
from engine.language.loading import RuleSet, load_ruleset


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("import")(import_)
    app.command("run")(run)
    app.command("evaluate")(evaluate)


def _run_with_progress(eng: Any, c: Config, ruleset: RuleSet, as_of: date, workers: int = 1) -> pipeline.RunSummary:
    with eng.connect() as conn:
        total = facts_mod.count_clients(conn, as_of)
    with progress_bar("evaluating", total) as bar:
        task = bar.add_task(f"evaluating {as_of}", total=total)
        return shards.run_sharded(eng, c, ruleset, as_of, workers, progress=lambda n: bar.advance(task, n))


def print_summary(s: pipeline.RunSummary, ruleset: RuleSet) -> None:
    t = Table(title=f"Evaluation {s.as_of} (run {s.run_id}, rules version {ruleset.version})")
    t.add_column("rule", no_wrap=True)
    t.add_column("class")
    t.add_column("action", no_wrap=True)
    t.add_column("fired", justify="right")
    t.add_column("blocked", justify="right")
    for r in ruleset.rules:
        a = r.spec.action
        t.add_row(r.id, r.spec.rule_class, f"{a.type}/{a.channel}", f"{s.per_rule.get(r.id, 0):,}",
                  f"{s.per_rule_blocked.get(r.id, 0):,}")
    console.print(t)
    seg = Table(title="Firings by segment")
    seg.add_column("segment")
    seg.add_column("firings", justify="right")
    for name in facts_mod.SEGMENTS:
        seg.add_row(name, f"{s.per_segment.get(name, 0):,}")
    console.print(seg)
    if s.per_reason:
        why = Table(title="Blocked by policy (reason code)")
        why.add_column("reason")
        why.add_column("count", justify="right")
        for reason, n in s.per_reason.most_common():
            why.add_row(reason, f"{n:,}")
        console.print(why)
    for rid, day, cause in s.failed_runs:
        err_console.print(f"[bold red]Run {rid} (as of {day}) never finished and is now marked failed:[/] {cause}. "
                          f"Run `steward run --as-of {day}` again to evaluate the clients it missed "
                          "(clients already recorded that day are skipped).", highlight=False)
    secs = sum(s.seconds.values())
    console.print(
        f"{s.clients:,} clients evaluated, {s.firings:,} firings "
        f"({s.per_action.get('task', 0):,} advisor tasks, {s.per_action.get('message', 0):,} messages); "
        f"{sum(s.per_reason.values()):,} blocked by policy; "
        f"{s.skipped_cooldown:,} held back by cooldown, {s.skipped_duplicate:,} already recorded today"
        + (f", [red]{s.failed:,} failed to render[/]" if s.failed else "")
        + f". {secs:.1f}s (facts {s.seconds['facts']:.1f}s, matching {s.seconds['matching']:.1f}s, "
        f"rendering {s.seconds['rendering']:.1f}s, recording {s.seconds['recording']:.1f}s)."
    )


def _demo_audit_key(c: Config) -> None:
    """The demo authenticates its audit events too: a key file var/audit.key, made once (never in the database)."""
    import os
    import secrets

    from engine.audit import log as auditlog

    if auditlog.audit_key() is not None:
        return
    key = c.path("var/audit.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        key.chmod(0o600)
    os.environ[auditlog.KEY_FILE_ENV] = str(key.resolve())  # this process only: the demo's own commands
    console.print(f"Audit key: {rel(key)} (demo only); verify with "
                  f"`STEWARD_AUDIT_KEY_FILE={rel(key)} steward audit verify` (docs/audit.md, key handling)", highlight=False)


def demo(
    clients: int = typer.Option(2000, "--clients", "-n", min=50, help="clients in the synthetic book"),
    seed: int = typer.Option(7, "--seed", help="random seed: the same seed builds the same book"),
    as_of: str = typer.Option(None, "--as-of", help="evaluation date YYYY-MM-DD (default: the latest trading day)"),
    weeks: int = typer.Option(0, "--weeks", min=0, max=16, help="also write holdings and cash at the end of this many earlier weeks (for `steward report effect`)"),
) -> None:
    """Build a synthetic brokerage book in the database every other command uses, evaluate it once, print a summary.

    Without --database that is config.yaml's database.url (var/steward.db), so every command
    after it works on the demo book as typed. A database the demo built is rebuilt; one that
    holds other clients is never touched.

    Examples:

      steward demo

      steward demo --clients 20000 --seed 3
    """
    from engine.demo import book as demo_mod

    with user_errors():
        c = cfg()
        day = parse_day(as_of, c) if as_of else demo_mod.latest_session(c.calendar.exchange, parse_day(None, c))
        ruleset = load_ruleset(c)
        eng = _demo_database(c)
        _demo_audit_key(c)
        with progress_bar("building", clients) as bar:
            task = bar.add_task(f"building {clients:,} clients", total=clients)
            book = demo_mod.build_book(eng, c, clients=clients, seed=seed, as_of=day,
                                       progress=lambda n: bar.advance(task, n), weeks=weeks)
        console.print(f"Built {book}")
        ruleset = review_cmd.demo_ruleset(eng, c)  # demo users approve the shipped pack; only approved content runs
        s = _run_with_progress(eng, c, ruleset, day)
        print_summary(s, ruleset)
        _print_samples(eng, s.run_id)
        tasks_cmd.print_overview(eng, c, day)  # each advisor's call list: capacity and segment budget
        console.print("Next, on this book:", highlight=False)
        for cmd, what in (("audit firings --rule dormant_activation", "browse the firings of one rule"),
                          ("audit firing ID", "one firing in full: rule version, facts, words"),
                          ("why CLIENT_ID", "why each rule did or did not fire for a client"),
                          ("tasks --advisor A001", "an advisor's call list"),
                          ("audit verify", "check the tamper-evident audit chain")):
            console.print(f"  [bold]steward {cmd}[/]  {what}", highlight=False)


def _demo_database(c: Config) -> Any:
    """The configured database, emptied first when the demo built it; refused when it holds other clients."""
    from sqlalchemy import func, select

    from engine.compliance.review import is_demo_database
    from engine.db import make_engine, upgrade
    from engine.models import Client

    url = c.database_url
    path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") and ":memory:" not in url else None
    eng = make_engine(url)
    upgrade(eng)
    with eng.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Client.__table__)).scalar() or 0  # type: ignore[attr-defined]
        demo_built = is_demo_database(conn)
    if n and not demo_built:
        eng.dispose()
        raise StewardError(f"the database {eng.url.render_as_string(hide_password=True)} holds {n:,} clients the demo did not "
                           "build: the demo never touches it. Build the demo elsewhere: "
                           "`steward --database sqlite:///var/demo.db demo` (and pass the same --database afterwards)")
    if n and path is not None:
        eng.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        eng = make_engine(url)
        upgrade(eng)
        console.print(f"Demo database: {rel(path)} (rebuilt)")
    elif n:
        raise StewardError("the demo book is already in this database: drop it first (the demo deletes only SQLite files)")
    else:
        console.print(f"Demo database: {rel(path) if path else eng.url.render_as_string(hide_password=True)}")
    return eng


def _print_samples(eng: Any, run_id: int | None) -> None:
    from engine.supervision import browse as audit

    with eng.connect() as conn:
        rows = audit.samples(conn, run_id)
    console.rule("One sample per rule (rendered in the client's language)")
    for r in rows:
        console.print(f"[bold]#{r.id} {r.rule_id}[/]  client {r.client_id} ({r.locale}), "
                      f"{r.action_type}/{r.channel}, status {r.status}", highlight=False)
        if r.subject:
            console.print(f"  [italic]{r.subject}[/]", highlight=False)
        for line in (r.message or "").splitlines():
            console.print(f"  {line}", highlight=False, soft_wrap=True)


def import_(directory: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of CSV or .xlsx files (docs/import.md)"),
            encoding: str = typer.Option(None, "--encoding", help="encoding of the CSV files, e.g. gb18030 or gbk (default utf-8)"),
            mapping: Path = typer.Option(None, "--mapping", exists=True, dir_okay=False,
                                         help="YAML mapping of a back office's files, headers, units and codes (docs/import.md)")) -> None:
    """Load a back office's files into the database: all rows or, on any error, none.

    Without options the folder holds Steward's own files (clients.csv, holdings.csv, ...; UTF-8
    CSV or .xlsx). --encoding reads other encodings; --mapping reads a back office's own export
    (Chinese headers, 万元, 保守型..激进型) as docs/import.md explains.

    Examples:

      steward import exports/2026-06-15

      steward import docs/examples/backoffice --mapping docs/examples/backoffice/mapping.yaml

      steward import exports/gbk --encoding gb18030
    """
    import tempfile

    from engine.facts import backoffice, importer

    with user_errors():
        c = cfg()
        eng = open_db(c)
        if encoding is None and mapping is None and not any(p.suffix.lower() in (".xlsx", ".xlsm") for p in directory.iterdir()):
            report = importer.import_dir(eng, directory)
        else:
            with tempfile.TemporaryDirectory(prefix="steward-import-") as tmp:
                staged = backoffice.stage(directory, encoding, mapping, Path(tmp))
                try:
                    report = importer.import_dir(eng, Path(tmp))
                except SourceErrors as e:
                    raise SourceErrors(backoffice.relocate(e.problems, staged)) from None
    t = Table(title=f"Imported {rel(directory)}")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in report.counts.items():
        t.add_row(name, f"{n:,}")
    console.print(t)
    console.print("Next: [bold]steward run[/] evaluates the rules over the imported book.")


def run(
    as_of: str = typer.Option(None, "--as-of", help="evaluation date YYYY-MM-DD (default: today)"),
    force: bool = typer.Option(False, "--force", help="evaluate even a closed day or one past the trading calendar"),
    workers: int = typer.Option(0, "--workers", "-w", min=0,
                                help="processes sharing the book by client id range (0: one per core; "
                                     f"a shard gets at least {shards.MIN_SHARD:,} clients)"),
) -> None:
    """Evaluate every client in the database once and record the firings.

    Refuses a day the trading calendar says is closed, or does not know, unless --force.

    Examples:

      steward run --as-of 2026-06-15

      steward run --as-of 2026-06-15 --workers 2

      steward run --as-of 2026-06-13 --force   # a Saturday, on purpose

    With several workers the results are those of one process (docs/operations.md). If a
    worker fails, what the others recorded is kept: run the same day again to complete it.
    """
    with user_errors():
        c = cfg()
        day = parse_day(as_of, c)
        eng = open_db(c)
        check_day(eng, c, day, force)
        ruleset = review_cmd.approved_for_run(eng, c)  # only approved content runs (engine.compliance.review)
        s = _run_with_progress(eng, c, ruleset, day, workers or shards.default_workers())
    print_summary(s, ruleset)


def check_day(eng: Any, c: Config, day: date, force: bool) -> None:
    """Refuse a closed or unknown day unless forced; warn when the data is older than the day."""
    from datetime import timedelta

    from engine.facts import run_day, trading_calendar

    with eng.begin() as conn:
        trading_calendar.ensure(conn, c.calendar.exchange, day - timedelta(days=90), day)
        checked = run_day.check(conn, c.calendar.exchange, day)
    for w in checked.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if checked.refusal and not force:
        raise StewardError(checked.refusal)
    if checked.refusal:
        err_console.print(f"[yellow]--force: evaluating anyway.[/] {checked.refusal}", highlight=False, soft_wrap=True)


def read_facts_jsonl(path: Path) -> list[dict[str, Any]]:
    """Facts from a JSON-lines file; unknown fields and bad lines are errors naming the line."""
    known = facts_mod.all_fields()
    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem(rel(path), n, "", f"invalid JSON: {e.msg}"))
            continue
        if not isinstance(obj, dict) or "client_id" not in obj:
            problems.append(Problem(rel(path), n, "client_id", "each line is an object with at least client_id"))
            continue
        for k, v in obj.items():
            if k not in known:
                problems.append(Problem(rel(path), n, k, f"unknown fact field{did_you_mean(k, known)}"))
            elif known[k].type == "date" and v is not None:
                try:
                    obj[k] = date.fromisoformat(v)
                except (TypeError, ValueError):
                    problems.append(Problem(rel(path), n, k, f"expected a date YYYY-MM-DD (got {v!r})"))
            elif v is not None and not facts_mod.type_ok(known[k].type, v):
                problems.append(Problem(rel(path), n, k, f"expected a {known[k].type} (got {v!r})"))
        out.append({**dict.fromkeys(known), **obj})
    if problems:
        raise SourceErrors(problems)
    return out


def evaluate(
    facts_file: Path = typer.Option(..., "--facts", exists=True, dir_okay=False, help="JSON lines, one client's facts per line"),
    rules: Path = typer.Option(None, "--rules", help="rules folder (default: from config)"),
    templates: Path = typer.Option(None, "--templates", help="templates folder (default: from config)"),
    as_of: str = typer.Option(None, "--as-of", help="evaluation date YYYY-MM-DD (default: today)"),
) -> None:
    """Dry run without a database: print each firing as one JSON line.

    Every compliance gate that needs only the client's facts (suitability, AML) is applied;
    a firing it blocks is printed with "blocked". Gates that need the database (consent,
    do-not-call, contact window, caps, ...) are skipped, and the summary says which.

    Example:

      steward evaluate --facts facts.jsonl --as-of 2026-06-15
    """
    with user_errors():
        c = cfg()
        day = parse_day(as_of, c)
        ruleset = load_ruleset(c, [rules] if rules else None, templates)
        batch = read_facts_jsonl(facts_file)
    dry = pipeline.evaluate_gated(c, ruleset, batch, day)
    n = 0
    for f in dry.firings:
        a = f.rule.spec.action
        out = {"client_id": f.match.facts["client_id"], "rule_id": f.rule.id, "action": a.type,
               "channel": a.channel, "subject": f.subject, "message": f.message}
        if f.error:
            out["error"] = f.error
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        n += 1
    for d in dry.blocked:
        last = d.trail[-1] if d.trail else {}
        sys.stdout.write(json.dumps({"client_id": d.match.facts["client_id"], "rule_id": d.match.rule.id,
                                     "blocked": {"stage": last.get("stage"), "reason": d.reason,
                                                 "detail": last.get("detail")}}, ensure_ascii=False) + "\n")
    err_console.print(f"Gates applied: {', '.join(dry.applied) or 'none'} ({len(dry.blocked):,} firing(s) blocked). "
                      f"[yellow]Skipped, they need the database: {', '.join(dry.skipped) or 'none'}[/] — "
                      "`steward run` applies every gate.", highlight=False)
    err_console.print(f"{len(batch):,} clients, {n:,} firings", highlight=False)

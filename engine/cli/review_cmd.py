"""`steward review status|submit|list|show|approve|reject` and `steward rules backtest`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from engine.compliance import impact, proposal_check
from engine.compliance import review
from engine.compliance import users
from engine.cli import rules_cmd, users_cmd
from engine.cli.common import cfg, console, err_console, open_db, parse_day, user_errors
from engine.cli.users_cmd import AS_HELP, acting
from engine.config.base import Config
from engine.errors import Problem, StewardError, did_you_mean
from engine.language.loading import RuleSet, load_ruleset

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="review", help="Submit, review and approve rule and template changes.")
    root.add_typer(users_cmd.app, name="users", help="Users and roles (author, compliance, admin, ...).")
    rules_cmd.app.command("backtest")(backtest)


# ------------------------------------------------------------------ what runs


def print_unapproved(changes: list[review.Change], version: int | None) -> None:
    if not changes:
        return
    err_console.print(f"[yellow]{len(changes)} file(s) differ from approved version {version}; they are NOT run or sent "
                      "until approved (`steward review submit`):[/]", highlight=False)
    for c in changes:
        err_console.print(f"  [yellow]{c.state:>8}[/] {c.path}", highlight=False)


def approved_for_run(eng: Engine, c: Config) -> RuleSet:
    """The last approved version, saying which working files are unapproved and so not sent."""
    ruleset, changes, approved = review.approved_ruleset(eng, c)
    console.print(f"Running approved version {approved.version} (content {approved.content_hash[:12]}, approved by "
                  f"{approved.approved_by} on {approved.approved_at:%Y-%m-%d}).", highlight=False)
    print_unapproved(changes, approved.version)
    return ruleset


def demo_ruleset(eng: Engine, c: Config) -> RuleSet:
    """Demo only: bootstrap demo users and approve the shipped pack on a fresh database, then run it."""
    version = review.demo_bootstrap(eng, c)
    if version is not None:
        console.print(f"Demo bootstrap: users admin, author and compliance created; 'author' submitted the shipped "
                      f"pack and 'compliance' approved it as version {version} (recorded as a demo bootstrap).")
    return approved_for_run(eng, c)


# ------------------------------------------------------------------ review


def _problems(problems: list[Problem]) -> None:
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        console.print(f"[{colour}]{p.severity}[/] {escape(str(p))}", highlight=False)


def _changes(changes: list[review.Change]) -> None:
    for c in changes:
        console.print(f"  {c.state:>8} {c.path}", highlight=False)


@app.command("status")
def status() -> None:
    """The approved version, working files that differ from it (drafts), and open proposals."""
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            approved = review.current(conn)
            open_ = review.proposals(conn, "submitted")
            tampered = review.integrity_problems(conn, c, approved) if approved else []
        changes = review.unapproved(c, approved)
    if approved is None:
        console.print("No approved version yet: nothing runs.")
    else:
        console.print(f"Approved version {approved.version}: {len(approved.manifest)} files, approved by "
                      f"{approved.approved_by} on {approved.approved_at:%Y-%m-%d %H:%M} — {approved.comment}", highlight=False)
    if tampered:
        console.print(f"[bold red]The approved version is not intact: {len(tampered)} problem(s); `steward run` refuses "
                      "to run it until this is investigated:[/]")
        for p in tampered:
            console.print(f"  [red]{escape(str(p))}[/]", highlight=False)
    if changes:
        console.print(f"Draft: {len(changes)} file(s) differ from the approved version and do not run:")
        _changes(changes)
    else:
        console.print("The working files equal the approved version.")
    for p in open_:
        console.print(f"Open proposal {p.id} by {p.author}: {p.note} ({p.lint_errors} lint errors)", highlight=False)


@app.command("submit")
def submit(note: str = typer.Option(..., "--note", "-m", help="what changed and why (the reviewer reads it)"),
           as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Submit the current rules, templates and lint lists as a proposal (author role)."""
    with user_errors():
        c = cfg()
        eng = open_db(c)
        res = review.submit(eng, c, acting(as_), note)
    console.print(f"Proposal {res.proposal_id} submitted with {len(res.changes)} changed file(s):")
    _changes(res.changes)
    _problems(res.problems)
    errors = sum(p.severity == "error" for p in res.problems)
    if errors:
        console.print(f"[red]{errors} error(s): the proposal cannot be approved until they are fixed and resubmitted.[/]")
    console.print(f"Next: a compliance reviewer runs [bold]steward review show {res.proposal_id}[/].")


@app.command("list")
def list_(status_: str = typer.Option(None, "--status", help="submitted, approved or rejected")) -> None:
    """Proposals, newest first."""
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            rows = review.proposals(conn, status_)
    t = Table(title="Proposals")
    for col in ("id", "author", "submitted", "status", "decided by", "lint", "note"):
        t.add_column(col, overflow="fold")
    for p in rows:
        t.add_row(str(p.id), p.author, f"{p.created_at:%Y-%m-%d %H:%M}", p.status, p.decided_by or "",
                  f"{p.lint_errors}E {p.lint_warnings}W", p.note)
    console.print(t)


def _print_impact(imp: impact.Impact) -> None:
    t = Table(title=f"Impact {imp.start} .. {imp.end} over {imp.clients:,} clients (contacts = client x day)")
    for col in ("rule", "state", "added", "removed", "unchanged", "blocked"):
        t.add_column(col, justify="right" if col in ("added", "removed", "unchanged") else "left")
    for r in imp.rules:
        t.add_row(r.rule_id, r.state, f"{r.added:,}", f"{r.removed:,}", f"{r.unchanged:,}",
                  ", ".join(f"{k} {v}" for k, v in sorted(r.blocked.items())))
    console.print(t)
    for r in imp.rules:
        for loc, s in sorted(r.samples.items()):
            console.print(f"[bold]{r.rule_id}[/] {escape(f'[{loc}]')} {s.client_id} {s.day}: "
                          + escape((s.subject + " | " if s.subject else "") + s.text), highlight=False)
    if not imp.rules:
        console.print("No new or changed rules.")


def _range(c: Config, start: str | None, end: str | None) -> tuple[date, date]:
    to = parse_day(end, c)
    return (parse_day(start, c) if start else to - timedelta(days=6)), to


@app.command("show")
def show(proposal_id: int = typer.Argument(..., help="proposal id from `steward review list`"),
         start: str = typer.Option(None, "--from", help="impact preview from YYYY-MM-DD (default: 6 days before --to)"),
         end: str = typer.Option(None, "--to", help="impact preview to YYYY-MM-DD (default: today)"),
         no_impact: bool = typer.Option(False, "--no-impact", help="skip the impact preview"),
         tests: bool = typer.Option(False, "--tests", help="also run the proposal's rule tests (in a child process)"),
         as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """A proposal in full: every changed file as a diff, the lint findings, and the impact preview.

    Proposed files are checked in a child process without database credentials; Python rule
    files are shown as source and never imported here.

    Example: steward review show 3 --tests --as bo
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            users.require(conn, acting(as_), "review.read")
            row = review.proposal(conn, proposal_id)
            files = review.proposal_files(conn, row)
            base = review.base_manifest(conn, row)
            old = review.get_blobs(conn, set(base.values()))
        check = review.check_proposal(c, files, tests=tests)
        problems = check.problems
        changes = review.diff_manifests(base, row.manifest)
        console.print(f"Proposal {row.id} by {row.author} ({row.created_at:%Y-%m-%d %H:%M}), {row.status}"
                      + (f" by {row.decided_by}: {row.comment}" if row.decided_by else "")
                      + f"\nNote: {row.note}\nBase: approved version {row.base_version}; content {row.content_hash[:12]}",
                      highlight=False)
        for ch in changes:
            console.print(escape(review.text_diff(ch.path, old.get(ch.old or ""), files.get(ch.path))), highlight=False)
        console.print(f"Lint: {sum(p.severity == 'error' for p in problems)} error(s), "
                      f"{sum(p.severity == 'warning' for p in problems)} warning(s)")
        _problems(problems)
        _tests(check, tests)
        code = review.python_files(row.manifest)
        if code and not no_impact:
            console.print(f"[yellow]Impact preview skipped: the proposal holds Python rule file(s) {', '.join(code)}; "
                          "proposed code never runs in a reviewer's process. The author can run "
                          "`steward rules backtest RULE --from D --to D` on the working files.[/]", highlight=False)
        elif not no_impact and not any(p.severity == "error" for p in problems):
            a, b = _range(c, start, end)
            _print_impact(impact.compare(eng, c, _approved_or_none(eng, c), _proposal_ruleset(eng, c, row), a, b))


def _tests(check: proposal_check.Check, asked: bool) -> None:
    if not asked:
        console.print("Rule tests: not run (add --tests; `review approve` runs them and needs them to pass).")
        return
    if not check.tests_ran:
        console.print("[red]Rule tests: not run, the proposal has errors.[/]")
        return
    for t in check.failed:
        console.print(f"[red]FAIL[/] {escape(f'{t.path}: {t.rule}: {t.case}: {t.detail}')}", highlight=False)
    console.print(f"Rule tests: {len(check.tests) - len(check.failed)} passed, {len(check.failed)} failed.")


def _approved_or_none(eng: Engine, c: Config) -> RuleSet | None:
    try:
        return review.approved_ruleset(eng, c)[0]
    except review.NothingApproved:
        return None


def _proposal_ruleset(eng: Engine, c: Config, row: Any) -> RuleSet:
    with eng.begin() as conn:
        root = review.materialise(conn, c, row.manifest, row.content_hash)
    sc, rules, templates = review.snapshot_config(c, root)
    return load_ruleset(sc, rules, templates)


@app.command("approve")
def approve(proposal_id: int, comment: str = typer.Option(..., "--comment", "-m", help="why it is approved (kept with the record)"),
            as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Approve a proposal: compliance role, not its author, no lint errors, every rule test passing.

    The proposal is checked and its rule tests run in a child process without database credentials.

    Example: steward review approve 3 --comment "wording checked against COMPLIANCE.md 4" --as bo
    """
    with user_errors():
        c = cfg()
        a = review.approve(open_db(c), c, acting(as_), proposal_id, comment)
    console.print(f"Approved proposal {proposal_id} as version {a.version} ({len(a.manifest)} files, content "
                  f"{a.content_hash[:12]}). `steward run` now runs it.")


@app.command("reject")
def reject(proposal_id: int, comment: str = typer.Option(..., "--comment", "-m", help="what must change"),
           as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Reject a proposal with a comment for its author."""
    with user_errors():
        c = cfg()
        review.reject(open_db(c), acting(as_), proposal_id, comment)
    console.print(f"Rejected proposal {proposal_id}.")


def backtest(rule: str = typer.Argument(..., help="rule id"),
             start: str = typer.Option(..., "--from", help="first day YYYY-MM-DD"),
             end: str = typer.Option(..., "--to", help="last day YYYY-MM-DD")) -> None:
    """Who one rule (as in the working files) would contact over real data, versus the approved version."""
    with user_errors():
        c = cfg()
        eng = open_db(c)
        proposed = load_ruleset(c)
        approved = _approved_or_none(eng, c)
        if proposed.get(rule) is None and (approved is None or approved.get(rule) is None):
            raise StewardError(f"no rule {rule!r}{did_you_mean(rule, [r.id for r in proposed.rules])}")
        imp = impact.compare(eng, c, approved, proposed, parse_day(start, c), parse_day(end, c), only={rule})
    _print_impact(imp)

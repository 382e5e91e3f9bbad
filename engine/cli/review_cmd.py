"""`steward review status|submit|list|show|approve|reject` and `steward rules backtest`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, select

from engine import clock
from engine.compliance import auth, impact, proposal_check, users
from engine.compliance import review
from engine.cli import rules_cmd, users_cmd
from engine.cli.common import cfg, console, err_console, identity, open_db, parse_day, signed_in, user_errors
from engine.config.base import Config
from engine.errors import Problem, StewardError, did_you_mean
from engine.language.loading import RuleSet, load_ruleset

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="review", help="Submit, review and approve rule and template changes.")
    root.add_typer(users_cmd.app, name="users", help="Users, roles and one-time passwords (admin).")
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
    ruleset, changes, approved = review.approved_ruleset(eng, c, for_run=True)
    console.print(f"Running approved version {approved.version} (content {approved.content_hash[:12]}, approved by "
                  f"{approved.approved_by} on {approved.approved_at:%Y-%m-%d}).", highlight=False)
    print_unapproved(changes, approved.version)
    return ruleset


DEMO_ROLES = (("supervisor", "supervisor"), ("advisor", "advisor"), ("operator", "operator"))


def demo_ruleset(eng: Engine, c: Config) -> RuleSet:
    """Demo only: bootstrap demo users and approve the shipped pack on a fresh database, then run it."""
    version = review.demo_bootstrap(eng, c)
    if version is not None:
        console.print(f"Demo bootstrap: users admin, author and compliance created; 'author' submitted the shipped "
                      f"pack and 'compliance' approved it as version {version} (recorded as a demo bootstrap).")
        demo_console_users(eng)
    return approved_for_run(eng, c)


def demo_console_users(eng: Engine) -> dict[str, str]:
    """One demo user per role, each with a printed one-time password (changed at first sign-in)."""
    from engine.models import Advisor

    now = clock.now()
    out: dict[str, str] = {}
    with eng.begin() as conn:
        first_advisor = conn.execute(select(Advisor.__table__.c.id).order_by(  # type: ignore[attr-defined]
            Advisor.__table__.c.id).limit(1)).scalar()  # type: ignore[attr-defined]
        for name, role in DEMO_ROLES:
            if users.get(conn, name) is None:
                users.add(conn, review.DEMO_ADMIN, name, [role], f"Demo {role}",
                          advisor_id=first_advisor if role == "advisor" else None)
        for u in users.all_users(conn):
            out[u.name] = auth.one_time_password()
            auth.set_password(conn, review.DEMO_ADMIN, u.name, out[u.name], now, one_time=True)
    t = Table(title="Demo console users (one-time passwords, shown once; each must choose a new one at first sign-in)")
    for col in ("user", "roles", "one-time password"):
        t.add_column(col)
    with eng.connect() as conn:
        for u in users.all_users(conn):
            t.add_row(u.name, ", ".join(sorted(u.roles)) + (f" ({u.advisor_id})" if u.advisor_id else ""), out[u.name])
    console.print(t)
    console.print("Open the console: [bold]steward --database sqlite:///var/demo.db web[/], then "
                  "http://127.0.0.1:8080/ and sign in as one of them (docs/console.md).", highlight=False)
    return out


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
    """The approved version, working files that differ from it (drafts), and open proposals.

    Example:

      steward review status
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.connect() as conn:
            approved = review.current(conn)
            open_ = review.proposals(conn, "submitted")
            tampered = review.integrity_problems(conn, c, approved) if approved else []
            keys = review.unapproved_config(conn, c, approved)
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
    if keys:
        console.print(f"[bold red]{len(keys)} governed config.yaml key(s) differ from the approved version: `steward run` "
                      "refuses to run until they are approved (`steward review submit`) or restored:[/]")
        _keys(keys)
    for p in open_:
        console.print(f"Open proposal {p.id} by {p.author}: {p.note} ({p.lint_errors} lint errors)", highlight=False)


@app.command("submit")
def submit(note: str = typer.Option(..., "--note", "-m", help="what changed and why (the reviewer reads it)")) -> None:
    """Submit the current rules, templates, lint lists and governed config.yaml keys as a proposal (author role, signed in).

    Example:

      steward review submit --note "dormant threshold 90 -> 120 days"
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        res = review.submit(eng, c, identity(eng, "review submit"), note)
    console.print(f"Proposal {res.proposal_id} submitted with {len(res.changes)} changed file(s):")
    _changes(res.changes)
    if res.config_changes:
        console.print(f"Governed config.yaml keys changed ({len(res.config_changes)}):")
        _keys(res.config_changes)
    _problems(res.problems)
    errors = sum(p.severity == "error" for p in res.problems)
    if errors:
        console.print(f"[red]{errors} error(s): the proposal cannot be approved until they are fixed and resubmitted.[/]")
    console.print(f"Next: a compliance reviewer runs [bold]steward review show {res.proposal_id}[/].")


def _keys(keys: list[Any]) -> None:
    for k in keys:
        console.print(f"  {escape(str(k))}", highlight=False)


@app.command("list")
def list_(status_: str = typer.Option(None, "--status", help="submitted, approved or rejected")) -> None:
    """Proposals, newest first.

    Example:

      steward review list --status submitted
    """
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
         tests: bool = typer.Option(False, "--tests", help="also run the proposal's rule tests (in a child process)")) -> None:
    """A proposal in full: every changed file as a diff, the lint findings, and the impact preview.

    Proposed files are checked in a child process without database credentials; Python rule
    files are shown as source and never imported here.

    Example:

      steward review show 2 --from 2026-06-01 --to 2026-06-30 --tests
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.begin() as conn:
            signed_in(conn, "review show")
            row = review.proposal(conn, proposal_id)
            files = review.proposal_files(conn, row)
            base = review.base_manifest(conn, row)
            old = review.get_blobs(conn, set(base.values()))
            keys = review.config_changes(conn, base, files, row.config_source)
        check = review.check_proposal(review.proposal_config(c, files), files, tests=tests)
        problems = check.problems
        changes = review.diff_manifests(base, row.manifest)
        console.print(f"Proposal {row.id} by {row.author} ({row.created_at:%Y-%m-%d %H:%M}), {row.status}"
                      + (f" by {row.decided_by}: {row.comment}" if row.decided_by else "")
                      + f"\nNote: {row.note}\nBase: approved version {row.base_version}; content {row.content_hash[:12]}",
                      highlight=False)
        for ch in changes:
            console.print(escape(review.text_diff(ch.path, old.get(ch.old or ""), files.get(ch.path))), highlight=False)
        if keys:
            console.print(f"Governed config.yaml keys ({len(keys)} changed, approved -> proposed):")
            _keys(keys)
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
            _print_impact(impact.compare(eng, c, impact.approved_or_none(eng, c), impact.proposal_ruleset(eng, c, row), a, b))


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


@app.command("approve")
def approve(proposal_id: int = typer.Argument(..., help="proposal id from `steward review list`"),
            comment: str = typer.Option(..., "--comment", "-m", help="why it is approved (kept with the record)")) -> None:
    """Approve a proposal: compliance role, signed in, not its author, no lint errors, every rule test passing.

    The proposal is checked and its rule tests run in a child process without database credentials.

    Example:

      steward review approve 2 --comment "wording checked against the prohibited list"
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        a = review.approve(eng, c, identity(eng, "review approve"), proposal_id, comment)
    console.print(f"Approved proposal {proposal_id} as version {a.version} ({len(a.manifest)} files, content "
                  f"{a.content_hash[:12]}). `steward run` now runs it.")


@app.command("reject")
def reject(proposal_id: int = typer.Argument(..., help="proposal id from `steward review list`"),
           comment: str = typer.Option(..., "--comment", "-m", help="what must change")) -> None:
    """Reject a proposal with a comment for its author (compliance role, signed in, not its author).

    Example:

      steward review reject 2 --comment "guarantees a return: prohibited"
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        review.reject(eng, identity(eng, "review reject"), proposal_id, comment)
    console.print(f"Rejected proposal {proposal_id}.")


def backtest(rule: str = typer.Argument(..., help="rule id"),
             start: str = typer.Option(..., "--from", help="first day YYYY-MM-DD"),
             end: str = typer.Option(..., "--to", help="last day YYYY-MM-DD")) -> None:
    """Who one rule (as in the working files) would contact over real data, versus the approved version.

    Example:

      steward rules backtest dormant_activation --from 2026-06-01 --to 2026-06-30
    """
    with user_errors():
        c = cfg()
        eng = open_db(c)
        proposed = load_ruleset(c)
        approved = impact.approved_or_none(eng, c)
        if proposed.get(rule) is None and (approved is None or approved.get(rule) is None):
            raise StewardError(f"no rule {rule!r}{did_you_mean(rule, [r.id for r in proposed.rules])}")
        imp = impact.compare(eng, c, approved, proposed, parse_day(start, c), parse_day(end, c), only={rule})
    _print_impact(imp)

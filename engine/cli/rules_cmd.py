"""`steward rules check|test|list`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from engine.cli.common import cfg, console, err_console, user_errors
from engine.errors import SourceErrors
from engine.language.loading import check_ruleset, load_ruleset
from engine.pipeline.ruletest import run_all

app = typer.Typer(no_args_is_help=True)


def _dirs(directory: Path | None) -> list[Path] | None:
    return [directory] if directory else None


@app.command("check")
def check(directory: Path = typer.Argument(None, help="rules folder (default: from config)"),
          templates: Path = typer.Option(None, "--templates", help="templates folder")) -> None:
    """Report every problem in every rule and template; exit 2 if any.

    Examples:

      steward rules check

      steward rules check rules/playbook
    """
    with user_errors():
        c = cfg()
        ruleset, problems = check_ruleset(c, _dirs(directory), templates)
        if ruleset is None:
            raise SourceErrors(problems)
    for p in problems:
        err_console.print(f"[yellow]{p.severity}[/] {p}", highlight=False)
    console.print(f"{len(ruleset.rules)} rules OK (version {ruleset.version}).")


@app.command("test")
def test(directory: Path = typer.Argument(None, help="rules folder (default: from config)"),
         templates: Path = typer.Option(None, "--templates", help="templates folder")) -> None:
    """Run the rule tests written as data in <rules>/tests/*.yaml.

    Example:

      steward rules test
    """
    with user_errors():
        c = cfg()
        dirs = _dirs(directory) or c.rules_paths
        ruleset = load_ruleset(c, dirs, templates)
        results = run_all(ruleset, dirs)
    t = Table(title="Rule tests")
    for col in ("rule", "case", "result"):
        t.add_column(col, overflow="fold")
    for r in results:
        t.add_row(r.rule, r.case, "[green]pass[/]" if r.ok else f"[red]FAIL[/] {r.detail}")
    console.print(t)
    failed = sum(not r.ok for r in results)
    untested = sorted({r.id for r in ruleset.rules} - {r.rule for r in results})
    if untested:
        err_console.print(f"[yellow]rules without tests:[/] {', '.join(untested)}")
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """List the rules with their class, action and cooldown.

    Example:

      steward rules list
    """
    with user_errors():
        ruleset = load_ruleset(cfg())
    t = Table(title=f"Rules (version {ruleset.version})")
    for col in ("id", "title", "class", "action", "priority", "cooldown", "enabled", "when"):
        t.add_column(col, overflow="fold")
    for r in ruleset.rules:
        a = r.spec.action
        t.add_row(r.id, r.spec.title, r.spec.rule_class, f"{a.type}/{a.channel}", str(a.priority),
                  r.spec.cooldown, "yes" if r.spec.enabled else "no", " ".join(r.spec.when.split()))
    console.print(t)

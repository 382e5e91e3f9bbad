"""The review workflow as a compliance officer runs it: real `steward` processes on a copied pack."""

from __future__ import annotations

import re
from pathlib import Path

from tests import book
from tests.compliance_helpers import copy_shipped
from tests.databases import migrated_sqlite
from tests.test_cli import steward

CONFIG = """rules_dirs: [rules]
templates_dir: templates
compliance:
  lists_dir: compliance
  approved_dir: var/approved
"""


def _setup(tmp_path: Path) -> tuple[list[str], Path]:
    copy_shipped(tmp_path)
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.db'}"
    eng = migrated_sqlite(tmp_path / "s.db")
    book.build(eng)
    eng.dispose()
    return ["--config", str(tmp_path / "config.yaml"), "--database", url], tmp_path


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    r = steward(*args, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return " ".join(r.stdout.replace("│", " ").split())


def refused(*args: str, env: dict[str, str] | None = None) -> str:
    r = steward(*args, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    return " ".join(r.stderr.split())


def one_time(out: str) -> str:
    m = re.search(r"One-time password for \S+: (\S+)", out)
    assert m, out
    return m.group(1)


def login(g: list[str], tmp: Path, name: str, password: str) -> dict[str, str]:
    """Sign `name` in with their own token file; the env to run commands as them."""
    env = {"STEWARD_TOKEN_FILE": str(tmp / f"{name}.token")}
    assert "Signed in as" in ok(*g, "login", name, "--password", password, env=env)
    assert (tmp / f"{name}.token").stat().st_mode & 0o777 == 0o600
    return env


def test_submit_review_approve_run(tmp_path: Path) -> None:
    g, _ = _setup(tmp_path)
    day = ["--as-of", book.AS_OF.isoformat()]
    assert "nothing is approved yet, so nothing runs" in refused(*g, "run", *day)
    root = login(g, tmp_path, "root", one_time(ok(*g, "users", "add", "root", "--role", "admin")))
    ann = login(g, tmp_path, "ANN", one_time(ok(*g, "users", "add", "Ann", "--role", "author", "--role", "compliance",
                                               env=root)))
    bo = login(g, tmp_path, "bo", one_time(ok(*g, "users", "add", "bo", "--role", "compliance", env=root)))
    assert "Proposal 1 submitted with 19 changed file(s)" in ok(*g, "review", "submit", "--note", "first pack", env=ann)
    assert "the author can never approve" in refused(*g, "review", "approve", "1", "-m", "ok", env=ann)
    assert "may not run `steward review approve`" in refused(*g, "review", "approve", "1", "-m", "ok", env=root)
    shown = ok(*g, "review", "show", "1", "--from", "2026-11-19", "--to", "2026-11-20", env=bo)
    assert "+++ proposed/rules/dormant_activation.yaml" in shown and "Lint: 0 error(s), 0 warning(s)" in shown
    assert "concentrated_position new 2 0 0" in shown
    assert "Approved proposal 1 as version 1" in ok(*g, "review", "approve", "1", "-m", "checked wording", env=bo)

    tpl = tmp_path / "templates/dormant_activation/zh-CN.j2"
    tpl.write_text(tpl.read_text(encoding="utf-8").replace("市场有风险", "稳赚不赔，市场有风险"), encoding="utf-8")
    r = steward(*g, "run", *day)
    assert r.returncode == 0, r.stderr
    assert "Running approved version 1" in " ".join(r.stdout.split())
    assert "modified templates/dormant_activation/zh-CN.j2" in " ".join(r.stderr.split())
    assert "NOT run or sent" in " ".join(r.stderr.split())
    assert "Draft: 1 file(s) differ" in ok(*g, "review", "status")
    submitted = ok(*g, "review", "submit", "--note", "stronger words", env=ann)
    assert "lint.prohibited: '稳赚不赔'" in submitted and "cannot be approved" in submitted
    assert "cannot be approved" in refused(*g, "review", "approve", "2", "-m", "ok", env=bo)
    assert "Rejected proposal 2" in ok(*g, "review", "reject", "2", "-m", "prohibited claim", env=bo)
    listed = ok(*g, "review", "list")
    assert "rejected" in listed and "approved" in listed


def test_backtest_one_rule(tmp_path: Path) -> None:
    g, root = _setup(tmp_path)
    out = ok(*g, "rules", "backtest", "concentrated_position", "--from", "2026-11-20", "--to", "2026-11-20")
    assert "concentrated_position new 2 0 0" in out and "[en] C003 2026-11-20: 示例证券: Dear 客户C003" in out
    assert "no rule 'concentrated_postion' (did you mean 'concentrated_position'?)" in refused(
        *g, "rules", "backtest", "concentrated_postion", "--from", "2026-11-20", "--to", "2026-11-20")

"""The `steward` command as a user runs it: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests import cli_process
from tests.databases import migrated_sqlite
from tests.faketoday import python_m

ROOT = Path(__file__).resolve().parent.parent
STEWARD = python_m("engine.cli.__main__")


def steward(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), **(env or {})}
    e.pop("STEWARD_DATABASE_URL", None)
    return cli_process.run(list(args), env=e, cwd=cwd)


def test_rules_check_ok() -> None:
    r = steward("rules", "check")
    assert r.returncode == 0, r.stderr
    assert "rules OK" in r.stdout


def test_rules_check_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "aa.yaml").write_text((ROOT / "rules" / "dormant_activation.yaml").read_text().replace("id: dormant_activation", "id: aa").replace("segment ==", "segmnt =="))
    (d / "b.yaml").write_text("id: b\ntitle: [\n")
    r = steward("rules", "check", str(d))
    assert r.returncode == 2
    err = " ".join(r.stderr.split())
    assert "aa.yaml:12: when: unknown fact field 'segmnt' (did you mean 'segment'?)" in err
    assert "b.yaml:3: invalid YAML" in err
    assert "2 problem(s); nothing was run or written." in err


def test_rules_test_passes() -> None:
    r = steward("rules", "test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout


def test_evaluate_prints_json_lines(tmp_path: Path) -> None:
    facts = tmp_path / "f.jsonl"
    facts.write_text(
        json.dumps({"client_id": "X1", "name": "张伟", "locale": "en", "top_weight": 0.7, "market_value": 80000, "top_symbol": "600519"}) + "\n"
        + json.dumps({"client_id": "X2", "days_since_open": 3, "callback_done": False, "opened_on": "2026-11-17", "name": "李娜"}) + "\n",
        encoding="utf-8")
    r = steward("evaluate", "--facts", str(facts), "--as-of", "2026-11-20")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert {(x["client_id"], x["rule_id"], x["action"], x["channel"]) for x in lines} >= {
        ("X1", "concentrated_position", "message", "sms"), ("X2", "new_account_callback", "task", "phone")}
    msg = next(x for x in lines if x["client_id"] == "X1")["message"]
    assert "70%" in msg and "600519" in msg and "November 20, 2026" in msg


def test_evaluate_rejects_bad_facts_with_line_numbers(tmp_path: Path) -> None:
    facts = tmp_path / "f.jsonl"
    facts.write_text('{"client_id": "X1", "top_wieght": 1}\n{not json}\n{"client_id": "X3", "market_value": "lots"}\n')
    r = steward("evaluate", "--facts", str(facts))
    assert r.returncode == 2
    err = " ".join(r.stderr.split())
    assert "f.jsonl:1: top_wieght: unknown fact field (did you mean 'top_weight'?)" in err
    assert "f.jsonl:2: invalid JSON" in err
    assert "f.jsonl:3: market_value: expected a number (got 'lots')" in err


def test_bad_config_names_file_line_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("timezone: Asia/Shanghai\nsegments:\n  value_hgh: 3\nregulator_profile: xx\n")
    r = steward("--config", str(tmp_path / "config.yaml"), "rules", "check")
    assert r.returncode == 2
    err = " ".join(r.stderr.split())
    assert "config.yaml:3: segments.value_hgh: unknown key 'value_hgh' (did you mean 'value_high'?)" in err
    assert "config.yaml:4: regulator_profile: Input should be 'cn', 'us' or 'eu' (got 'xx')" in err


def test_bad_as_of_date() -> None:
    r = steward("evaluate", "--facts", str(ROOT / "pyproject.toml"), "--as-of", "20-11-2026")
    assert r.returncode == 2
    assert "--as-of: expected a date as YYYY-MM-DD, got '20-11-2026'" in r.stderr


def test_audit_on_a_database(tmp_path: Path) -> None:
    from tests import book

    url = f"sqlite:///{tmp_path / 's.db'}"
    eng = migrated_sqlite(tmp_path / "s.db")
    book.build(eng)
    from engine.compliance import review  # only approved content runs: approve the shipped pack first
    from engine.config.base import load_config
    review.demo_bootstrap(eng, load_config(ROOT / "config.yaml"))
    eng.dispose()
    r = steward("--database", url, "run", "--as-of", book.AS_OF.isoformat())
    assert r.returncode == 0, r.stderr
    assert "4 clients evaluated" in " ".join(r.stdout.split())
    r = steward("--database", url, "audit", "list", "--rule", "concentrated_position")
    assert r.returncode == 0 and "C003" in r.stdout and "C001" not in r.stdout
    r = steward("--database", url, "audit", "firing", "1")
    assert r.returncode == 0 and "rule_hash" in r.stdout and "facts" in r.stdout
    r = steward("--database", url, "audit", "firing", "999")
    assert r.returncode == 2 and "no firing with id 999" in r.stderr
    r = steward("--database", url, "audit", "show", "999")  # `audit show` shows audit events (test_auditlog.py)
    assert r.returncode == 2 and "no audit event with id 999" in r.stderr

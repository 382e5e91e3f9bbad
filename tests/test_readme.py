"""Every `steward` line in README.md's shell blocks works as typed after `steward demo`,
in a fresh folder laid out like a checkout (config.yaml, rules/, templates/, compliance/)."""

from __future__ import annotations

import re
from datetime import date
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
DEMO_CLIENTS = "200"
"""`steward demo` builds 2,000 clients; the test builds 200 to stay fast (same code path)."""


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip().startswith("steward ")]
    return lines


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for d in ("rules", "templates", "compliance"):
        (tmp_path / d).symlink_to(ROOT / d)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEWARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("STEWARD_TOKEN", raising=False)
    monkeypatch.setenv("STEWARD_TOKEN_FILE", str(tmp_path / "token"))  # nobody is signed in
    return tmp_path


def _run(line: str) -> tuple[int, str]:
    args = shlex.split(line)[1:]
    if args and args[0] == "demo":
        args += ["--clients", DEMO_CLIENTS]
    r = CliRunner().invoke(app, args)
    return r.exit_code, r.output + (repr(r.exception) if r.exception and not isinstance(r.exception, SystemExit) else "")


def test_readme_has_examples_to_run() -> None:
    examples = readme_examples()
    assert examples[0] == "steward demo" and len(examples) >= 10


def test_every_readme_example_works_after_the_demo(checkout: Path) -> None:
    failed = []
    for line in readme_examples():
        code, out = _run(line)
        if code != 0:
            failed.append(f"{line!r} exited {code}:\n{out[-600:]}")
    assert not failed, "\n\n".join(failed)
    assert (checkout / "var" / "steward.db").exists() and not (checkout / "var" / "demo.db").exists()


def test_demo_rebuilds_its_own_database_but_never_a_real_one(checkout: Path) -> None:
    assert CliRunner().invoke(app, ["demo", "--clients", "50"]).exit_code == 0
    again = CliRunner().invoke(app, ["demo", "--clients", "50"])
    assert again.exit_code == 0 and "(rebuilt)" in again.output
    real = CliRunner().invoke(app, ["--database", "sqlite:///var/real.db", "users", "add", "admin", "--role", "admin"])
    assert real.exit_code == 0
    from engine.db import make_engine
    from engine.models import Client

    eng = make_engine(f"sqlite:///{checkout / 'var' / 'real.db'}")
    with eng.begin() as conn:
        conn.execute(Client.__table__.insert(), [{"id": "X1", "name": "x", "opened_on": date(2020, 1, 1)}])  # type: ignore[attr-defined]
    eng.dispose()
    r = CliRunner().invoke(app, ["--config", str(_config_with_db(checkout, "var/real.db")), "demo", "--clients", "50"])
    assert r.exit_code == 2 and "holds 1 clients the demo did not build" in r.output


def _config_with_db(checkout: Path, db: str) -> Path:
    conf = checkout / "config-real.yaml"
    text = (checkout / "config.yaml").read_text(encoding="utf-8")
    conf.write_text(text.replace("url: sqlite:///var/steward.db", f"url: sqlite:///{db}"), encoding="utf-8")
    return conf

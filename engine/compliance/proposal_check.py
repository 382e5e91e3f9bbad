"""Checking a proposal without running its code in the reviewer's process.

A proposal may hold Python rule files; importing one runs its code. So a reviewer's
`review show` and `review approve` never load proposed content themselves: they unpack the
proposal into a scratch folder and run `python -m engine.cli.check_child` on it, a child
process whose environment holds no database credentials (only PATH, HOME, locale and
temp-folder variables) and whose config names an in-memory database. The child loads and
lints the snapshot and, when asked, runs its rule tests (snapshot rule tests and event rule
tests) and writes the result as JSON; the parent reads only that file.

Results are remembered per process by (content, config, tests): the same bytes give the
same answer, so approving the shipped pack twice in one process checks it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.config.base import Config
from engine.errors import Problem

SAFE_ENV = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "PYTHONPATH", "PYTHONHASHSEED")
"""The only environment variables a check child inherits (plus LC_*): no database URL, password or key."""

CHILD_MODULE = "engine.cli.check_child"
TIMEOUT_S = 900


@dataclass(frozen=True)
class TestResult:
    path: str
    rule: str
    case: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Check:
    """What the child found: lint problems and, when tests ran, every rule test result."""

    problems: list[Problem]
    tests: list[TestResult] = field(default_factory=list)
    tests_ran: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def failed(self) -> list[TestResult]:
        return [t for t in self.tests if not t.ok]

    def to_json(self) -> dict[str, Any]:
        return {"problems": [asdict(p) for p in self.problems], "tests": [asdict(t) for t in self.tests],
                "tests_ran": self.tests_ran}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        return cls([Problem(**p) for p in data["problems"]], [TestResult(**t) for t in data["tests"]],
                   bool(data["tests_ran"]))


_MEMO: dict[str, Check] = {}


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in SAFE_ENV or k.startswith("LC_")}


def child_config(cfg: Config) -> dict[str, Any]:
    """The config as JSON for the child, its database replaced by an in-memory one (no credentials)."""
    data = cfg.model_dump(mode="json")
    data["database"] = {**data.get("database", {}), "url": "sqlite://"}
    return data


def _key(manifest: Mapping[str, str], conf: Mapping[str, Any], tests: bool, base_dir: Path) -> str:
    text = json.dumps([sorted(manifest.items()), conf, tests, str(base_dir)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_in_child(cfg: Config, files: Mapping[str, bytes], tests: bool,
                   write_snapshot: Callable[[Path, Config, Mapping[str, str], Mapping[str, bytes]], None]) -> Check:
    """Lint (and with `tests`, run the rule tests of) a snapshot given as bytes, in a child process."""
    manifest = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}
    conf = child_config(cfg)
    base_dir = cfg.base_dir.resolve()
    key = _key(manifest, conf, tests, base_dir)
    if key in _MEMO:
        return _MEMO[key]
    with tempfile.TemporaryDirectory(prefix="steward-proposal-") as d:
        root, out, conf_path = Path(d) / "snapshot", Path(d) / "result.json", Path(d) / "config.json"
        write_snapshot(root, cfg, manifest, {manifest[k]: v for k, v in files.items()})
        conf_path.write_text(json.dumps(conf), encoding="utf-8")
        cmd = [sys.executable, "-m", CHILD_MODULE, str(root), str(conf_path), str(base_dir), str(out)]
        try:
            proc = subprocess.run(cmd + (["--tests"] if tests else []), env=child_env(), cwd=root,
                                  capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return Check([Problem("proposal", None, "", f"the check process did not finish in {TIMEOUT_S} s")])
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            return Check([Problem("proposal", None, "", f"the check process failed (exit {proc.returncode}): "
                                  + " | ".join(tail))])
        result = Check.from_json(json.loads(out.read_text(encoding="utf-8")))
    _MEMO[key] = result
    return result

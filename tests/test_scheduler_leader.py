"""Two real `steward scheduler` processes on one database: one leads, the other waits and
takes over when the leader is killed; the nightly job runs once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from engine.dispatch.tables import JobRun

ROOT = Path(__file__).resolve().parent.parent
JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]


def _config(tmp_path: Path, url: str, nightly_at: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(f"""database:
  url: {url}
rules_dirs: [{ROOT / 'rules'}]
templates_dir: {ROOT / 'templates'}
dispatch:
  scheduler:
    nightly_at: "{nightly_at}"
    standby_poll_seconds: 0.3
    dispatch_every_seconds: 3600
    lock_file: {tmp_path / 'scheduler.lock'}
""", encoding="utf-8")
    return p


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "engine.cli", "--config", str(config), "scheduler"], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_log(log: Path, text: str, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if text in log.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{log.name} never said {text!r}:\n{log.read_text(errors='replace')}")


def _nightly_runs(eng: Engine) -> list[object]:
    with eng.connect() as c:
        return list(c.execute(select(JOB_RUN).where(JOB_RUN.c.job_id == "nightly")))


def test_one_leader_runs_the_nightly_job_and_a_standby_takes_over(db: Engine, tmp_path: Path) -> None:
    url = db.url.render_as_string(hide_password=False)
    at = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(seconds=8)
    config = _config(tmp_path, url, at.strftime("%H:%M:%S"))
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(config, log_a)
    b = None
    try:
        _wait_log(log_a, "leader:")
        b = _start(config, log_b)
        _wait_log(log_b, "standby:")
        while datetime.now(ZoneInfo("Asia/Shanghai")) < at + timedelta(seconds=3):
            time.sleep(0.2)
        assert "leader:" not in log_b.read_text()
        runs = _nightly_runs(db)
        assert len(runs) == 1 and runs[0].instance.endswith(f":{a.pid}"), log_a.read_text()
        a.send_signal(signal.SIGKILL)  # the leader dies without cleaning up
        a.wait(10)
        _wait_log(log_b, "leader:")
        time.sleep(1.0)
        assert len(_nightly_runs(db)) == 1  # the new leader does not run the same night again
        b.send_signal(signal.SIGTERM)
        assert b.wait(20) == 0
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)

"""Two real `steward scheduler` processes on one database: one leads, the other waits and
takes over when the leader is killed; the nightly job runs once.

The processes run APScheduler on the machine's clock (under STEWARD_FAKE_TODAY, the same
shifted clock as this test, see tests/faketoday.py), so the nightly time is set a few seconds
ahead of that clock; only its time of day matters, never the date. Every wait is bounded and
ends on a condition (a log line, a database row), never after a fixed sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, text

from engine.dispatch.tables import JobRun
from tests.faketoday import python_m

ROOT = Path(__file__).resolve().parent.parent
JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]
SHANGHAI = ZoneInfo("Asia/Shanghai")
LEADS = (10, 25, 60)
"""Seconds between writing the config and the nightly time; longer on a machine too busy to start a scheduler in time."""


def _machine_now() -> datetime:
    """The clock the scheduler processes run on (not the test clock: APScheduler takes no injected one)."""
    return datetime.now(SHANGHAI)


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
        return subprocess.Popen([*python_m("engine.cli"), "--config", str(config), "scheduler"], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait(cond: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    if not cond():
        raise AssertionError(f"waited {seconds:.0f} s: {what}")


def _wait_log(log: Path, text: str, seconds: float = 60.0) -> None:
    try:
        _wait(lambda: text in log.read_text(encoding="utf-8", errors="replace"), f"{log.name} never said {text!r}", seconds)
    except AssertionError as e:
        raise AssertionError(f"{e}:\n{log.read_text(errors='replace')}") from None


def _nightly_runs(eng: Engine) -> list[object]:
    with eng.connect() as c:
        return list(c.execute(select(JOB_RUN).where(JOB_RUN.c.job_id == "nightly")))


def _stored_next_nightly(eng: Engine) -> datetime:
    with eng.connect() as c:
        ts = c.execute(text("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'nightly_evaluation'")).scalar_one()
    return datetime.fromtimestamp(ts, timezone.utc)


def _stop(p: subprocess.Popen[bytes] | None) -> None:
    if p is not None and p.poll() is None:
        p.kill()
        p.wait(10)


def _leader_before_the_nightly(tmp_path: Path, url: str, log: Path) -> tuple[subprocess.Popen[bytes], Path, datetime]:
    """Start the first scheduler with the nightly job a few seconds ahead; it must have stored its
    jobs before that time, so on a busy machine try again with a longer lead."""
    for lead in LEADS:
        at = (_machine_now() + timedelta(seconds=lead)).replace(microsecond=0)
        config = _config(tmp_path, url, at.strftime("%H:%M:%S"))
        a = _start(config, log)
        _wait_log(log, "jobs:")
        if _machine_now() < at - timedelta(seconds=1):
            return a, config, at
        _stop(a)
    raise AssertionError(f"the scheduler never started within {LEADS[-1]} s:\n{log.read_text(errors='replace')}")


def test_one_leader_runs_the_nightly_job_and_a_standby_takes_over(db: Engine, tmp_path: Path) -> None:
    url = db.url.render_as_string(hide_password=False)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a, b = None, None
    try:
        a, config, at = _leader_before_the_nightly(tmp_path, url, log_a)
        assert "leader:" in log_a.read_text()
        b = _start(config, log_b)
        _wait_log(log_b, "standby:")
        _wait(lambda: any(r.status != "running" for r in _nightly_runs(db)),  # type: ignore[attr-defined]
              f"the nightly job (due at {at:%H:%M:%S}) never finished:\n{log_a.read_text(errors='replace')}",
              seconds=(at - _machine_now()).total_seconds() + 60)
        runs = _nightly_runs(db)
        assert len(runs) == 1 and runs[0].instance.endswith(f":{a.pid}"), log_a.read_text()  # type: ignore[attr-defined]
        assert "leader:" not in log_b.read_text()
        a.send_signal(signal.SIGKILL)  # the leader dies without cleaning up
        a.wait(10)
        _wait_log(log_b, "jobs:")  # b leads now and has loaded the stored jobs
        assert _stored_next_nightly(db) > _machine_now() + timedelta(hours=1)  # kept: tomorrow, not tonight again
        b.send_signal(signal.SIGTERM)
        assert b.wait(20) == 0
        assert len(_nightly_runs(db)) == 1  # the new leader did not run the same night again
    finally:
        _stop(a)
        _stop(b)

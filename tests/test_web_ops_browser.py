"""Supervisor and operator journeys in a real Chromium (Debian's, driven by Playwright) against a real
uvicorn server: the supervision sample, charts and XLSX; scheduler status and a calendar override.

Set STEWARD_SCREENSHOTS=1 to rewrite the screenshots in docs/img/ that docs/console.md shows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from engine import clock
from engine.audit import checkpoint
from engine.audit import log as auditlog
from engine.compliance import auth
from engine.config.base import Config
from engine.facts import trading_calendar
from engine.supervision import sampling
from engine.web.app import create_app
from scheduler import jobs, leader, service
from tests import console_book
from tests.identity_helpers import NOW, PASSWORD, fast_hasher
from tests.web_helpers import Clock

from tests.browser_helpers import CHROMIUM, launched_browser, serving, shot, sign_out, signed_in_page
KEY = "console-browser-test-key"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium")


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """One audit key for the module: the shared book's events were written under it."""
    monkeypatch.setenv("STEWARD_AUDIT_KEY", KEY)
    return KEY


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Config]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_HASHER", fast_hasher())
        mp.setenv("STEWARD_AUDIT_KEY", KEY)
        eng, cfg = console_book.build(tmp_path_factory.mktemp("ops"))
        with clock.using(clock.FixedClock(NOW)):
            _scheduler_traces(eng, cfg)
        with serving(create_app(eng, cfg, clock=Clock())) as base:
            yield base, eng, cfg
        eng.dispose()


def _scheduler_traces(eng: Engine, cfg: Config) -> None:
    """What a running service leaves: a job store, job_run rows, a calendar and a chain checkpoint."""
    with eng.begin() as conn:
        trading_calendar.sync(conn, cfg.calendar.exchange, NOW.date().replace(month=1, day=1), NOW.date().replace(year=2027))
        checkpoint.write(conn, cfg.path(cfg.audit.checkpoint_file), auditlog.audit_key(), NOW)
    sched = service.build_scheduler(eng, cfg)
    sched.start(paused=True)
    try:
        service.ensure_jobs(sched, service.job_specs(cfg, None, None), cfg)
    finally:
        sched.shutdown(wait=False)
    assert jobs.claim_slot(eng, "nightly", "2026-11-20")
    jobs.finish_slot(eng, "nightly", "2026-11-20", "done", "run 1: 5 clients, 6 firings")
    jobs.record_calendar_status(eng, cfg, NOW.date())


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launched_browser()


def test_supervisor_decides_a_sample_item_reads_charts_and_exports_xlsx(server: tuple[str, Engine, Config],
                                                                       browser: object, tmp_path: Path) -> None:
    base, eng, _ = server
    page = signed_in_page(browser, base, "zhao.lei", PASSWORD)
    page.click("nav >> text=Supervision sample")  # type: ignore[attr-defined]
    row = page.locator("#open tr[id^=review-]").first  # type: ignore[attr-defined]
    rid = int(row.get_attribute("id").split("-")[1])
    shot(page, "supervision")
    row.locator("select[name=decision]").select_option("escalate")
    row.locator("textarea[name=comment]").fill("产品名称不应出现在服务消息中")
    row.locator("button.record").click()
    page.wait_for_selector(f"#decided-{rid}")  # type: ignore[attr-defined]
    assert page.inner_text(f"#decided-{rid} .decision") == "escalate"  # type: ignore[attr-defined]
    assert page.locator(f"#review-{rid}").count() == 0  # type: ignore[attr-defined]
    with eng.connect() as conn:
        assert conn.execute(select(sampling.REVIEW.c.decided_by).where(sampling.REVIEW.c.id == rid)).scalar() == "zhao.lei"
    page.click("nav >> text=Charts")  # type: ignore[attr-defined]
    for chart in ("by-day", "sends", "suppressions", "callbacks", "kpi-assets", "kpi-churn"):
        page.wait_for_selector(f"#{chart} canvas")  # type: ignore[attr-defined]  # ECharts drew each one
    shot(page, "charts-all", full=True)
    page.click("nav >> text=Firings")  # type: ignore[attr-defined]
    with page.expect_download() as dl:  # type: ignore[attr-defined]
        page.click("#xlsx")  # type: ignore[attr-defined]
    assert dl.value.suggested_filename == "firings.xlsx"
    target = tmp_path / "firings.xlsx"
    dl.value.save_as(target)
    rows = list(load_workbook(target).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("id", "as_of", "rule_id") and len(rows) > 1
    page.click("nav >> text=Audit chain")  # type: ignore[attr-defined]
    assert page.inner_text("#chain-status").startswith("Intact")  # type: ignore[attr-defined]
    assert "Asia/Shanghai" in page.inner_text("#checkpoint")  # type: ignore[attr-defined]
    shot(page, "chain")
    sign_out(page)


def test_operator_reads_scheduler_status_and_overrides_a_day(server: tuple[str, Engine, Config],
                                                             browser: object) -> None:
    base, eng, cfg = server
    lock = leader.FileLock(service.default_lock_file(cfg))
    assert lock.try_acquire()  # this test process plays the leading scheduler
    try:
        page = signed_in_page(browser, base, "chen.op", PASSWORD, lang="zh-CN")
        page.goto("/scheduler?lang=zh-CN")  # type: ignore[attr-defined]
        assert f"pid {os.getpid()}" in page.inner_text("#leader")  # type: ignore[attr-defined]
        assert "Asia/Shanghai" in page.inner_text("#job-nightly_evaluation .next")  # type: ignore[attr-defined]
        assert "run 1: 5 clients" in page.inner_text("#job-nightly_evaluation")  # type: ignore[attr-defined]
        shot(page, "scheduler")
    finally:
        lock.release()
    page.goto("/calendar")  # type: ignore[attr-defined]
    page.fill("#set-days input[name=day]", "2026-12-31")  # type: ignore[attr-defined]
    page.check("#set-days input[value=closed]")  # type: ignore[attr-defined]
    page.click("#set")  # type: ignore[attr-defined]
    page.wait_for_selector("#override-2026-12-31")  # type: ignore[attr-defined]
    shot(page, "calendar")
    with eng.connect() as conn:
        assert trading_calendar.day_state(conn, cfg.calendar.exchange, NOW.date().replace(month=12, day=31)) is False
    page.click("#override-2026-12-31 button.remove")  # type: ignore[attr-defined]
    page.wait_for_selector("#done")  # type: ignore[attr-defined]
    assert page.locator("#override-2026-12-31").count() == 0  # type: ignore[attr-defined]
    with eng.connect() as conn:
        assert trading_calendar.day_state(conn, cfg.calendar.exchange, NOW.date().replace(month=12, day=31)) is True
    sign_out(page)

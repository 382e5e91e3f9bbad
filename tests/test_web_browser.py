"""Role journeys in a real Chromium (Debian's, driven by Playwright) against a real uvicorn server.

One browser for the module; each journey gets its own context (cookies). Set STEWARD_SCREENSHOTS=1 to
rewrite the screenshots in docs/img/ that docs/console.md shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from engine import clock
from engine.compliance import auth, review
from engine.db import make_engine, upgrade
from engine.language.loading import load_ruleset
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from engine.web.app import create_app
from tests import book
from tests.compliance_helpers import copy_shipped, pack_config
from tests.conftest import shipped_config
from tests.identity_helpers import PASSWORD, fast_hasher, make_user

from tests.browser_helpers import CHROMIUM, launched_browser, serving, shot, sign_out, signed_in_page
DAY = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai on the book's day
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:  # cheap argon2 for the module (conftest does it per test)
        mp.setattr(auth, "_HASHER", fast_hasher())
        yield from _server(tmp_path_factory)


def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("console")
    copy_shipped(root)
    cfg = pack_config(shipped_config().model_copy(update={"rules_dirs": ("rules",)}), root)
    eng = make_engine(f"sqlite:///{root / 's.db'}")
    upgrade(eng)
    book.build(eng)
    for name, roles in (("li.na", ["author"]), ("wang.fang", ["compliance"]), ("zhao.lei", ["supervisor"]),
                        ("chen.op", ["operator"]), ("admin", ["admin"])):
        make_user(eng, name, roles)
    tpl = root / "templates/dormant_activation/zh-CN.j2"
    review.submit(eng, cfg, "li.na", "first pack")
    review.approve(eng, cfg, "wang.fang", 1, "baseline")
    with clock.using(clock.FixedClock(DAY)):  # the contact window judged at the book's day, not today
        run(eng, cfg, load_ruleset(cfg), book.AS_OF)
    with eng.begin() as c:
        c.execute(update(book.Client.__table__).values(phone="13800000001"))  # type: ignore[attr-defined]
        advisor = c.execute(select(FIRING.c.advisor_id).where(FIRING.c.action_type == "task")).scalars().first()
    make_user(eng, "sun.adv", ["advisor"], advisor_id=advisor)
    tpl.write_text(tpl.read_text(encoding="utf-8").replace("市场有风险", "市场总有风险"), encoding="utf-8")
    review.submit(eng, cfg, "li.na", "softer risk wording")
    with serving(create_app(eng, cfg)) as base:
        yield base
    eng.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launched_browser()


def test_compliance_reviews_and_approves_in_chinese(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "Wang.Fang", PASSWORD, lang="zh-CN")
    page.goto("/reviews?lang=zh-CN")  # type: ignore[attr-defined]
    assert "审核队列" in page.inner_text("h1")  # type: ignore[attr-defined]
    shot(page, "review-queue")
    page.click("#proposals a >> text=2")  # type: ignore[attr-defined]
    assert page.inner_text("table.diff ins") == "总"  # type: ignore[attr-defined]
    shot(page, "proposal")
    page.fill("textarea[name=comment]", "措辞已核对")  # type: ignore[attr-defined]
    page.click("#approve", timeout=60_000)  # type: ignore[attr-defined]  # approval re-checks the pack: slow on a loaded machine
    assert page.inner_text("#status") == "已批准"  # type: ignore[attr-defined]
    sign_out(page)


def test_author_sees_the_proposal_but_cannot_decide(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "li.na", PASSWORD)
    page.goto("/reviews/2")  # type: ignore[attr-defined]
    assert page.locator("#approve").count() == 0  # type: ignore[attr-defined]
    resp = page.goto("/admin/users")  # type: ignore[attr-defined]
    assert resp.status == 403  # type: ignore[union-attr]
    sign_out(page)


def test_advisor_works_the_call_list(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "sun.adv", PASSWORD)
    page.goto("/calls")  # type: ignore[attr-defined]
    row = page.locator("#calls tr[id^=task-]").first  # type: ignore[attr-defined]
    task_id = row.get_attribute("id")
    assert "****" in row.inner_text()  # the phone is masked
    shot(page, "calls")
    row.locator("button[value=reached]").click()
    page.wait_for_load_state()  # type: ignore[attr-defined]
    assert page.locator(f"#{task_id}").count() == 0  # type: ignore[attr-defined]
    sign_out(page)


def test_supervisor_filters_firings_and_exports(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "zhao.lei", PASSWORD)
    page.goto("/firings?rule=new_account_callback")  # type: ignore[attr-defined]
    assert "Firings" in page.inner_text("h1") and "(Total 1)" in page.inner_text("#total")  # type: ignore[attr-defined]
    page.click("#firings a")  # type: ignore[attr-defined]
    assert "new_account_callback" in page.inner_text("h1")  # type: ignore[attr-defined]
    assert "id: new_account_callback" in page.inner_text("#source")  # type: ignore[attr-defined]
    shot(page, "firing")
    page.click("h1 a")  # type: ignore[attr-defined]  # the client's day: why each rule did or did not fire
    assert "FIRED" in page.inner_text("#verdicts")  # type: ignore[attr-defined]
    shot(page, "client")
    page.goto("/firings")  # type: ignore[attr-defined]
    shot(page, "firings")
    with page.expect_download() as dl:  # type: ignore[attr-defined]
        page.click("#csv")  # type: ignore[attr-defined]
    assert dl.value.suggested_filename == "firings.csv"
    page.goto("/charts")  # type: ignore[attr-defined]
    page.wait_for_selector("#by-day canvas")  # type: ignore[attr-defined]  # ECharts drew
    shot(page, "charts")
    sign_out(page)


def test_operator_sees_the_red_banner_and_admin_adds_a_user(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "chen.op", PASSWORD)
    page.goto("/outbox")  # type: ignore[attr-defined]
    assert "channel not configured" in page.inner_text("#banner")  # type: ignore[attr-defined]
    shot(page, "outbox")
    sign_out(page)
    page = signed_in_page(browser, server, "admin", PASSWORD)
    page.goto("/admin/users")  # type: ignore[attr-defined]
    page.fill("#add-user input[name=name]", "Zhou.Min")  # type: ignore[attr-defined]
    page.check("#add-user input[value=advisor]")  # type: ignore[attr-defined]
    page.click("#add-user button")  # type: ignore[attr-defined]
    assert page.inner_text("#one-time").startswith("One-time password: zhou.min:")  # type: ignore[attr-defined]
    shot(page, "users")
    sign_out(page)

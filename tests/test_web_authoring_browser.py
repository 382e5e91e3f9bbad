"""Issue 11 in a real Chromium: an author edits a threshold in the browser (a live error, then fixed), previews
it against a real client and submits; compliance sees the diff, the rule tests and the impact, cannot approve
while a test fails, approves when green; an author never approves their own proposal.

Set STEWARD_SCREENSHOTS=1 to rewrite the screenshots in docs/img/ that docs/console.md shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.compliance import auth, review
from engine.db import make_engine, upgrade
from engine.web.app import create_app
from tests import book
from tests.compliance_helpers import BASE_RULES, copy_shipped, pack_config
from tests.conftest import shipped_config
from tests.identity_helpers import PASSWORD, fast_hasher, make_user

from tests.browser_helpers import CHROMIUM, launched_browser, serving, shot, sign_out, signed_in_page
ROOT = Path(__file__).resolve().parent.parent
RULE = "rules/dormant_activation.yaml"
THRESHOLD = re.compile(r"market_value >= \d+")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:  # cheap argon2 for the module (conftest does it per test)
        mp.setattr(auth, "_HASHER", fast_hasher())
        root = tmp_path_factory.mktemp("authoring-console")
        copy_shipped(root)
        (root / "rules/tests").mkdir()
        for rid in BASE_RULES:
            (root / "rules/tests" / f"{rid}.yaml").write_bytes((ROOT / "rules/tests" / f"{rid}.yaml").read_bytes())
        cfg = pack_config(shipped_config().model_copy(update={"rules_dirs": ("rules",)}), root)
        eng = make_engine(f"sqlite:///{root / 's.db'}")
        upgrade(eng)
        book.build(eng)
        for name, roles in (("li.na", ["author"]), ("wang.fang", ["compliance"]), ("he.xin", ["author", "compliance"])):
            make_user(eng, name, roles)
        review.submit(eng, cfg, "li.na", "first pack")
        review.approve(eng, cfg, "wang.fang", 1, "baseline")
        with serving(create_app(eng, cfg)) as base:
            yield base
        eng.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launched_browser()


def _edit_threshold(page: object, value: str, note: str, shots: bool = False) -> int:
    """Author: open the rule, type an error, see it, fix it, preview on client C002, submit. Returns the proposal id."""
    p: object = page
    p.goto("/author")  # type: ignore[attr-defined]
    p.click(f"#rules a >> text={RULE}")  # type: ignore[attr-defined]
    p.wait_for_selector("#check-ok")  # type: ignore[attr-defined]  # the check ran on load
    text = p.input_value("#rule_text")  # type: ignore[attr-defined]
    p.fill("#rule_text", THRESHOLD.sub(f"market_valu >= {value}", text))  # type: ignore[attr-defined]
    p.wait_for_selector("#problems >> text=did you mean")  # type: ignore[attr-defined]
    problems = p.inner_text("#problems")  # type: ignore[attr-defined]
    assert re.search(rf"{RULE}:\d+: when: ", problems), problems
    if shots:
        p.locator("#check").scroll_into_view_if_needed()  # type: ignore[attr-defined]
        shot(p, "author-check")
    p.fill("#rule_text", THRESHOLD.sub(f"market_value >= {value}", text))  # type: ignore[attr-defined]
    p.wait_for_selector("#check-ok")  # type: ignore[attr-defined]
    p.fill("#client", "C002")  # type: ignore[attr-defined]
    p.fill("input[name=day]", book.AS_OF.isoformat())  # type: ignore[attr-defined]
    p.click("#preview-btn")  # type: ignore[attr-defined]
    p.wait_for_selector("#preview-result")  # type: ignore[attr-defined]
    assert "【示例证券】" in p.inner_text("tr.preview-zh-CN")  # type: ignore[attr-defined]
    if shots:
        p.locator("#preview").scroll_into_view_if_needed()  # type: ignore[attr-defined]
        shot(p, "author-preview")
    p.fill("#note", note)  # type: ignore[attr-defined]
    p.click("#submit")  # type: ignore[attr-defined]
    p.wait_for_url(re.compile(r"/reviews/\d+$"))  # type: ignore[attr-defined]
    return int(p.url.rsplit("/", 1)[1])  # type: ignore[attr-defined]


def _impact(page: object) -> str:
    page.click("#impact-start")  # type: ignore[attr-defined]
    page.wait_for_selector("#impact-result")  # type: ignore[attr-defined]
    return str(page.inner_text("#impact-result"))  # type: ignore[attr-defined]


def test_author_edits_and_compliance_approves_only_when_green(server: str, browser: object) -> None:
    author = signed_in_page(browser, server, "li.na", PASSWORD, height=900)
    failing = _edit_threshold(author, "150000", "dormant threshold 50k -> 150k", shots=True)
    assert "dormant threshold 50k -> 150k" in author.inner_text("main")  # type: ignore[attr-defined]
    assert author.locator("#approve").count() == 0  # type: ignore[attr-defined]  # an author has no decision to make
    sign_out(author)

    reviewer = signed_in_page(browser, server, "wang.fang", PASSWORD, height=900)
    reviewer.goto(f"/reviews/{failing}")  # type: ignore[attr-defined]
    assert "150000" in reviewer.inner_text("table.diff ins")  # type: ignore[attr-defined]
    assert "expected fire, rule did not fire" in reviewer.inner_text("#tests-failed")  # type: ignore[attr-defined]
    assert reviewer.is_disabled("#approve")  # type: ignore[attr-defined]
    reviewer.locator("#approve").scroll_into_view_if_needed()  # type: ignore[attr-defined]
    shot(reviewer, "proposal-tests")
    impact = _impact(reviewer)
    assert "dormant_activation (changed)" in impact  # type: ignore[attr-defined]
    assert "C002" in reviewer.inner_html("#impact-result .removed-clients")  # type: ignore[attr-defined]
    reviewer.locator("#impact-form").scroll_into_view_if_needed()  # type: ignore[attr-defined]
    shot(reviewer, "impact")
    # the button is disabled, and a forged POST is refused by the server as well
    token = reviewer.get_attribute("input[name=csrf_token]", "value")  # type: ignore[attr-defined]
    r = reviewer.request.post(f"/reviews/{failing}/decide",  # type: ignore[attr-defined]
                              form={"decision": "approve", "comment": "ok", "csrf_token": token})
    assert r.status == 400 and "rule test(s)" in r.text()
    reviewer.fill("textarea[name=comment]", "breaks the dormant rule tests")  # type: ignore[attr-defined]
    reviewer.click("#reject")  # type: ignore[attr-defined]
    assert reviewer.inner_text("#status") == "rejected"  # type: ignore[attr-defined]
    sign_out(reviewer)

    author = signed_in_page(browser, server, "li.na", PASSWORD, height=900)
    green = _edit_threshold(author, "60000", "dormant threshold 50k -> 60k")
    sign_out(author)

    reviewer = signed_in_page(browser, server, "wang.fang", PASSWORD, height=900)
    reviewer.goto(f"/reviews/{green}")  # type: ignore[attr-defined]
    assert "0 failed" in reviewer.inner_text("#tests-summary")  # type: ignore[attr-defined]
    assert "dormant_activation (changed)" in _impact(reviewer)
    assert not reviewer.is_disabled("#approve")  # type: ignore[attr-defined]
    reviewer.fill("textarea[name=comment]", "threshold checked, tests green")  # type: ignore[attr-defined]
    reviewer.click("#approve")  # type: ignore[attr-defined]
    assert reviewer.inner_text("#status") == "approved"  # type: ignore[attr-defined]
    reviewer.goto("/versions")  # type: ignore[attr-defined]
    assert "threshold checked, tests green" in reviewer.inner_text("#versions")  # type: ignore[attr-defined]
    shot(reviewer, "versions")
    reviewer.click("#versions a >> text=2")  # type: ignore[attr-defined]
    reviewer.click(f"#files a >> text={RULE}")  # type: ignore[attr-defined]
    assert "market_value >= 60000" in reviewer.inner_text("#file")  # type: ignore[attr-defined]
    sign_out(reviewer)


def test_an_author_with_the_compliance_role_cannot_approve_their_own(server: str, browser: object) -> None:
    page = signed_in_page(browser, server, "He.Xin", PASSWORD, height=900)
    pid = _edit_threshold(page, "70000", "dormant threshold to 70k")
    assert "The author can never approve or reject their own proposal." in page.inner_text("main")  # type: ignore[attr-defined]
    assert page.is_disabled("#approve") and page.is_disabled("#reject")  # type: ignore[attr-defined]
    token = page.get_attribute("input[name=csrf_token]", "value")  # type: ignore[attr-defined]
    r = page.request.post(f"/reviews/{pid}/decide",  # type: ignore[attr-defined]
                          form={"decision": "approve", "comment": "mine", "csrf_token": token})
    assert r.status == 403 and "the author can never approve or reject" in r.text()
    sign_out(page)

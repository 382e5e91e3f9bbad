"""Issue 11, compliance and author pages without a browser: rule tests gate approval, the impact preview,
approved versions, the author's editor (live check, preview, draft, submit) and the drafts never running."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from engine.audit import facts_store
from engine.audit import log as auditlog
from engine.compliance import auth, drafts, review
from engine.config.base import Config
from engine.db import make_engine, upgrade
from engine.errors import StewardError
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from tests import book
from tests.compliance_helpers import BASE_RULES, copy_shipped, pack_config
from tests.conftest import shipped_config
from tests.identity_helpers import fast_hasher, make_user
from tests.web_helpers import Clock, client, csrf, sign_in

RULE = "rules/dormant_activation.yaml"
SHIPPED = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def approved_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three shipped rules with their rule tests, approved as version 1 on the test book, built once
    (approval runs the rule tests in a child process); each test gets its own copy of the folder."""
    root = tmp_path_factory.mktemp("authoring")
    copy_shipped(root)
    (root / "rules/tests").mkdir()
    for rid in BASE_RULES:
        (root / "rules/tests" / f"{rid}.yaml").write_bytes((SHIPPED / "rules/tests" / f"{rid}.yaml").read_bytes())
    cfg = pack_config(shipped_config().model_copy(update={"rules_dirs": ("rules",)}), root)
    eng = make_engine(f"sqlite:///{root / 's.db'}")
    upgrade(eng)
    book.build(eng)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_HASHER", fast_hasher())
        for name, roles in (("li.na", ["author"]), ("wang.fang", ["compliance"]), ("zhao.lei", ["supervisor"])):
            make_user(eng, name, roles)
    review.submit(eng, cfg, "li.na", "first pack")
    review.approve(eng, cfg, "wang.fang", 1, "baseline")
    eng.dispose()
    return root


@pytest.fixture
def project(approved_once: Path, tmp_path: Path) -> Iterator[tuple[Engine, Config]]:
    root = tmp_path / "p"
    shutil.copytree(approved_once, root)
    eng = make_engine(f"sqlite:///{root / 's.db'}")
    yield eng, pack_config(shipped_config().model_copy(update={"rules_dirs": ("rules",)}), root)
    eng.dispose()


def signed(engine: Engine, cfg: Config, name: str) -> TestClient:
    c = client(engine, cfg, Clock())
    assert sign_in(c, name) == 303
    return c


def editor_form(c: TestClient, rule: str = RULE) -> dict[str, str]:
    """The editor's fields as the page fills them."""
    page = c.get(f"/author/edit?rule={rule}").text
    form = {"csrf_token": csrf(c), "rule": rule}
    for name in ["rule_text", *(f"tpl_{loc}" for loc in drafts.LOCALES)]:
        m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
        assert m, name
        form[name] = m.group(1).replace("&#34;", '"').replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&").replace("&#39;", "'")
    return form


def events(engine: Engine, name: str) -> list[dict]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        q = select(auditlog.EVENT).where(auditlog.EVENT.c.name == name).order_by(auditlog.EVENT.c.seq)
        return [auditlog.body_of(r) for r in conn.execute(q)]


# ------------------------------------------------------------------ the author's editor


def test_the_editor_checks_as_you_type_with_located_errors(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "li.na")
    form = editor_form(c)
    assert "market_value >= 50000" in form["rule_text"] and "拒收请回复R" in form["tpl_zh-CN"] or "firm" in form["tpl_zh-CN"]
    ok = c.post("/author/check", data=form)
    assert ok.status_code == 200 and 'id="check-ok"' in ok.text
    bad = dict(form, rule_text=form["rule_text"].replace("market_value >= 50000", "market_valu >= 50000"))
    r = c.post("/author/check", data=bad)
    assert re.search(r"rules/dormant_activation\.yaml:\d+: when: .*market_valu", r.text), r.text
    assert "did you mean" in r.text
    lint = dict(form, **{"tpl_zh-CN": form["tpl_zh-CN"] + " 稳赚不赔"})
    r = c.post("/author/check", data=lint)
    assert re.search(r"templates/dormant_activation/zh-CN\.j2:\d+: lint\.prohibited", r.text), r.text


def test_preview_renders_every_locale_against_a_real_client(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "li.na")
    form = editor_form(c)
    with eng.connect() as conn:
        cid = conn.execute(select(book.Client.__table__.c.id).order_by(book.Client.__table__.c.id)).scalars().first()  # type: ignore[attr-defined]
    r = c.post("/author/preview", data=dict(form, client=cid, day=book.AS_OF.isoformat()))
    assert r.status_code == 200, r.text
    for loc in drafts.LOCALES:
        assert f'class="preview-{loc}"' in r.text
    assert "【示例证券】" in r.text and 'id="fires"' in r.text
    [viewed] = [e for e in events(eng, "client.viewed") if e["data"].get("page") == "author preview"]
    assert viewed["client_id"] == cid and viewed["actor"] == "li.na"
    assert c.post("/author/preview", data=dict(form, client="NOPE", day="2026-11-20")).status_code == 404
    bad = dict(form, rule_text="id: [")
    assert "fix the errors" in c.post("/author/preview", data=dict(bad, client=cid, day="2026-11-20")).text


def test_a_saved_draft_never_runs(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "li.na")
    form = editor_form(c)
    lowered = dict(form, rule_text=form["rule_text"].replace("market_value >= 50000", "market_value >= 1"))
    r = c.post("/author/save", data=lowered)
    assert r.status_code == 303 and "saved=1" in r.headers["location"]
    assert "market_value >= 1 and" in editor_form(c)["rule_text"]  # the draft comes back in the editor
    [saved] = events(eng, "draft.saved")
    assert saved["actor"] == "li.na" and saved["data"]["rule"] == RULE
    # neither the working files nor the approved snapshot changed, and a run uses the approved threshold
    assert "market_value >= 50000" in (proj.base_dir / RULE).read_text(encoding="utf-8")
    ruleset, unapproved, approved = review.approved_ruleset(eng, proj)
    assert approved.version == 1 and unapproved == []
    assert "market_value >= 50000" in ruleset.get("dormant_activation").spec.when  # type: ignore[union-attr]
    run(eng, proj, ruleset, book.AS_OF)
    with eng.connect() as conn:
        values = [f["market_value"] for f in facts_store.load(conn, list(conn.execute(
            select(FIRING.c.facts, FIRING.c.facts_sha256).where(FIRING.c.rule_id == "dormant_activation"))))]
    assert values and min(values) >= 50000


def test_submitting_a_draft_makes_a_proposal_like_the_cli(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "li.na")
    form = editor_form(c)
    changed = dict(form, rule_text=form["rule_text"].replace("market_value >= 50000", "market_value >= 60000"))
    r = c.post("/author/submit", data=dict(changed, note=""))
    assert r.status_code == 400 and "note: say what changed" in r.text
    r = c.post("/author/submit", data=dict(changed, note="dormant threshold 50k -> 60k"))
    assert r.status_code == 303 and r.headers["location"] == "/reviews/2"
    with eng.connect() as conn:
        p = review.proposal(conn, 2)
        approved = review.current(conn)
        assert approved is not None
        changes = review.diff_manifests(approved.manifest, p.manifest)
        [draft] = drafts.drafts_of(conn, "li.na")
    assert p.author == "li.na" and [ch.path for ch in changes] == [RULE]
    assert draft.status == "submitted" and draft.proposal_id == 2
    [sub] = events(eng, "draft.submitted")
    assert sub["data"]["proposal"] == 2 and events(eng, "proposal.submitted")[-1]["data"]["proposal"] == 2
    again = c.post("/author/submit", data=dict(changed, note="again"))
    assert again.status_code == 400 and "already submitted as proposal 2" in again.text


def test_a_draft_saved_before_a_newer_approval_must_be_saved_again(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "li.na")
    form = editor_form(c)
    edited = dict(form, rule_text=form["rule_text"].replace("market_value >= 50000", "market_value >= 60000"))
    did = drafts.save(eng, proj, "li.na", drafts.Edit(RULE, edited["rule_text"], {}))
    pid = _propose(eng, proj, "priority: 40", "priority: 41")
    review.approve(eng, proj, "wang.fang", pid, "another change first")
    with pytest.raises(StewardError, match="saved against approved version 1, but version 2 has been approved since"):
        drafts.submit(eng, proj, "li.na", did, "late")
    assert "A newer version has been approved since" in c.get(f"/author/edit?rule={RULE}").text
    r = c.post("/author/submit", data=dict(edited, note="saved again over version 2"))  # saving re-bases it
    assert r.status_code == 303
    with eng.connect() as conn:
        p = review.proposal(conn, int(r.headers["location"].rsplit("/", 1)[1]))
        assert p.base_version == 2
        text = review.proposal_files(conn, p)[RULE].decode()
    assert "market_value >= 60000" in text and "priority: 41" not in text  # the draft's own file wins


def test_only_authors_edit(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    c = signed(eng, proj, "wang.fang")
    assert c.get(f"/author/edit?rule={RULE}").status_code == 403
    r = c.post("/author/save", data={"csrf_token": csrf(c), "rule": RULE, "rule_text": "x"})
    assert r.status_code == 403
    assert events(eng, "draft.saved") == []


# ------------------------------------------------------------------ the proposal page


def _propose(engine: Engine, cfg: Config, old: str, new: str, path: str = RULE) -> int:
    p = cfg.base_dir / path
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new), encoding="utf-8")
    return review.submit(engine, cfg, "li.na", f"{old} -> {new}").proposal_id


def test_a_failing_rule_test_disables_and_refuses_approval(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    pid = _propose(eng, proj, "market_value >= 50000", "market_value >= 200000")  # 120000 no longer fires
    c = signed(eng, proj, "wang.fang")
    assert 'hx-get="/reviews/%d/tests"' % pid in c.get(f"/reviews/{pid}").text  # the page loads the tests after it
    page = c.get(f"/reviews/{pid}/tests").text
    assert 'id="tests-failed"' in page and "expected fire, rule did not fire" in page
    assert re.search(r'id="approve"[^>]*disabled', page)
    r = c.post(f"/reviews/{pid}/decide", data={"decision": "approve", "comment": "ok", "csrf_token": csrf(c)})
    assert r.status_code == 400 and "fails 2 of its" in r.text
    with eng.connect() as conn:
        assert review.proposal(conn, pid).status == "submitted"


def test_a_green_proposal_is_approved_and_listed_in_the_versions(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    pid = _propose(eng, proj, "market_value >= 50000", "market_value >= 60000")
    c = signed(eng, proj, "wang.fang")
    page = c.get(f"/reviews/{pid}/tests").text
    assert 'id="tests-summary"' in page and " 0 failed" in page.replace("</span>", "")
    assert not re.search(r'id="approve"[^>]*disabled', page)
    r = c.post(f"/reviews/{pid}/decide", data={"decision": "approve", "comment": "checked", "csrf_token": csrf(c)})
    assert r.status_code == 303
    versions = c.get("/versions").text
    assert '<a href="/versions/2">2</a>' in versions and "checked" in versions
    files = c.get("/versions/2").text
    assert "rules/dormant_activation.yaml" in files
    one = c.get("/versions/2?path=rules%2Fdormant_activation.yaml").text
    assert "market_value &gt;= 60000" in one
    old = c.get("/versions/1?path=rules%2Fdormant_activation.yaml").text
    assert "market_value &gt;= 50000" in old
    assert c.get("/versions/9").status_code == 404
    assert c.get("/versions/2?path=nope.yaml").status_code == 404


def test_the_impact_preview_runs_with_progress(project: tuple[Engine, Config]) -> None:
    eng, proj = project
    pid = _propose(eng, proj, "market_value >= 50000", "market_value >= 150000")
    c = signed(eng, proj, "zhao.lei")  # a supervisor reads proposals and may preview
    r = c.post(f"/reviews/{pid}/impact", data={"csrf_token": csrf(c), "from": "2026-11-20", "to": "2026-11-20"})
    assert r.status_code == 200
    m = re.search(rf'hx-get="/reviews/{pid}/impact/([^"]+)"', r.text)
    assert m, r.text
    job = c.app.state.impact_jobs[m.group(1)]  # type: ignore[attr-defined]
    assert job.finished.wait(60)
    done = c.get(f"/reviews/{pid}/impact/{m.group(1)}").text
    assert 'id="impact-result"' in done and "dormant_activation (changed)" in done
    assert job.done == job.total == 2  # one day, both versions
    imp = job.result
    [rule] = imp.rules
    assert rule.removed > 0 and rule.added == 0 and len(rule.removed_contacts) == rule.removed
    assert rule.segments == {"dormant": (0, rule.removed)} and rule.locales == {"zh-CN": (0, rule.removed)}
    assert '<td class="removed">' + str(rule.removed) in done
    assert re.search(r'class="removed-clients">removed: C002 2026-11-20;', done), done
    bad = c.post(f"/reviews/{pid}/impact", data={"csrf_token": csrf(c), "from": "2026-01-01", "to": "2026-12-31"})
    assert bad.status_code == 400 and "too long a preview" in bad.text
    assert c.get(f"/reviews/{pid}/impact/nope").status_code == 404

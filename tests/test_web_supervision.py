"""Supervisor pages without a browser: the sample and its decisions, XLSX export, charts, the
audit chain's status and personal data masked by role."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select, update

from engine.audit import checkpoint, facts_store
from engine.audit import log as auditlog
from engine.compliance import access, auth
from engine.config.base import Config
from engine.pipeline.recording import FIRING
from engine.supervision import sampling
from engine.web.masking import Masker, mask_id, mask_name
from tests import console_book
from tests.audit_helpers import unprotected
from tests.identity_helpers import NOW, fast_hasher, make_user
from tests.web_helpers import Clock, client, csrf, sign_in

KEY = "console-supervision-test-key"


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """One audit key for the module: the shared book's events were written under it."""
    monkeypatch.setenv("STEWARD_AUDIT_KEY", KEY)
    return KEY


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Config]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_HASHER", fast_hasher())
        mp.setenv("STEWARD_AUDIT_KEY", KEY)
        eng, cfg = console_book.build(tmp_path_factory.mktemp("sup"))
        yield eng, cfg
        eng.dispose()


def _signed_in(shared: tuple[Engine, Config], name: str) -> object:
    c = client(*shared, Clock())
    assert sign_in(c, name) == 303
    return c


def _reviews(eng: Engine, supervisor: str) -> list[object]:
    with eng.connect() as conn:
        return sampling.queue(conn, supervisor)


def test_a_supervisor_decides_a_sampled_item(shared: tuple[Engine, Config]) -> None:
    eng, _ = shared
    c = _signed_in(shared, "zhao.lei")
    mine = _reviews(eng, "zhao.lei")
    assert mine, "the fixture's sample assigned nothing to zhao.lei"
    page = c.get("/supervision").text  # type: ignore[attr-defined]
    assert all(f'id="review-{r.id}"' in page for r in mine)  # type: ignore[attr-defined]
    assert not any(f'id="review-{r.id}"' in page for r in _reviews(eng, "qian.sup"))  # type: ignore[attr-defined]
    rid = mine[0].id  # type: ignore[attr-defined]
    r = c.post("/supervision/decide", data={"review": rid, "decision": "follow_up", "comment": "", "csrf_token": csrf(c)})  # type: ignore[attr-defined]
    assert r.status_code == 400 and "needs a comment" in r.text
    r = c.post("/supervision/decide", data={"review": rid, "decision": "follow_up", "comment": "客户称谓有误",  # type: ignore[attr-defined]
                                            "csrf_token": csrf(c)})
    assert r.status_code == 303
    page = c.get("/supervision").text  # type: ignore[attr-defined]
    assert f'id="decided-{rid}"' in page and "客户称谓有误" in page
    with eng.connect() as conn:
        row = conn.execute(select(sampling.REVIEW).where(sampling.REVIEW.c.id == rid)).one()
        ev = [auditlog.body_of(e) for e in conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "review.decided"))]
    assert (row.decision, row.decided_by) == ("follow_up", "zhao.lei")
    assert any(e["actor"] == "zhao.lei" and e["data"]["review"] == rid for e in ev)


def test_only_the_assigned_supervisor_decides(shared: tuple[Engine, Config]) -> None:
    eng, _ = shared
    theirs = _reviews(eng, "qian.sup")[0].id  # type: ignore[attr-defined]
    c = _signed_in(shared, "zhao.lei")
    r = c.post("/supervision/decide", data={"review": theirs, "decision": "ok", "csrf_token": csrf(c)})  # type: ignore[attr-defined]
    assert r.status_code == 400 and "assigned to qian.sup" in r.text
    r = c.post("/supervision/decide", data={"review": "x", "decision": "ok", "csrf_token": csrf(c)})  # type: ignore[attr-defined]
    assert r.status_code == 400 and "expected a review number" in r.text
    comp = _signed_in(shared, "wang.fang")
    assert f'id="review-{theirs}"' in comp.get("/supervision").text  # type: ignore[attr-defined]  # reads every item
    r = comp.post("/supervision/decide", data={"review": theirs, "decision": "ok", "csrf_token": csrf(comp)})  # type: ignore[attr-defined]
    assert r.status_code == 403
    assert _reviews(eng, "qian.sup")[0].decision is None  # type: ignore[attr-defined]


def test_xlsx_export_neutralises_formulas_and_matches_the_filter(shared: tuple[Engine, Config]) -> None:
    eng, _ = shared
    with eng.begin() as conn:
        fid = conn.execute(select(FIRING.c.id).where(FIRING.c.rule_id == "new_account_callback")).scalars().first()
        old = conn.execute(select(FIRING.c.message).where(FIRING.c.id == fid)).scalar()
        conn.execute(update(FIRING).where(FIRING.c.id == fid).values(message='=HYPERLINK("http://x","y")'))
    try:
        c = _signed_in(shared, "zhao.lei")
        r = c.get("/firings.xlsx?rule=new_account_callback")  # type: ignore[attr-defined]
        assert r.status_code == 200 and 'filename="firings.xlsx"' in r.headers["content-disposition"]
        ws = load_workbook(io.BytesIO(r.content)).active
        rows = list(ws.iter_rows(values_only=True))
    finally:
        with eng.begin() as conn:
            conn.execute(update(FIRING).where(FIRING.c.id == fid).values(message=old))
    header = rows[0]
    assert header[:4] == ("id", "as_of", "rule_id", "client_id") and len(rows) == 2
    cell = ws.cell(row=2, column=header.index("message") + 1)
    assert cell.value == '\'=HYPERLINK("http://x","y")' and cell.data_type == "s"
    assert rows[1][0] == fid and rows[1][2] == "new_account_callback"


def test_charts_count_firings_sends_suppressions_callbacks_and_kpis(shared: tuple[Engine, Config]) -> None:
    eng, _ = shared
    page = _signed_in(shared, "sun.aud").get("/charts").text  # type: ignore[attr-defined]
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    with eng.connect() as conn:
        n = conn.execute(select(FIRING.c.status, FIRING.c.action_type)).all()
    assert sum(sum(s["data"]) for s in data["firings"]) == len(n)
    assert data["days"][-1] == "2026-11-20" and len(data["days"]) == 60
    assert sum(data["callbacks"]["tasks"]) == sum(a == "task" for _, a in n)
    assert {s["name"] for s in data["sends"]} and data["kpis"]["weeks"]
    assert all(len(s["data"]) == len(data["kpis"]["weeks"]) for s in data["kpis"]["assets"])


def test_names_are_masked_for_the_auditor_not_for_the_supervisor(shared: tuple[Engine, Config]) -> None:
    eng, _ = shared
    with eng.connect() as conn:
        f = conn.execute(select(FIRING).where(FIRING.c.message.like("%客户C0%"))).first()
        assert f is not None, "no message in the book greets the client by name"
        assert f.facts is None and f.facts_sha256  # the page and the CSV read the snapshot by reference
        f = facts_store.with_facts(conn, [f])[0]
    name = f.facts["name"]
    sup = _signed_in(shared, "zhao.lei").get(f"/firings/{f.id}").text  # type: ignore[attr-defined]
    aud = _signed_in(shared, "sun.aud").get(f"/firings/{f.id}").text  # type: ignore[attr-defined]
    assert name in sup
    assert name not in aud and mask_name(name) in aud
    assert f"{f.facts['birth_date'][:4]}-**-**" in aud and f.facts["birth_date"] in sup
    csv = _signed_in(shared, "sun.aud").get(f"/firings.csv?client={f.client_id}").text  # type: ignore[attr-defined]
    assert name not in csv and mask_name(name) in csv and f.client_id in csv  # auditors keep the id


def test_the_matrix_of_personal_data() -> None:
    assert mask_name("张三丰") == "张**" and mask_name("Li Na") == "L* N*" and mask_id("C0000017") == "C0****17"
    op, sup = Masker(frozenset({"operator"})), Masker(frozenset({"supervisor"}))
    assert op.cid("C0000017") == "C0****17" and sup.cid("C0000017") == "C0000017"
    assert op.text("尊敬的张三丰，请致电13812345678", ["张三丰"]) == "尊敬的张**，请致电138****5678"
    assert sup.phone("13812345678") == "138****5678"  # phones: masked for every role
    assert set(access.PERSONAL_DATA) == {"client_name", "client_id", "birth_date", "contact"}
    assert all(roles <= set(access.ROLES) for roles in access.PERSONAL_DATA.values())


def test_the_chain_page_shows_the_verify_result_and_the_last_checkpoint(sqlite_engine: Engine, cfg: Config,
                                                                          tmp_path: Path) -> None:
    project = cfg.model_copy(update={"base_dir": tmp_path})
    make_user(sqlite_engine, "zhao.lei", ["supervisor"])
    c = client(sqlite_engine, project, Clock())
    assert sign_in(c, "zhao.lei") == 303
    page = c.get("/audit/chain").text
    assert 'class="ok" id="chain-status"' in page and "none yet" in page
    with sqlite_engine.connect() as conn:
        cp = checkpoint.write(conn, project.path(project.audit.checkpoint_file), auditlog.audit_key(), NOW)
    page = c.get("/audit/chain").text
    assert f"#{cp.seq} <code>{cp.hash}</code> · 2026-11-20 17:00 Asia/Shanghai" in page
    with unprotected(sqlite_engine) as conn:  # someone with write access edits an event
        conn.execute(update(auditlog.EVENT).where(auditlog.EVENT.c.seq == 1).values(actor="mallory"))
    page = c.get("/audit/chain").text
    assert 'class="banner" id="chain-status"' in page and "event #1" in page


def test_docs_print_the_personal_data_matrix() -> None:
    """docs/console.md's table says exactly what access.PERSONAL_DATA holds."""
    text = (Path(__file__).parent.parent / "docs" / "console.md").read_text(encoding="utf-8")
    labels = {"client_name": "client name", "client_id": "client id", "birth_date": "birth date", "contact": "phone, e-mail"}
    for kind, label in labels.items():
        row = re.search(rf"^\| {re.escape(label)} \| ([^|]+) \|", text, re.M)
        assert row, f"docs/console.md: no row for {label}"
        shown = {w for w in re.findall(r"[a-z]+", row.group(1)) if w in access.ROLES}
        assert shown == set(access.PERSONAL_DATA[kind]), (kind, shown)


def test_the_client_page_follows_a_new_approved_version(shared: tuple[Engine, Config]) -> None:
    """The approved rule set is loaded once per version: a new approval is used at the next page."""
    from engine.compliance import review

    eng, cfg = shared
    c = _signed_in(shared, "zhao.lei")
    assert "approved version 1" in c.get("/clients/C002?day=2026-11-20").text  # type: ignore[attr-defined]
    assert "approved version 1" in c.get("/clients/C002?day=2026-11-20").text  # type: ignore[attr-defined]  # cached
    tpl = cfg.path("templates/dormant_activation/zh-CN.j2")
    tpl.write_text(tpl.read_text(encoding="utf-8").replace("市场有风险", "市场总有风险"), encoding="utf-8")
    pid = review.submit(eng, cfg, "li.na", "softer wording").proposal_id
    review.approve(eng, cfg, "wang.fang", pid, "ok")
    assert "approved version 2" in c.get("/clients/C002?day=2026-11-20").text  # type: ignore[attr-defined]

"""The console without a browser: the whole role matrix, CSRF, lockout, expiry, separation of duties."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.audit import log as auditlog
from engine.compliance import access, auth, review
from engine.config.base import Config
from engine.web.app import create_app
from engine.web.diff import side_by_side, tokens
from engine.web.operations import mask_phone
from engine.web.supervision import neutralise
from tests.compliance_helpers import copy_shipped, pack_config
from tests.identity_helpers import PASSWORD, make_user
from tests.web_helpers import Clock, client, csrf, sign_in

ROLE_USERS = {r: f"{r}1" for r in access.ROLES}
PARAMS = {"pid": "999", "fid": "999", "entry_id": "999", "name": "nobody", "cid": "C999", "vid": "999", "job": "x"}


@pytest.fixture
def staffed(sqlite_engine: Engine) -> Engine:
    for role, name in ROLE_USERS.items():
        make_user(sqlite_engine, name, [role], advisor_id="A01" if role == "advisor" else None)
    return sqlite_engine


def test_every_route_is_in_the_matrix(sqlite_engine: Engine, cfg: Config) -> None:
    app = create_app(sqlite_engine, cfg)
    routes = {(m, r.path) for r in app.routes if hasattr(r, "methods") for m in r.methods - {"HEAD"}}  # type: ignore[attr-defined]
    assert routes == set(access.ROUTES)


def test_role_matrix_walk(staffed: Engine, cfg: Config) -> None:
    """Each role x each route: the guard answers 403 exactly where the matrix says no."""
    gated = sorted(((m, p), a) for (m, p), a in access.ROUTES.items() if a != access.PUBLIC and p != "/logout")
    for role, name in ROLE_USERS.items():
        c = client(staffed, cfg, Clock())
        assert sign_in(c, name) == 303
        token = csrf(c)
        for (method, path), action in gated:
            url = path.format(**PARAMS)
            r = c.get(url) if method == "GET" else c.post(url, data={"csrf_token": token})
            want = access.allowed(action, frozenset({role}))
            assert (r.status_code != 403) == want, (role, method, path, r.status_code)
        assert c.post("/logout", data={"csrf_token": token}).status_code == 303
        assert c.get("/").status_code == 303  # signed out: back to the sign-in page


def test_unauthenticated_callers_get_nothing(staffed: Engine, cfg: Config) -> None:
    c = client(staffed, cfg, Clock())
    for (method, path), action in access.ROUTES.items():
        if action == access.PUBLIC:
            continue
        url = path.format(**PARAMS)
        r = c.get(url) if method == "GET" else c.post(url, data={})
        assert r.status_code == (303 if method == "GET" else 401), (method, path)
        if method == "GET":
            assert r.headers["location"] == "/login"


def test_forms_without_the_csrf_token_are_refused(staffed: Engine, cfg: Config) -> None:
    c = client(staffed, cfg, Clock())
    c.get("/login")
    r = c.post("/login", data={"name": "admin1", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert sign_in(c, "admin1") == 303
    r = c.post("/admin/users", data={"name": "mallory", "role": "admin", "csrf_token": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert "mallory" not in c.get("/admin/users").text


def test_cookies_are_httponly_secure_and_samesite(staffed: Engine, cfg: Config) -> None:
    c = client(staffed, cfg, Clock())
    c.get("/login")
    r = c.post("/login", data={"name": "admin1", "password": PASSWORD, "csrf_token": c.cookies["steward_login_csrf"]})
    cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("steward_session=")][0]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie


def test_lockout_through_the_sign_in_page(staffed: Engine, cfg: Config) -> None:
    c = client(staffed, cfg, Clock())
    for _ in range(auth.POLICY.max_failures):
        assert sign_in(c, "supervisor1", "not the password") == 401
    assert sign_in(c, "supervisor1") == 401  # locked: even the right password is refused
    with staffed.connect() as conn:
        names = [json.loads(r.body)["name"] for r in conn.execute(select(auditlog.EVENT))]
    assert names.count("user.sign_in_failed") == 6 and names.count("user.locked_out") == 1


def test_sessions_expire_when_idle_on_the_injected_clock(staffed: Engine, cfg: Config) -> None:
    clock = Clock()
    c = client(staffed, cfg, clock)
    assert sign_in(c, "operator1") == 303
    clock.now += auth.POLICY.session_idle - timedelta(seconds=1)
    assert c.get("/outbox").status_code == 200
    clock.now += auth.POLICY.session_idle
    assert c.get("/outbox").headers["location"] == "/login"


def test_one_time_passwords_must_be_changed_first(staffed: Engine, cfg: Config) -> None:
    with staffed.begin() as conn:
        pw = auth.reset_password(conn, "admin1", "advisor1", Clock()())
    c = client(staffed, cfg, Clock())
    assert sign_in(c, "advisor1", pw) == 303
    assert c.get("/calls").headers["location"] == "/password"
    r = c.post("/password", data={"old": pw, "new": "a brand new secret", "csrf_token": csrf_of_password(c)})
    assert r.status_code == 303 and c.get("/calls").status_code == 200


def csrf_of_password(c: object) -> str:
    import re
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/password").text)  # type: ignore[attr-defined]
    assert m
    return m.group(1)


def test_the_author_cannot_approve_in_the_console(sqlite_engine: Engine, cfg: Config, tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    project = pack_config(cfg, tmp_path)
    make_user(sqlite_engine, "Li.Na", ["author", "compliance"])
    make_user(sqlite_engine, "ann", ["author"])
    tpl = tmp_path / "templates/dormant_activation/zh-CN.j2"
    tpl.write_text(tpl.read_text(encoding="utf-8").replace("市场有风险", "稳赚不赔，市场有风险"), encoding="utf-8")
    pid = review.submit(sqlite_engine, project, "li.na", "first pack").proposal_id
    c = client(sqlite_engine, project, Clock())
    assert sign_in(c, "LI.NA") == 303
    page = c.get(f"/reviews/{pid}").text
    assert "The author can never approve or reject their own proposal." in page
    assert re.search(r'class="lint-inline"><td></td><td class="err">line \d+: error lint.prohibited', page)
    r = c.post(f"/reviews/{pid}/decide", data={"decision": "approve", "comment": "fine", "csrf_token": csrf(c)})
    assert r.status_code == 403 and "the author can never approve or reject" in r.text
    other = client(sqlite_engine, project, Clock())
    assert sign_in(other, "ann") == 303
    r = other.post(f"/reviews/{pid}/decide", data={"decision": "approve", "comment": "ok", "csrf_token": csrf(other)})
    assert r.status_code == 403  # no compliance role
    with sqlite_engine.connect() as conn:
        assert review.proposal(conn, pid).status == "submitted"


# ------------------------------------------------------------------ pieces


def test_csv_cells_that_could_run_as_formulas_are_neutralised() -> None:
    assert [neutralise(v) for v in ("=1+1", "+86", "-5", "@SUM(A1)", "ok", None, 3)] == \
        ["'=1+1", "'+86", "'-5", "'@SUM(A1)", "ok", "", "3"]


def test_chinese_is_diffed_by_character_and_english_by_word() -> None:
    assert tokens("市场有风险 buy now") == ["市", "场", "有", "风", "险", " ", "buy", " ", "now"]
    (row,) = side_by_side("市场有风险，投资需谨慎", "稳赚不赔，市场有风险，投资需谨慎")
    assert [p.text for p in row.right if p.changed] == ["稳赚不赔，"]
    (row,) = side_by_side("Dear client, markets carry risk", "Dear client, markets carry no risk")
    assert [p.text for p in row.right if p.changed] == ["no "]


def test_phones_are_masked() -> None:
    assert mask_phone("13800000003") == "138****0003" and mask_phone(None) == ""


def test_an_admin_deactivates_a_user_and_their_session_stops(staffed: Engine, cfg: Config) -> None:
    adv = client(staffed, cfg, Clock())
    assert sign_in(adv, "advisor1") == 303 and adv.get("/calls").status_code == 200
    admin = client(staffed, cfg, Clock())
    assert sign_in(admin, "admin1") == 303
    r = admin.post("/admin/users/ADVISOR1/active", data={"active": "0", "csrf_token": csrf(admin)})
    assert r.status_code == 200 and "advisor1" in r.text
    assert adv.get("/calls").headers["location"] == "/login"
    assert sign_in(adv, "advisor1") == 401


def test_many_failures_from_one_address_are_throttled(staffed: Engine, cfg: Config) -> None:
    c = client(staffed, cfg, Clock())
    c.app.state.console.throttle.limit = 3  # type: ignore[attr-defined]
    for name in ("a1", "a2", "a3"):  # different (unknown) names: no single account locks
        assert sign_in(c, name, "guess guess guess") == 401
    assert sign_in(c, "admin1") == 401  # this address must wait, even with the right password

"""Identity: canonical names, passwords with lockout, sessions and CLI tokens, and the CLI role matrix."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from engine.audit import log as auditlog
from engine.cli.app import all_commands, app
from engine.compliance import access, auth, review, users
from engine.config.base import Config
from engine.errors import StewardError
from tests.compliance_helpers import copy_shipped, pack_config
from tests.identity_helpers import NOW, PASSWORD, cli_token, make_user


def _events(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [json.loads(r.body) for r in c.execute(select(auditlog.EVENT).order_by(auditlog.EVENT.c.seq))]


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("typed", ["Li.Na", "li.na", "LI.NA", "Ｌｉ.Ｎａ", " li.na "])
def test_every_spelling_of_a_name_is_one_person(typed: str) -> None:
    assert users.canonical(typed) == "li.na"


def test_a_second_spelling_cannot_be_added_and_finds_the_same_user(db: Engine) -> None:
    make_user(db, "Li.Na", ["author"])
    with db.begin() as c:
        with pytest.raises(StewardError, match="user 'li.na' already exists"):
            users.add(c, "ROOT", "ＬＩ.ＮＡ", ["author"])
        u = users.get(c, "LI.NA")
        assert u is not None and u.name == "li.na" and u.display_name == "Li.Na"


def test_the_author_cannot_approve_or_reject_under_another_spelling(db: Engine, tmp_path: Path, cfg: Config) -> None:
    copy_shipped(tmp_path)
    project = pack_config(cfg, tmp_path)
    make_user(db, "Li.Na", ["author", "compliance"])
    pid = review.submit(db, project, "li.na", "pack").proposal_id
    for spelling in ("Li.Na", "LI.NA", "Ｌｉ.Ｎａ"):
        with pytest.raises(users.PermissionDenied, match="the author can never approve or reject"):
            review.approve(db, project, spelling, pid, "fine")
        with pytest.raises(users.PermissionDenied, match="the author can never approve or reject"):
            review.reject(db, spelling, pid, "no")


# ------------------------------------------------------------------ passwords and lockout


def test_passwords_are_stored_as_argon2_hashes_only(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ann", ["author"])
    with sqlite_engine.connect() as c:
        stored = c.execute(select(users.USER.c.password_hash).where(users.USER.c.name == "ann")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(StewardError, match="at least 10 characters"):
        auth.hash_password("short")


def test_failures_lock_the_account_then_it_unlocks_after_the_lockout(db: Engine) -> None:
    make_user(db, "ann", ["author"])
    for i in range(auth.POLICY.max_failures):
        with pytest.raises(auth.SignInRefused):
            auth.sign_in(db, "ann", "wrong password!", NOW + timedelta(seconds=i))
    with pytest.raises(auth.SignInRefused):  # the right password does not open a locked account
        auth.sign_in(db, "ANN", PASSWORD, NOW + timedelta(minutes=1))
    _, s = auth.sign_in(db, "ann", PASSWORD, NOW + auth.POLICY.lockout + timedelta(seconds=10))
    assert s.user.name == "ann"
    names = [e["name"] for e in _events(db) if e["name"].startswith("user.sign") or e["name"] == "user.locked_out"]
    assert names == ["user.sign_in_failed"] * 5 + ["user.locked_out", "user.sign_in_failed", "user.signed_in"]


def test_unknown_and_deactivated_users_are_refused_in_the_same_words(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ann", ["author"])
    with sqlite_engine.begin() as c:
        users.set_active(c, "root", "ann", False)
    msgs = set()
    for name in ("ann", "nobody"):
        with pytest.raises(auth.SignInRefused) as e:
            auth.sign_in(sqlite_engine, name, PASSWORD, NOW)
        msgs.add(str(e.value))
    assert len(msgs) == 1


# ------------------------------------------------------------------ sessions and tokens


def test_sessions_end_on_idle_and_on_their_maximum_age(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ann", ["author"])
    raw, s = auth.sign_in(sqlite_engine, "ann", PASSWORD, NOW)
    assert s.csrf
    step = auth.POLICY.session_idle - timedelta(seconds=1)
    with sqlite_engine.begin() as c:
        t = NOW
        while t + step < NOW + auth.POLICY.session_max:  # busy all day: kept alive until the maximum age
            t += step
            assert auth.resolve(c, raw, t) is not None
        assert auth.resolve(c, raw, NOW + auth.POLICY.session_max) is None
    raw2, _ = auth.sign_in(sqlite_engine, "ann", PASSWORD, NOW)
    with sqlite_engine.begin() as c:
        assert auth.resolve(c, raw2, NOW + auth.POLICY.session_idle) is None  # idle too long
        assert auth.resolve(c, raw2, NOW, kind="cli") is None  # a session is not a CLI token


def test_tokens_are_kept_hashed_and_sign_out_revokes_them(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "ann", ["author"])
    raw, _ = auth.sign_in(sqlite_engine, "ann", PASSWORD, NOW, kind="cli")
    with sqlite_engine.begin() as c:
        stored = [r.token_hash for r in c.execute(select(auth.TOKEN))]
        assert raw not in stored and len(stored) == 1
        assert auth.resolve(c, raw, NOW, kind="cli") is not None
        assert auth.sign_out(c, raw, NOW) == "ann"
        assert auth.resolve(c, raw, NOW, kind="cli") is None
    names = [e["name"] for e in _events(sqlite_engine)]
    assert names[-4:] == ["user.signed_in", "token.issued", "user.signed_out", "token.revoked"]


# ------------------------------------------------------------------ the CLI


def _commands() -> set[str]:
    found: set[str] = set()

    def walk(c: object, prefix: str) -> None:
        subs = getattr(c, "commands", None)
        if subs is None:
            found.add(prefix)
            return
        for n, sub in subs.items():
            walk(sub, f"{prefix} {n}".strip())

    for name, cmd in all_commands().items():  # the root lists its commands lazily (engine.cli.app)
        walk(cmd, name)
    return found


def test_every_cli_command_is_in_the_role_matrix() -> None:
    assert _commands() == set(access.COMMANDS)
    assert all(a in (access.PUBLIC, access.SERVICE) or a in access.ACTIONS for a in access.COMMANDS.values())


def test_no_state_changing_command_runs_without_a_token(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("STEWARD_TOKEN_FILE", str(tmp_path / "no-token"))
    monkeypatch.delenv("STEWARD_TOKEN", raising=False)
    make_user(sqlite_engine, "ann", ["author"])  # a database with users: no bootstrap
    url = sqlite_engine.url.render_as_string(hide_password=False)
    args = {"users add": ["x", "--role", "author"], "users grant": ["ann", "advisor"], "users revoke": ["ann", "author"],
            "users deactivate": ["ann"], "users activate": ["ann"], "users password": ["ann"],
            "review approve": ["1", "-m", "ok"], "review reject": ["1", "-m", "no"], "review submit": ["-m", "x"],
            "review show": ["1"], "supervision review": ["1", "--decision", "ok"], "outcome": ["1", "--outcome", "reached"],
            "tasks done": ["1", "--outcome", "reached"], "dispatch retry": ["1"],
            "dispatch resolve": ["1", "--receipt", "x"], "dnc add": ["13800000000"], "dnc remove": ["13800000000"],
            "calendar set": ["2027-01-01", "--open"], "audit retention": ["--apply"], "passwd": ["--old", "a", "--new", "b"],
            "tokens list": [], "tokens revoke": [],
            "calendar import": [str(Path(__file__).resolve().parent.parent / "docs" / "examples" / "xshg-2027.csv")],
            "calendar approve": ["1", "--comment", "ok"], "calendar reject": ["1", "--comment", "no"],
            "audit rotate-key": []}
    gated = {c for c, a in access.COMMANDS.items() if a not in (access.PUBLIC, access.SERVICE)}
    assert gated == set(args)
    for command in sorted(gated):
        r = CliRunner().invoke(app, ["--database", url, *command.split(), *args[command]])
        assert r.exit_code == 2 and "steward login" in " ".join(r.output.split()), (command, r.output)


def test_a_signed_in_user_without_the_role_is_refused(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(sqlite_engine, "ann", ["author"]))
    url = sqlite_engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["--database", url, "users", "grant", "ann", "compliance"])
    assert r.exit_code == 2 and "may not run `steward users grant`: that needs the admin role" in " ".join(r.output.split())


def test_login_writes_a_private_token_file_and_logout_revokes_it(sqlite_engine: Engine, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "cfg" / "token"
    monkeypatch.setenv("STEWARD_TOKEN_FILE", str(token))
    monkeypatch.delenv("STEWARD_TOKEN", raising=False)
    make_user(sqlite_engine, "Li.Na", ["author"])
    url = sqlite_engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["--database", url, "login", "LI.NA"], input=PASSWORD + "\n")
    assert r.exit_code == 0 and "Signed in as li.na" in r.output
    assert token.stat().st_mode & 0o777 == 0o600
    assert "li.na (author)" in CliRunner().invoke(app, ["--database", url, "whoami"]).output
    os.chmod(token, 0o644)
    r = CliRunner().invoke(app, ["--database", url, "whoami"])
    assert r.exit_code == 2 and "chmod 600" in r.output
    os.chmod(token, 0o600)
    assert "Signed out li.na" in CliRunner().invoke(app, ["--database", url, "logout"]).output
    assert not token.exists()
    r = CliRunner().invoke(app, ["--database", url, "login", "li.na", "--password", "wrong password"])
    assert r.exit_code == 2 and "sign-in refused" in r.output


def test_demo_gives_every_role_a_user_with_a_one_time_password(sqlite_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.review_cmd import demo_console_users
    from tests import book

    book.build(sqlite_engine)
    with sqlite_engine.begin() as c:
        users.add(c, None, "admin", ["admin"])
        users.add(c, "admin", "author", ["author"])
        users.add(c, "admin", "compliance", ["compliance"])
    passwords = demo_console_users(sqlite_engine)
    assert set(passwords) == {"admin", "author", "compliance", "supervisor", "advisor", "operator"}
    assert passwords["advisor"] in capsys.readouterr().out
    _, s = auth.sign_in(sqlite_engine, "advisor", passwords["advisor"], NOW)
    assert s.user.advisor_id is not None
    with sqlite_engine.connect() as c:
        assert auth.must_change(c, "advisor")


def test_a_database_from_before_passwords_gets_its_first_admin_password_without_sign_in(
        sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STEWARD_TOKEN_FILE", str(tmp_path / "no-token"))
    with sqlite_engine.begin() as c:  # users as an older version left them: no passwords
        users.add(c, None, "root", ["admin"])
        users.add(c, "root", "ann", ["author"])
    url = sqlite_engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(app, ["--database", url, "users", "password", "ann"])
    assert r.exit_code == 2 and "start with an admin" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["--database", url, "users", "password", "root"])
    assert r.exit_code == 0 and "One-time password for root" in r.output
    r = CliRunner().invoke(app, ["--database", url, "users", "password", "ann"])  # now someone can sign in
    assert r.exit_code == 2 and "steward login" in r.output


def test_the_migration_canonicalises_names_and_refuses_case_twins(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from engine.db import alembic_config, make_engine, upgrade

    for twins, name in ((False, "Li.Na"), (True, "li.na")):
        eng = make_engine(f"sqlite:///{tmp_path / f'{twins}.db'}")
        with eng.begin() as conn:
            ac = alembic_config(eng.url.render_as_string(hide_password=False))
            ac.attributes["connection"] = conn
            command.upgrade(ac, "0003")
            rows = [("Li.Na", '["author"]')] + ([(name, '["compliance"]')] if twins else [])
            for n, roles in rows:
                conn.execute(text("INSERT INTO app_user (name, roles, active, created_at, created_by) "
                                  "VALUES (:n, :r, 1, '2026-01-01 00:00:00', 'x')"), {"n": n, "r": roles})
        if twins:
            with pytest.raises(RuntimeError, match="'Li.Na' and 'li.na'. Rename or delete one"):
                upgrade(eng)
        else:
            upgrade(eng)
            with eng.connect() as conn:
                assert users.get(conn, "LI.NA") is not None
                assert [u.name for u in users.all_users(conn)] == ["li.na"]
        eng.dispose()

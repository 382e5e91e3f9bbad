"""Maker-checker review on SQLite and PostgreSQL: roles, approvals, and only approved content runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.compliance import review
from engine.compliance import users
from engine.audit import log as auditlog
from engine.config.base import Config
from engine.errors import StewardError
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from tests import book
from tests.compliance_helpers import copy_shipped, pack_config, rule_yaml

TPL = "templates/concentrated_position/zh-CN.j2"


@pytest.fixture
def project(tmp_path: Path, cfg: Config) -> Config:
    """A copy of the shipped rules, templates and lint lists that tests may edit."""
    copy_shipped(tmp_path)
    return pack_config(cfg, tmp_path)


@pytest.fixture
def staffed(db: Engine) -> Engine:
    with db.begin() as c:
        users.add(c, None, "root", ["admin"])
        users.add(c, "root", "ann", ["author"])
        users.add(c, "root", "bo", ["compliance"])
        users.add(c, "root", "cy", ["author", "compliance"])
        users.add(c, "root", "dee", ["advisor"])
    return db


def edit(cfg: Config, rel: str, old: str, new: str) -> None:
    p = cfg.base_dir / rel
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new), encoding="utf-8")


def approve_working(eng: Engine, cfg: Config, author: str = "ann", reviewer: str = "bo") -> review.Approved:
    pid = review.submit(eng, cfg, author, "change").proposal_id
    return review.approve(eng, cfg, reviewer, pid, "looks right")


# ------------------------------------------------------------------ users and roles


def test_first_user_is_an_admin_and_only_admins_manage(db: Engine) -> None:
    with db.begin() as c:
        with pytest.raises(StewardError, match="the first user must be an admin"):
            users.add(c, None, "ann", ["author"])
        users.add(c, None, "root", ["admin"])
        with pytest.raises(users.PermissionDenied, match="name the acting user: sign in"):
            users.add(c, None, "ann", ["author"])
        users.add(c, "root", "ann", ["author"])
        with pytest.raises(users.PermissionDenied, match="user 'ann' \\(author\\) may not manage: that needs the admin role"):
            users.add(c, "ann", "eve", ["author"])
        with pytest.raises(StewardError, match="unknown role 'complience' \\(did you mean 'compliance'\\?\\)"):
            users.add(c, "root", "eve", ["complience"])
        with pytest.raises(StewardError, match="no user may hold both admin and compliance"):
            users.grant(c, "root", "root", "compliance")
        users.grant(c, "root", "ann", "supervisor")
        users.revoke(c, "root", "ann", "supervisor")
        assert users.get(c, "ann") == users.User("ann", frozenset({"author"}), True)
        names = [json.loads(r.body)["name"] for r in c.execute(select(auditlog.EVENT).order_by(auditlog.EVENT.c.seq))]
    assert names == ["user.added", "role.granted", "user.added", "role.granted", "role.granted", "role.revoked"]


# ------------------------------------------------------------------ approvals


def test_author_cannot_approve_own_change(staffed: Engine, project: Config) -> None:
    pid = review.submit(staffed, project, "cy", "initial pack").proposal_id
    with pytest.raises(users.PermissionDenied, match="'cy' wrote proposal 1: the author can never approve or reject"):
        review.approve(staffed, project, "cy", pid, "fine by me")
    with pytest.raises(users.PermissionDenied):
        review.reject(staffed, "cy", pid, "hmm")
    assert review.approve(staffed, project, "bo", pid, "ok").approved_by == "bo"


def test_admin_cannot_approve(staffed: Engine, project: Config) -> None:
    pid = review.submit(staffed, project, "ann", "initial pack").proposal_id
    with pytest.raises(users.PermissionDenied, match="'root' is an admin: admins can never approve"):
        review.approve(staffed, project, "root", pid, "ok")


def test_only_authors_submit_and_only_compliance_decides(staffed: Engine, project: Config) -> None:
    with pytest.raises(users.PermissionDenied, match="may not submit: that needs the author role"):
        review.submit(staffed, project, "bo", "x")
    pid = review.submit(staffed, project, "ann", "initial pack").proposal_id
    with pytest.raises(users.PermissionDenied, match="'dee' \\(advisor\\) may not decide"):
        review.approve(staffed, project, "dee", pid, "ok")
    with pytest.raises(users.PermissionDenied, match="unknown user 'bob' \\(did you mean 'bo'\\?\\)"):
        review.approve(staffed, project, "bob", pid, "ok")


def test_approval_records_hashes_approver_time_and_comment(staffed: Engine, project: Config) -> None:
    a = approve_working(staffed, project)
    files = review.working_files(project)
    assert a.manifest == {k: review.sha256(v) for k, v in files.items()}
    assert {"rules/dormant_activation.yaml", TPL, "compliance/prohibited.yaml"} <= set(a.manifest)
    with staffed.connect() as c:
        v = review.current(c)
        ev = [json.loads(r.body) for r in c.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "proposal.approved"))]
    assert v is not None and v.approved_by == "bo" and v.comment == "looks right" and v.approved_at is not None
    assert ev[0]["actor"] == "bo" and ev[0]["data"]["files"] == a.manifest and ev[0]["data"]["author"] == "ann"


def test_decisions_need_a_comment_and_a_fresh_base(staffed: Engine, project: Config) -> None:
    p1 = review.submit(staffed, project, "ann", "first").proposal_id
    with pytest.raises(StewardError, match="--comment: the decision needs a comment"):
        review.approve(staffed, project, "bo", p1, "  ")
    edit(project, TPL, "请您留意", "敬请留意")
    p2 = review.submit(staffed, project, "ann", "second").proposal_id
    review.approve(staffed, project, "bo", p2, "ok")
    with pytest.raises(StewardError, match="made against version None, but version 1 has been approved since"):
        review.approve(staffed, project, "bo", p1, "ok")
    with pytest.raises(StewardError, match="nothing to submit: the files equal approved version 1"):
        review.submit(staffed, project, "ann", "again")
    review.reject(staffed, "bo", p1, "superseded")
    with pytest.raises(StewardError, match="proposal 1 is already rejected"):
        review.approve(staffed, project, "bo", p1, "ok")


def test_lint_errors_block_approval(staffed: Engine, project: Config) -> None:
    edit(project, TPL, "请您留意集中度风险", "本账户保本")
    sub = review.submit(staffed, project, "ann", "risky words")
    assert [(p.path, p.key) for p in sub.problems] == [(TPL, "lint.prohibited")]
    with pytest.raises(StewardError, match=f"1 error\\(s\\) and cannot be approved:\n  {TPL}:1: lint.prohibited: '保本'"):
        review.approve(staffed, project, "bo", sub.proposal_id, "ok")


# ------------------------------------------------------------------ only approved content runs


def test_nothing_runs_before_an_approval(staffed: Engine, project: Config) -> None:
    with pytest.raises(review.NothingApproved, match="nothing is approved yet, so nothing runs"):
        review.approved_ruleset(staffed, project)


def test_unapproved_edits_never_render_or_send(staffed: Engine, project: Config) -> None:
    book.build(staffed)
    approve_working(staffed, project)
    edit(project, TPL, "请您留意集中度风险", "请您留意集中度风险（未审批新措辞）")
    (project.base_dir / "rules/big_account.yaml").write_text(
        rule_yaml("big_account", cls="service", template="concentrated_position"), encoding="utf-8")
    ruleset, unapproved, approved = review.approved_ruleset(staffed, project)
    assert {(u.path, u.state) for u in unapproved} == {(TPL, "modified"), ("rules/big_account.yaml", "added")}
    assert ruleset.get("big_account") is None and approved.version == 1
    run(staffed, project, ruleset, book.AS_OF)
    with staffed.connect() as c:
        rows = list(c.execute(select(FIRING)))
    assert rows and not any(r.rule_id == "big_account" for r in rows)
    zh = [r.message for r in rows if r.rule_id == "concentrated_position" and r.locale == "zh-CN"]
    assert zh and all("未审批新措辞" not in m and "请您留意集中度风险" in m for m in zh)

    approve_working(staffed, project)  # once approved, the new words run
    ruleset, unapproved, approved = review.approved_ruleset(staffed, project)
    assert unapproved == [] and approved.version == 2 and ruleset.get("big_account") is not None
    run(staffed, project, ruleset, book.AS_OF + book.timedelta(days=40))
    with staffed.connect() as c:
        new = [r.message for r in c.execute(select(FIRING).where(FIRING.c.as_of > book.AS_OF, FIRING.c.locale == "zh-CN",
                                                                 FIRING.c.rule_id == "concentrated_position"))]
    assert new and all("未审批新措辞" in m for m in new)


def test_approved_snapshot_is_rebuilt_from_the_database(staffed: Engine, project: Config) -> None:
    a = approve_working(staffed, project)
    review.approved_ruleset(staffed, project)
    root = project.path(project.compliance.approved_dir) / a.content_hash[:16]
    shutil.rmtree(root)  # a tampered folder is refused (tests/test_approval_integrity.py); a missing one is rebuilt
    ruleset, _, _ = review.approved_ruleset(staffed, project)
    assert (root / TPL).read_bytes() == (project.base_dir / TPL).read_bytes()
    assert ruleset.version == review.check_files(project, review.working_files(project))[0].version  # type: ignore[union-attr]


def test_demo_bootstrap_is_recorded_as_such(db: Engine, project: Config) -> None:
    assert review.demo_bootstrap(db, project) == 1
    assert review.demo_bootstrap(db, project) is None  # a database with users is left alone
    with db.connect() as c:
        v = review.current(c)
        p = review.proposal(c, 1)
    assert v is not None and v.approved_by == "compliance" and p.author == "author" and "demo bootstrap" in v.comment


def test_several_rules_folders_keep_their_paths(staffed: Engine, project: Config) -> None:
    extra = project.base_dir / "rules" / "extra"
    extra.mkdir()
    (extra / "big_account.yaml").write_text(rule_yaml("big_account", cls="service", template="concentrated_position"),
                                            encoding="utf-8")
    two = project.model_copy(update={"rules_dirs": ("rules", "rules/extra")})
    a = approve_working(staffed, two)
    assert "rules/extra/big_account.yaml" in a.manifest and "rules/dormant_activation.yaml" in a.manifest
    ruleset, unapproved, _ = review.approved_ruleset(staffed, two)
    assert unapproved == [] and ruleset.get("big_account") is not None and ruleset.get("dormant_activation") is not None

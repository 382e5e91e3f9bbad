"""Issue 12, approval integrity (items 1-3), on SQLite and PostgreSQL.

1. Only the files of the approval manifest load, each byte checked against its sha256, from
   the unpacked folder and from the stored blob; a mismatch refuses the run with an audit event.
2. Proposed Python never runs in a reviewer's (or author's) process: checks run in a child
   process whose environment holds no database credentials.
3. Approval needs the proposal's rule tests to pass.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from engine.audit import facts_store
from engine.audit import log as auditlog
from engine.compliance import proposal_check, review, users
from engine.config.base import Config
from engine.errors import StewardError
from engine.language.loading import SnapshotMismatch
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from tests import book
from tests.compliance_helpers import ROOT, copy_shipped, pack_config
from tests.identity_helpers import cli_token
from tests.test_cli import steward

TPL = "templates/concentrated_position/zh-CN.j2"
CONFIG = "rules_dirs: [rules]\ntemplates_dir: templates\ncompliance:\n  lists_dir: compliance\n  approved_dir: var/approved\n"


@pytest.fixture
def project(tmp_path: Path, cfg: Config) -> Config:
    copy_shipped(tmp_path)
    (tmp_path / "rules/tests").mkdir()
    shutil.copy(ROOT / "rules/tests/concentrated_position.yaml", tmp_path / "rules/tests/concentrated_position.yaml")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return pack_config(cfg, tmp_path)


@pytest.fixture
def staffed(db: Engine) -> Engine:
    with db.begin() as c:
        users.add(c, None, "root", ["admin"])
        users.add(c, "root", "ann", ["author"])
        users.add(c, "root", "bo", ["compliance"])
    return db


def approve_working(eng: Engine, cfg: Config) -> review.Approved:
    return review.approve(eng, cfg, "bo", review.submit(eng, cfg, "ann", "change").proposal_id, "looks right")


def refusals(eng: Engine) -> list[dict]:  # type: ignore[type-arg]
    with eng.connect() as c:
        return [auditlog.body_of(r) for r in c.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "snapshot.refused"))]


def firings(eng: Engine) -> int:
    with eng.connect() as c:
        return len(list(c.execute(select(FIRING.c.id))))


# ------------------------------------------------------------------ item 1


def test_files_injected_into_the_approved_folder_refuse_the_run(staffed: Engine, project: Config, tmp_path: Path) -> None:
    book.build(staffed)
    a = approve_working(staffed, project)
    review.approved_ruleset(staffed, project)  # unpacks var/approved/<hash>/
    root = project.path(project.compliance.approved_dir) / a.content_hash[:16]
    marker = tmp_path / "evil-ran"
    (root / "rules/zz_injected.yaml").write_text(
        (ROOT / "rules/concentrated_position.yaml").read_text(encoding="utf-8")
        .replace("id: concentrated_position", "id: zz_injected").replace("top_weight >= 40% and market_value >= 10000",
                                                                           "market_value >= 0"), encoding="utf-8")
    (root / "rules/zz_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n", encoding="utf-8")
    with pytest.raises(SnapshotMismatch) as e:
        review.approved_ruleset(staffed, project)
    text = str(e.value)
    assert "rules/zz_injected.yaml: this file is not in the approved manifest" in text
    assert "rules/zz_evil.py: this file is not in the approved manifest" in text
    assert "nothing runs" in text and not marker.exists() and firings(staffed) == 0
    [ev] = refusals(staffed)
    assert ev["data"]["version"] == a.version and any("zz_evil.py" in p for p in ev["data"]["problems"])
    with pytest.raises(SnapshotMismatch):  # the event rules refuse the same folder
        review.approved_event_rules(staffed, project)
    with staffed.connect() as c:  # and `review status` names both files
        shown = [str(p) for p in review.integrity_problems(c, project, a)]
    assert any("rules/zz_injected.yaml" in p for p in shown) and any("rules/zz_evil.py" in p for p in shown)


def test_a_changed_byte_in_the_unpacked_folder_is_refused_not_repaired(staffed: Engine, project: Config) -> None:
    a = approve_working(staffed, project)
    review.approved_ruleset(staffed, project)
    root = project.path(project.compliance.approved_dir) / a.content_hash[:16]
    (root / TPL).write_bytes((root / TPL).read_bytes().replace("集中度风险".encode(), "稳赚不赔".encode()))
    with pytest.raises(SnapshotMismatch, match=f"{TPL}: sha256 .* differs from the approved"):
        review.approved_ruleset(staffed, project)
    assert "稳赚不赔" in (root / TPL).read_text(encoding="utf-8")  # evidence left in place
    shutil.rmtree(root)  # after investigation: unpacked again from the verified database
    ruleset, _, _ = review.approved_ruleset(staffed, project)
    assert ruleset.get("concentrated_position") is not None and len(refusals(staffed)) == 1


def test_a_rewritten_content_blob_is_refused_even_with_the_folder_gone(staffed: Engine, project: Config) -> None:
    book.build(staffed)
    a = approve_working(staffed, project)
    review.approved_ruleset(staffed, project)
    with staffed.begin() as c:
        c.execute(update(review.BLOB).where(review.BLOB.c.hash == a.manifest[TPL]).values(
            content="稳赚不赔 {{ firm.signature }}".encode()))
    shutil.rmtree(project.path(project.compliance.approved_dir))
    with pytest.raises(SnapshotMismatch, match=f"{TPL}: content_blob: the stored bytes hash to .* not the approved"):
        review.approved_ruleset(staffed, project)
    assert not project.path(project.compliance.approved_dir).exists() and firings(staffed) == 0
    # with the folder intact, the tampered blob is still noticed
    with pytest.raises(SnapshotMismatch, match="content_blob"):
        review.approved_event_rules(staffed, project)
    assert len(refusals(staffed)) == 2


def test_an_intact_snapshot_runs(staffed: Engine, project: Config) -> None:
    book.build(staffed)
    approve_working(staffed, project)
    ruleset, _, _ = review.approved_ruleset(staffed, project)
    run(staffed, project, ruleset, book.AS_OF)
    assert firings(staffed) > 0 and refusals(staffed) == []


# ------------------------------------------------------------------ item 2

PYRULE = '''import json, os
from engine.language.rules import python_rule

with open({marker!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps({{"pid": os.getpid(), "env": sorted(os.environ)}}) + "\\n")


@python_rule(id="zz_pyrule", title="Python rule", description="test", owner="test", class_="service",
             action={{"type": "message", "channel": "sms", "template": "concentrated_position"}}, cooldown="1d")
def zz_pyrule(facts):
    return False
'''


def test_proposed_python_is_never_imported_by_the_author_or_the_reviewer(
        staffed: Engine, project: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    approve_working(staffed, project)
    marker = tmp_path / "imports.jsonl"
    (project.base_dir / "rules/zz_pyrule.py").write_text(PYRULE.format(marker=str(marker)), encoding="utf-8")
    url = staffed.url.render_as_string(hide_password=False)
    monkeypatch.setenv("STEWARD_DATABASE_URL", url)
    monkeypatch.setenv("PGPASSWORD", "secret")
    sub = review.submit(staffed, project, "ann", "a Python rule")
    assert not [p for p in sub.problems if p.severity == "error"]
    token = cli_token(staffed, "bo", ["compliance"])
    res = steward("--config", str(project.base_dir / "config.yaml"), "--database", url, "review", "show",
                  str(sub.proposal_id), "--tests", env={"PGPASSWORD": "secret", "STEWARD_TOKEN": token})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "+++ proposed/rules/zz_pyrule.py" in res.stdout and "def zz_pyrule(facts):" in res.stdout
    assert "Impact preview skipped" in res.stdout and "Rule tests: 5 passed, 0 failed" in res.stdout
    review.approve(staffed, project, "bo", sub.proposal_id, "read the source")
    runs = [json.loads(line) for line in marker.read_text(encoding="utf-8").splitlines()]
    assert len(runs) >= 3 and all(r["pid"] != os.getpid() for r in runs)  # submit, show, approve: only in children
    allowed = set(proposal_check.SAFE_ENV)
    assert all(set(r["env"]) <= allowed | {k for k in r["env"] if k.startswith("LC_")} for r in runs)
    assert all(not {"STEWARD_DATABASE_URL", "PGPASSWORD", "STEWARD_TOKEN"} & set(r["env"]) for r in runs)
    assert url not in marker.read_text(encoding="utf-8")


# ------------------------------------------------------------------ item 3


def test_approval_needs_the_rule_tests_to_pass(staffed: Engine, project: Config) -> None:
    approve_working(staffed, project)
    p = project.base_dir / "rules/concentrated_position.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("top_weight >= 40%", "top_weight >= 60%"), encoding="utf-8")
    sub = review.submit(staffed, project, "ann", "raise the threshold")
    assert not [x for x in sub.problems if x.severity == "error"]  # lint is clean: only the tests catch it
    with pytest.raises(StewardError, match=r"fails 2 of its 5 rule test\(s\) and cannot be approved(.|\n)*55% in one holding"):
        review.approve(staffed, project, "bo", sub.proposal_id, "ok")
    with staffed.connect() as c:
        assert review.proposal(c, sub.proposal_id).status == "submitted" and review.current(c).version == 1  # type: ignore[union-attr]
    t = project.base_dir / "rules/tests/concentrated_position.yaml"
    t.write_text(t.read_text(encoding="utf-8").replace("top_weight: 0.55}", "top_weight: 0.65}")
                 .replace('"55%"', '"65%"').replace('"55"', '"65"').replace("exactly 40% fires", "40% is fine")
                 .replace("{top_weight: 0.40}\n    expect: fire", "{top_weight: 0.40}\n    expect: none"), encoding="utf-8")
    review.reject(staffed, "bo", sub.proposal_id, "tests fail")
    assert approve_working(staffed, project).version == 2


# ------------------------------------------------------------------ item 7 (why on a past day)


def test_why_uses_the_version_and_the_facts_in_force_that_day(staffed: Engine, project: Config) -> None:
    from engine.cli.why_cmd import _ruleset
    from engine.models import Holding
    from engine.supervision import explain

    book.build(staffed)
    approve_working(staffed, project)
    ruleset, _, _ = review.approved_ruleset(staffed, project)
    run(staffed, project, ruleset, book.AS_OF)
    with staffed.connect() as c:
        f = c.execute(select(FIRING).where(FIRING.c.rule_id == "concentrated_position")).first()
        assert f is not None
        f = facts_store.with_facts(c, [f])[0]
    p = project.base_dir / "rules/concentrated_position.yaml"  # version 2 raises the threshold ...
    p.write_text(p.read_text(encoding="utf-8").replace("top_weight >= 40%", "top_weight >= 99%"), encoding="utf-8")
    t = project.base_dir / "rules/tests/concentrated_position.yaml"
    t.unlink()
    approve_working(staffed, project)
    h = Holding.__table__  # type: ignore[attr-defined]
    with staffed.begin() as c:  # ... and the client's data of that day is corrected afterwards
        c.execute(h.delete().where(h.c.client_id == f.client_id))
    rs, source = _ruleset(staffed, project, book.AS_OF)
    assert source.startswith("approved version 1, the version that ran on")
    with staffed.connect() as c:
        ex = explain.explain_client(c, project, rs, f.client_id, book.AS_OF)
    v = next(v for v in ex.verdicts if v.rule_id == "concentrated_position")
    assert v.fired and v.holds and ex.facts["top_weight"] == f.facts["top_weight"]
    assert ex.facts_source.startswith("recorded by the evaluation of")

"""Issue 12 item 4: config.yaml keys that change who is contacted or what is said are approved like rules.

Reproduces the issue on SQLite and PostgreSQL: a suitability limit changed in config.yaml without
approval refuses the run (located error, `config.refused` event); its author cannot approve it;
once another reviewer approves it, the run goes with the new value. Operational keys stay free.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import Engine, select

from engine.audit import log as auditlog
from engine.compliance import config_review, review, users
from engine.config import governed
from engine.config.base import Config, load_config
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from tests import book
from tests.compliance_helpers import ROOT, copy_shipped
from tests.identity_helpers import cli_token
from tests.test_cli import steward

CONFIG = """rules_dirs: [rules]
templates_dir: templates
evaluation:
  batch_size: 20000
compliance:
  lists_dir: compliance
  approved_dir: var/approved
  senior_age: 65
  senior_max_product_risk: R3
"""


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _leaves(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_config_key_is_either_governed_or_operational() -> None:
    unclassified = [k for k in _leaves(Config) if not governed.classified(k)]
    assert not unclassified, f"classify these keys in engine/config/governed.py (GOVERNED or OPERATIONAL): {unclassified}"
    assert governed.is_governed("compliance.senior_age") and governed.is_governed("dispatch.email.sender")
    assert not governed.is_governed("dispatch.email.host") and not governed.is_governed("database.url")
    assert not governed.is_governed("evaluation.workers") and governed.is_governed("servicing.risk.allocation")


def test_every_governed_key_is_documented() -> None:
    text = (ROOT / "docs/config.md").read_text(encoding="utf-8")
    section = text.split("## Governed keys", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.M))
    assert listed == set(governed.GOVERNED), f"docs/config.md, Governed keys: {sorted(listed ^ set(governed.GOVERNED))}"
    ops = section.split("Operational", 1)[1]
    assert all(f"`{p}`" in ops for p in governed.OPERATIONAL)


def test_a_proposals_governed_values_apply_to_its_checks_and_nothing_else() -> None:
    shipped = load_config(ROOT / "config.yaml")
    vals = governed.values(shipped)
    assert governed.values(governed.apply(shipped, vals)) == vals
    proposed = {k: v for k, v in vals.items() if not k.startswith("servicing.playbooks.settled.")}
    proposed["compliance.senior_age"] = 70
    c = review.proposal_config(shipped, {governed.SNAPSHOT_PATH: governed.render(proposed)})
    assert c.compliance.senior_age == 70 and "settled" not in c.servicing.playbooks
    assert governed.values(c) == proposed
    assert (c.database, c.base_dir, c.source, c.evaluation.batch_size) == (
        shipped.database, shipped.base_dir, shipped.source, shipped.evaluation.batch_size)


@pytest.fixture
def project(tmp_path: Path) -> Config:
    copy_shipped(tmp_path)
    (tmp_path / "rules/tests").mkdir()
    shutil.copy(ROOT / "rules/tests/concentrated_position.yaml", tmp_path / "rules/tests/concentrated_position.yaml")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return load_config(tmp_path / "config.yaml")


@pytest.fixture
def staffed(db: Engine) -> Engine:
    with db.begin() as c:
        users.add(c, None, "root", ["admin"])
        users.add(c, "root", "ann", ["author"])
        users.add(c, "root", "bo", ["compliance"])
        users.add(c, "root", "dee", ["author", "compliance"])
    return db


def _edit(project: Config, old: str, new: str) -> Config:
    p = project.base_dir / "config.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return load_config(p)


def _events(eng: Engine, name: str) -> list[dict]:  # type: ignore[type-arg]
    with eng.connect() as c:
        return [auditlog.body_of(r) for r in c.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == name))]


def test_a_suitability_limit_changed_without_approval_refuses_the_run(staffed: Engine, project: Config) -> None:
    book.build(staffed)
    review.approve(staffed, project, "bo", review.submit(staffed, project, "ann", "first").proposal_id, "ok")
    changed = _edit(project, "senior_age: 65", "senior_age: 60")
    with pytest.raises(config_review.ConfigNotApproved) as e:
        review.approved_ruleset(staffed, changed, for_run=True)
    msg = str(e.value)
    assert "1 governed key(s) differ from approved version 1, so nothing runs" in msg
    assert re.search(r"config\.yaml:8: compliance\.senior_age: 60 is in force, approved is 65", msg), msg
    [ev] = _events(staffed, "config.refused")
    assert ev["data"]["changes"] == [{"key": "compliance.senior_age", "approved": 65, "in_force": 60, "line": 8}]
    with staffed.connect() as c:
        assert not list(c.execute(select(FIRING.c.id)))  # nothing ran
    # operational keys are free: a new batch size or approved_dir changes nothing
    _edit(project, "senior_age: 60", "senior_age: 65")
    free = _edit(project, "batch_size: 20000", "batch_size: 5000")
    review.approved_ruleset(staffed, free, for_run=True)


def test_the_change_is_diffed_by_key_the_author_cannot_approve_it_and_then_it_runs(
        staffed: Engine, project: Config) -> None:
    book.build(staffed)
    review.approve(staffed, project, "bo", review.submit(staffed, project, "ann", "first").proposal_id, "ok")
    changed = _edit(project, "senior_max_product_risk: R3", "senior_max_product_risk: R2")
    sub = review.submit(staffed, changed, "dee", "seniors: at most R2")
    [key] = sub.config_changes
    assert str(key).endswith('config.yaml:9: compliance.senior_max_product_risk: "R3" -> "R2"') and key.line == 9
    assert [c.path for c in sub.changes] == [governed.SNAPSHOT_PATH]
    with pytest.raises(users.PermissionDenied, match="the author can never approve"):
        review.approve(staffed, changed, "dee", sub.proposal_id, "mine")
    [submitted] = [e for e in _events(staffed, "proposal.submitted") if e["data"]["proposal"] == sub.proposal_id]
    assert submitted["data"]["config_changes"] == [str(k) for k in sub.config_changes]
    review.approve(staffed, changed, "bo", sub.proposal_id, "stricter for seniors")
    ruleset, drafts, approved = review.approved_ruleset(staffed, changed, for_run=True)
    assert approved.version == 2 and drafts == []
    run(staffed, changed, ruleset, book.AS_OF)
    with staffed.connect() as c:
        assert list(c.execute(select(FIRING.c.id)))
        files = review.get_blobs(c, {approved.manifest[governed.SNAPSHOT_PATH]})
    assert "compliance.senior_max_product_risk: \"R2\"" in next(iter(files.values())).decode()
    # and the old value no longer runs
    with pytest.raises(config_review.ConfigNotApproved, match="senior_max_product_risk: \"R3\" is in force"):
        review.approved_ruleset(staffed, project, for_run=True)


def test_review_show_and_status_list_the_located_keys(staffed: Engine, project: Config) -> None:
    review.approve(staffed, project, "bo", review.submit(staffed, project, "ann", "first").proposal_id, "ok")
    changed = _edit(project, "senior_age: 65", "senior_age: 70")
    url = staffed.url.render_as_string(hide_password=False)
    conf = str(project.base_dir / "config.yaml")
    res = steward("--config", conf, "--database", url, "review", "status", cwd=project.base_dir)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "1 governed config.yaml key(s) differ from the approved version: `steward run` refuses" in out
    assert "config.yaml:8: compliance.senior_age: 65 -> 70" in out
    sub = review.submit(staffed, changed, "ann", "seniors from 70")
    token = cli_token(staffed, "cy", ["compliance"])
    res = steward("--config", conf, "--database", url, "review", "show", str(sub.proposal_id), "--no-impact",
                  cwd=project.base_dir, env={"STEWARD_TOKEN": token})
    assert res.returncode == 0, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    assert re.search(r"Governed config.yaml keys \(1 changed, approved -> proposed\): \S*config.yaml:8: compliance.senior_age: 65 -> 70", out), out

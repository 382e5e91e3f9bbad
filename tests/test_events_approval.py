"""Event rules go through maker-checker too: only the approved version's event rules and templates run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.compliance import review
from engine.config.base import Config
from engine.language.event_rules import load_event_rules
from engine.events.service import EventService
from tests import book, cli_process
from tests.compliance_helpers import copy_shipped, pack_config
from tests.databases import migrated_sqlite
from tests.events_helpers import approve, at, firings, margin, statuses

ROOT = Path(__file__).resolve().parent.parent
RULE = "rules/events/margin_closeout_event.yaml"
TPL = "templates/margin_closeout_event"


@pytest.fixture
def project(tmp_path: Path, cfg: Config) -> Config:
    """The shipped core rules, event rules, their templates and lint lists, copied so a test may edit them."""
    copy_shipped(tmp_path)
    shutil.copytree(ROOT / "rules" / "events", tmp_path / "rules" / "events", ignore=shutil.ignore_patterns("tests"))
    for name in {r.rule.spec.action.template for r in load_event_rules(cfg).rules}:
        shutil.copytree(ROOT / "templates" / name, tmp_path / "templates" / name)
    return pack_config(cfg, tmp_path)


def _edit(cfg: Config) -> None:
    """The close-out line moves to 140% and every locale's text gains a marker: a draft until approved."""
    p = cfg.base_dir / RULE
    p.write_text(p.read_text(encoding="utf-8").replace("< 130%", "< 140%"), encoding="utf-8")
    for t in (cfg.base_dir / TPL).glob("*.j2"):
        t.write_text(t.read_text(encoding="utf-8") + "\nV2", encoding="utf-8")


def test_event_rules_are_in_the_approved_snapshot(db: Engine, project: Config) -> None:
    a = approve(db, project)
    assert RULE in a.manifest and f"{TPL}/zh-CN.j2" in a.manifest
    assert not any("/tests/" in p for p in a.manifest)  # rule tests never reach a client: not under approval
    rules, changes, approved = review.approved_event_rules(db, project)
    assert changes == [] and approved.version == a.version
    assert rules.get("margin_closeout_event") is not None
    snapshot = project.path(project.compliance.approved_dir) / a.content_hash[:16]
    assert (snapshot / RULE).read_bytes() == (project.base_dir / RULE).read_bytes()


def test_an_edited_event_rule_is_reported_and_never_runs_until_approved(db: Engine, project: Config) -> None:
    book.build(db)
    first = approve(db, project)
    _edit(project)
    _, changes, _ = review.approved_event_rules(db, project)
    assert {(c.path, c.state) for c in changes} == {(RULE, "modified")} | {
        (f"{TPL}/{t.name}", "modified") for t in (project.base_dir / TPL).glob("*.j2")}
    s = EventService(db, project)
    s.post([margin("m1", "2026-11-20 10:00", 1.35, client="C003"),  # only the edited 140% line would fire
            margin("m2", "2026-11-20 10:01", 1.25, client="C002")])  # the approved 130% line fires
    s.start()
    [f] = firings(db, "margin_closeout_event")
    assert f.client_id == "C002" and f.rule_hash == first.manifest[RULE]
    assert "V2" not in (f.message or "") and "130%" in (f.message or "")
    assert statuses(db) == {"m1": "processed", "m2": "processed"}

    second = approve(db, project)  # approved now: takes effect in a fresh engine
    assert second.version == first.version + 1
    fresh = EventService(db, project)
    fresh.post([margin("m3", "2026-11-20 10:05", 1.35, client="C003")])
    fresh.start()
    f1, f2 = firings(db, "margin_closeout_event")
    assert f2.client_id == "C003" and f2.rule_hash == second.manifest[RULE] and "V2" in (f2.message or "")


def test_with_nothing_approved_events_stay_stored_and_replay_later(db: Engine, project: Config) -> None:
    book.build(db)
    s = EventService(db, project)
    s.post([margin("n1", "2026-11-20 10:00", 1.25)])
    with pytest.raises(review.NothingApproved, match="steward review submit"):
        s.start()
    with pytest.raises(review.NothingApproved):
        s.drain()
    assert statuses(db) == {"n1": "stored"} and firings(db) == []
    approve(db, project)
    assert EventService(db, project).start() == 1
    assert statuses(db) == {"n1": "processed"} and len(firings(db, "margin_closeout_event")) == 1


def test_the_review_diff_shows_event_rule_changes(db: Engine, project: Config) -> None:
    approve(db, project)
    _edit(project)
    pid = review.submit(db, project, "ann", "close-out line at 140%").proposal_id
    with db.connect() as c:
        row = review.proposal(c, pid)
        base = review.base_manifest(c, row)
        old = review.get_blobs(c, set(base.values()))
        files = review.proposal_files(c, row)
    changes = {ch.path: ch for ch in review.diff_manifests(base, row.manifest)}
    assert changes[RULE].state == "modified"
    diff = review.text_diff(RULE, old[changes[RULE].old or ""], files[RULE])
    assert "-when: event_maintenance_ratio < 130%" in diff and "+when: event_maintenance_ratio < 140%" in diff


def test_a_broken_event_rule_blocks_approval(db: Engine, project: Config) -> None:
    approve(db, project)
    p = project.base_dir / RULE
    p.write_text(p.read_text(encoding="utf-8").replace("event_maintenance_ratio <", "event_maintenance_rate <"),
                 encoding="utf-8")
    sub = review.submit(db, project, "ann", "typo")
    assert any(x.path == RULE and x.severity == "error" and "event_maintenance_rate" in x.message for x in sub.problems)
    with pytest.raises(review.StewardError, match="cannot be approved"):
        review.approve(db, project, "bo", sub.proposal_id, "ok")


def test_cli_post_with_nothing_approved_stores_and_names_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    eng = migrated_sqlite(tmp_path / "s.db")
    book.build(eng)
    f = tmp_path / "day.jsonl"
    f.write_text(json.dumps({"id": "p1", "type": "margin_ratio", "client_id": "C003", "at": at("2026-11-20 10:00"),
                             "maintenance_ratio": 1.25}) + "\n", encoding="utf-8")
    env = {"PYTHONPATH": str(ROOT), "STEWARD_DATABASE_URL": url, "COLUMNS": "300", "PATH": "/usr/bin:/bin"}
    r = cli_process.run(["events", "post", str(f)], cwd=ROOT, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "stored 1" in r.stdout and "not processed" in r.stdout
    assert "steward review submit" in " ".join(r.stderr.split())
    assert statuses(eng) == {"p1": "stored"}
    eng.dispose()

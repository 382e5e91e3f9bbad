"""The servicing playbook rule pack (rules/playbook/): rule cases, locales, catalog, a real run."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.language import docs as rulesdoc
from engine.config.base import Config, parse_config
from engine.language.loading import load_ruleset
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from engine.pipeline.ruletest import case_files, load_test_file, run_case
from engine.yamlio import load_file
from tests import book

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "rules" / "playbook"
CFG = parse_config(load_file(ROOT / "config.yaml"), "config.yaml", ROOT)
DIRS = [ROOT / "rules", PACK]
FILES = case_files([PACK])
CASES = [(p, c) for p in FILES for c in load_test_file(p).cases]
LOCALES = {"zh-CN", "zh-TW", "en", "es"}


@pytest.fixture(scope="module")
def ruleset():  # type: ignore[no-untyped-def]
    return load_ruleset(CFG, DIRS)


@pytest.mark.parametrize(("path", "case"), CASES, ids=[f"{p.stem}: {c.name}" for p, c in CASES])
def test_pack_rule_case(ruleset, path: Path, case) -> None:  # type: ignore[no-untyped-def]
    result = run_case(ruleset, load_test_file(path), case, str(path))
    assert result.ok, result.detail


def test_every_pack_rule_fires_stays_quiet_and_renders_in_four_locales(ruleset) -> None:  # type: ignore[no-untyped-def]
    pack = {r.id for r in ruleset.rules if Path(r.path).parent.name == "playbook"}
    assert len(pack) >= 19
    seen: dict[str, set[str]] = {}
    locales: dict[str, set[str]] = {}
    for p in FILES:
        tf = load_test_file(p)
        seen.setdefault(tf.rule, set()).update(c.expect for c in tf.cases)
        for c in tf.cases:
            locales.setdefault(tf.rule, set()).update(c.text)
    assert {r for r in pack if seen.get(r) != {"fire", "none"}} == set()
    assert {r for r in pack if locales.get(r, set()) != LOCALES} == set()


def test_catalog_lists_every_shipped_rule(ruleset) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = [r.id for r in ruleset.rules if f"### {r.id}\n" not in text]
    assert not missing, f"docs/rules.md lacks {missing}: run `steward docs write`"
    assert text == rulesdoc.rules_markdown()


def test_catalog_fails_when_a_rule_is_missing(ruleset) -> None:  # type: ignore[no-untyped-def]
    text = rulesdoc.rules_markdown().replace("### margin_closeout_line\n", "")
    assert [r.id for r in ruleset.rules if f"### {r.id}\n" not in text] == ["margin_closeout_line"]


def test_margin_offer_declares_its_product_risk(ruleset) -> None:  # type: ignore[no-untyped-def]
    offer = ruleset.get("margin_eligibility_offer")
    assert offer.spec.rule_class == "marketing" and "offer" in offer.spec.tags
    assert getattr(offer.spec, "product_risk", None) == "R4" and "product:R4" in offer.spec.tags


def test_pack_fires_on_a_real_book(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = run(db, cfg, load_ruleset(cfg, DIRS), book.AS_OF)
    with db.connect() as c:
        fired = {(r.rule_id, r.client_id) for r in c.execute(select(FIRING.c.rule_id, FIRING.c.client_id))}
    assert ("margin_warning_line", "C003") in fired and ("margin_contract_expiry", "C003") in fired
    assert ("margin_closeout_line", "C003") not in fired
    assert s.per_rule["new_account_callback"] == 1

"""The child process that checks a proposal: `python -m engine.cli.check_child ROOT CONFIG BASE OUT [--tests]`.

Started by engine.compliance.proposal_check with no database credentials in its
environment; loads the unpacked snapshot at ROOT (its working directory), lints it, and
with --tests runs its snapshot rule tests and event rule tests; writes JSON to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.compliance.proposal_check import Check, TestResult


def check(root: Path, config: Path, base_dir: Path, tests: bool) -> Check:
    from engine.composition import install
    from engine.compliance import review
    from engine.config.base import Config
    from engine.errors import SourceErrors
    from engine.events import ruletest as event_tests
    from engine.language.event_rules import load_event_rules
    from engine.language.loading import check_ruleset
    from engine.pipeline import ruletest

    install()
    cfg = Config.model_validate({**json.loads(config.read_text(encoding="utf-8")), "base_dir": base_dir})
    c, rules_dirs, templates = review.snapshot_config(cfg, root)
    ruleset, problems = check_ruleset(c, rules_dirs, templates)
    events = None
    try:
        events = load_event_rules(c, templates_dir=templates, snapshot_ids={r.id for r in ruleset.rules} if ruleset else None)
    except SourceErrors as e:
        problems = [*problems, *e.problems]
    problems = review.relabel(problems, root)
    if not tests or ruleset is None or any(p.severity == "error" for p in problems):
        return Check(problems)
    results = [TestResult(r.path, r.rule, r.case, r.ok, r.detail) for r in ruletest.run_all(ruleset, rules_dirs)]
    if events is not None:
        files = event_tests.case_files(c, Path(c.events.rules_dir))
        results += [TestResult(r.path, r.rule, r.case, r.ok, r.detail) for r in event_tests.run_all(events, c, files)]
    return Check(problems, results, True)


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--tests"]
    root, config, base_dir, out = (Path(a) for a in args[:4])
    result = check(root, config, base_dir, "--tests" in argv)
    out.write_text(json.dumps(result.to_json(), ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How long the rule tests take: `steward events test` and `steward rules test` cases, in process.

    .venv/bin/python bench/rule_tests.py [--repeat 5]

Loads the config and the working rules once, then runs every shipped timed event
case (engine.events.ruletest.run_all) and every snapshot case
(engine.pipeline.ruletest.run_all) `--repeat` times, printing the median and the
fastest run of each, and the events' median CPU time (steadier on a loaded machine).
The first event run pays the one-off imports (exchange-calendars, durable-rules
rulesets) and is reported separately. For the whole command as a user runs it, time
`steward events test` itself. The machine is shared and noisy: compare medians taken
in one sitting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.composition import install  # noqa: E402
from engine.config.base import load_config  # noqa: E402
from engine.events import ruletest as event_tests  # noqa: E402
from engine.language.event_rules import load_event_rules  # noqa: E402
from engine.language.loading import load_ruleset  # noqa: E402
from engine.pipeline import ruletest as snapshot_tests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn: Callable[[], list[snapshot_tests.Result]]) -> tuple[float, list[snapshot_tests.Result]]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    install()
    cfg = load_config(ROOT / "config.yaml")
    rules = load_event_rules(cfg)
    ruleset = load_ruleset(cfg)
    first, results = _timed(lambda: event_tests.run_all(rules, cfg))
    ev = [_timed(lambda: event_tests.run_all(rules, cfg))[0] for _ in range(args.repeat)]
    cpu = [_cpu(lambda: event_tests.run_all(rules, cfg)) for _ in range(args.repeat)]
    snap = [_timed(lambda: snapshot_tests.run_all(ruleset, cfg.rules_paths)) for _ in range(args.repeat)]
    bad = [r for r in results + snap[0][1] if not r.ok]
    print(f"event cases: {len(results)}, first run {first:.2f} s, then median {statistics.median(ev):.2f} s "
          f"(fastest {min(ev):.2f} s, {1000 * statistics.median(ev) / len(results):.0f} ms a case); "
          f"CPU median {statistics.median(cpu):.2f} s")
    times = [t for t, _ in snap]
    print(f"snapshot cases: {len(snap[0][1])}, median {statistics.median(times):.3f} s (fastest {min(times):.3f} s)")
    if bad:
        sys.exit(f"{len(bad)} case(s) failed: " + "; ".join(f"{r.rule}: {r.case}" for r in bad))


if __name__ == "__main__":
    main()

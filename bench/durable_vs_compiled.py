"""Throughput: the durable-rules adapter vs compiled predicates, same rules, same facts.

    .venv/bin/python bench/durable_vs_compiled.py [--facts 20000] [--seed 7]

Three rules over synthetic client facts (about a tenth of each field null, some
zeros for the division). Both matchers must return identical rule sets for every
fact; the script fails otherwise. Prints facts/second for each and the ratio.
The machine is shared and noisy: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.language import expr as E  # noqa: E402
from engine.events.durable import DurableMatcher  # noqa: E402

TYPES = {"market_value": "number", "cash": "number", "days_idle": "number",
         "risk_level": "string", "email": "string", "professional": "bool"}
RULES = {
    "large_retail": "market_value > 1_000_000 and not professional",
    "cash_heavy": "cash / market_value >= 40% or risk_level in ['C4', 'C5']",
    "dormant": "not (days_idle <= 90) and email is not null",
}


def _facts(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)

    def maybe(v: Any) -> Any:
        return None if rnd.random() < 0.1 else v

    return [
        {
            "client_id": f"C{i:06d}",
            "market_value": maybe(rnd.choice([0, rnd.uniform(0, 3_000_000)])),
            "cash": maybe(rnd.uniform(0, 800_000)),
            "days_idle": maybe(rnd.randint(0, 400)),
            "risk_level": maybe(rnd.choice(["C1", "C2", "C3", "C4", "C5"])),
            "email": maybe(f"c{i}@example.com"),
            "professional": maybe(rnd.random() < 0.2),
        }
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rules = [(rid, E.check(E.parse(text), TYPES)) for rid, text in RULES.items()]
    preds = [(rid, E.compile_predicate(node, rid)) for rid, node in rules]
    facts = _facts(args.facts, args.seed)

    t = time.perf_counter()
    compiled = [{rid for rid, p in preds if p(f)} for f in facts]
    t_comp = time.perf_counter() - t

    matcher = DurableMatcher(rules)
    t = time.perf_counter()
    durable = matcher.match_many(facts)
    t_dur = time.perf_counter() - t

    if durable != compiled:
        bad = next(i for i, (a, b) in enumerate(zip(durable, compiled)) if a != b)
        raise SystemExit(f"answers differ at fact {bad}: durable {durable[bad]} compiled {compiled[bad]}")
    firings = sum(map(len, compiled))
    comp, dur = len(facts) / t_comp, len(facts) / t_dur
    print(f"{len(facts):,} facts x {len(rules)} rules, {firings:,} firings, answers identical")
    print(f"compiled predicates: {comp:12,.0f} facts/s")
    print(f"durable-rules:       {dur:12,.0f} facts/s")
    print(f"compiled/durable = {comp / dur:,.0f}x")


if __name__ == "__main__":
    main()

"""A nightly run's memory is bounded by the batch, not by the book.

Two books of the same synthetic shape, one four times the other, are evaluated at the
same small batch size under tracemalloc. What the run holds between batches must not
grow with the book: anything kept per client of the whole book (an id list, a cache in
`extra`, a per-run dict) shows up as bytes per client of the difference. The allocation
peak, one batch's work, must stay about the same.
"""

from __future__ import annotations

import tracemalloc
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import Engine

from engine.config.base import Config
from engine.db import make_engine, upgrade
from engine.demo import book as demo
from engine.language.loading import RuleSet, load_ruleset
from engine.pipeline import run as pipeline

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
BATCH = 100
SMALL, LARGE = 300, 1_200
HELD_PER_CLIENT = 200
"""Bytes held between batches per client of the book allowed. What is measured includes the
batch just done, whose size varies from batch to batch (up to ~60 B per client of the book
here); anything the run kept per client (a facts dict is kilobytes, a decision or a firing
row hundreds of bytes) is well above. A lone id string (~60 B) is not: `facts.batch_ranges`
keeps the id list out of the run by construction."""


def _book(tmp_path: Path, cfg: Config, clients: int) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / f'book{clients}.db'}")
    upgrade(eng)
    demo.build_book(eng, cfg, clients=clients, seed=7, as_of=AS_OF)
    return eng


def _measure(eng: Engine, cfg: Config, rules: RuleSet) -> tuple[int, int, int]:
    """(allocation peak of the run, most memory held between two batches, clients), in bytes over the start."""
    held: list[int] = []
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    s = pipeline.run(eng, cfg, rules, AS_OF, now=NOW, progress=lambda n: held.append(tracemalloc.get_traced_memory()[0]))
    return tracemalloc.get_traced_memory()[1] - before, max(held) - before, s.clients


def test_memory_of_a_run_does_not_grow_with_the_book(tmp_path: Path, full_cfg: Config) -> None:
    cfg = full_cfg.model_copy(update={"evaluation": full_cfg.evaluation.model_copy(update={"batch_size": BATCH})})
    rules = load_ruleset(cfg)
    small, large = _book(tmp_path, cfg, SMALL), _book(tmp_path, cfg, LARGE)
    warm = _book(tmp_path, cfg, BATCH)
    tracemalloc.start()
    try:
        _measure(warm, cfg, rules)  # first-use caches (compiled SQL, templates) are not the book's
        peak_small, held_small, n_small = _measure(small, cfg, rules)
        peak_large, held_large, n_large = _measure(large, cfg, rules)
    finally:
        tracemalloc.stop()
        for e in (small, large, warm):
            e.dispose()
    assert (n_small, n_large) == (SMALL, LARGE)
    per_client = (held_large - held_small) / (LARGE - SMALL)
    assert per_client < HELD_PER_CLIENT, (
        f"held between batches: {held_small:,} B at {SMALL} clients, {held_large:,} B at {LARGE}: "
        f"{per_client:.0f} B per client of the book (something is kept per client for the whole run)")
    # the peak is one batch's work: a book four times larger may only find a busier batch
    assert peak_large < 1.25 * peak_small, f"peak {peak_small:,} B at {SMALL} clients, {peak_large:,} B at {LARGE}"

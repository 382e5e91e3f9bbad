"""Effect review per cycle (DOMAIN.md "Servicing records"): was each client's segment right, what
did the clients gain, which rules produced outcomes.

For each cycle (a week, month or quarter; `servicing.review.cycle`) the review compares every
client's segment and assets as of the day before the cycle with those as of its last day,
from the data as of each of those days (the same fact code the rules use):

- moves: clients per (segment before, segment after); `up`, `down` and `stayed` per segment;
- gains: assets before and after, the change, and churn (clients with assets before, none after);
- rules: per rule, firings in the cycle, messages sent, tasks done and their recorded outcomes.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.config.base import Config
from engine.facts import base as facts_mod
from engine.facts.segments import SEGMENT_RANK
from engine.pipeline.recording import FIRING

Cycle = Literal["weekly", "monthly", "quarterly"]


@dataclass
class CycleReview:
    start: date
    end: date
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    segments: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)


def cycles(start: date, end: date, cycle: Cycle) -> list[tuple[date, date]]:
    """Whole cycles covering start..end (weeks from Monday, calendar months, calendar quarters)."""
    out: list[tuple[date, date]] = []
    if cycle == "weekly":
        day = start - timedelta(days=start.weekday())
        while day <= end:
            out.append((day, day + timedelta(days=6)))
            day += timedelta(days=7)
        return out
    months = 1 if cycle == "monthly" else 3
    day = date(start.year, 1 + (start.month - 1) // months * months, 1)
    while day <= end:
        y, m = divmod(day.month - 1 + months, 12)
        nxt = date(day.year + y, m + 1, 1)
        out.append((day, nxt - timedelta(days=1)))
        day = nxt
    return out


def _state(conn: Connection, cfg: Config, day: date, cache: dict[date, dict[str, tuple[str, float]]]
           ) -> dict[str, tuple[str, float]]:
    """client -> (segment, market value) from the data as of `day`."""
    if day not in cache:
        cache[day] = {f["client_id"]: (f.get("segment") or "-", float(f.get("market_value") or 0.0))
                      for batch in facts_mod.iter_batches(conn, cfg, day) for f in batch}
    return cache[day]


def _segments(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]],
              rev: CycleReview) -> None:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    assets: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for cid in before.keys() | after.keys():
        seg0, v0 = before.get(cid, ("new", 0.0))
        seg1, v1 = after.get(cid, ("-", 0.0))
        rev.moves[(seg0, seg1)] += 1
        r = rows[seg0]
        r["clients"] += 1
        if seg0 in SEGMENT_RANK and seg1 in SEGMENT_RANK:
            r["up" if SEGMENT_RANK[seg1] > SEGMENT_RANK[seg0] else "down" if SEGMENT_RANK[seg1] < SEGMENT_RANK[seg0]
              else "stayed"] += 1
        r["with_assets"] += v0 > 0
        r["churned"] += v0 > 0 and v1 <= 0
        assets[seg0][0] += v0
        assets[seg0][1] += v1
    for seg in sorted(rows, key=lambda s: -SEGMENT_RANK.get(s, -1)):
        r, (v0, v1) = rows[seg], assets[seg]
        rev.segments.append({
            "cycle_start": rev.start, "cycle_end": rev.end, "segment": seg, "clients": r["clients"],
            "stayed": r["stayed"], "up": r["up"], "down": r["down"], "assets_before": round(v0, 2),
            "assets_after": round(v1, 2), "assets_change": round(v1 - v0, 2),
            "churn_rate": r["churned"] / r["with_assets"] if r["with_assets"] else None})


def _rules(conn: Connection, cfg: Config, rev: CycleReview) -> None:
    sent, done = set(cfg.audit.supervision.sent_statuses), set(cfg.audit.supervision.done_statuses)
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for rule, kind, status, reason in conn.execute(
            select(FIRING.c.rule_id, FIRING.c.action_type, FIRING.c.status, FIRING.c.reason)
            .where(FIRING.c.as_of >= rev.start, FIRING.c.as_of <= rev.end)):
        c = per[rule]
        c["fired"] += 1
        c["sent"] += kind == "message" and status in sent
        if kind == "task" and status in done:
            c["tasks_done"] += 1
            c[(reason or "done").lower()] += 1
    for rule in sorted(per):
        c = per[rule]
        rev.rules.append({"cycle_start": rev.start, "cycle_end": rev.end, "rule_id": rule, "fired": c["fired"],
                          "sent": c["sent"], "tasks_done": c["tasks_done"], "reached": c["reached"],
                          "positive": c["positive"], "declined": c["declined"]})


def review(conn: Connection, cfg: Config, start: date, end: date, cycle: Cycle) -> list[CycleReview]:
    """One review per cycle overlapping start..end; a cycle ending after `end` is cut at `end`."""
    cache: dict[date, dict[str, tuple[str, float]]] = {}
    out = []
    for c0, c1 in cycles(start, end, cycle):
        rev = CycleReview(c0, min(c1, end))
        _segments(_state(conn, cfg, c0 - timedelta(days=1), cache), _state(conn, cfg, rev.end, cache), rev)
        _rules(conn, cfg, rev)
        out.append(rev)
    return out


def write_csv(reviews: list[CycleReview], directory: Path) -> list[Path]:
    """effect_segments.csv, effect_moves.csv and effect_rules.csv in `directory` (history: one row per cycle)."""
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[dict[str, Any]]] = {
        "effect_segments.csv": [r for rev in reviews for r in rev.segments],
        "effect_moves.csv": [{"cycle_start": rev.start, "cycle_end": rev.end, "segment_before": a,
                              "segment_after": b, "clients": n}
                             for rev in reviews for (a, b), n in sorted(rev.moves.items())],
        "effect_rules.csv": [r for rev in reviews for r in rev.rules],
    }
    paths = []
    for name, rows in tables.items():
        path = directory / name
        with path.open("w", encoding="utf-8", newline="") as fh:
            if rows:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
                w.writeheader()
                w.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
        paths.append(path)
    return paths

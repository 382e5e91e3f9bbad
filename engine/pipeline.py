"""The nightly path: facts -> matching -> cooldown/dedup -> rendering -> recording.

Each batch of clients is matched, rendered and recorded in one transaction
(no per-firing commits). The same code serves a database run and a dry run
over a facts file (`evaluate_facts`), so a dry run goes through the real stages.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine import facts as facts_mod
from engine import recording, trading_calendar
from engine.config import Config
from engine.facts import Facts
from engine.loading import RuleSet
from engine.matching import Match, match
from engine.models import Advisor

Progress = Callable[[int], None]
"""Called with the number of clients just processed."""


@dataclass
class Firing:
    """A match carried through rendering; becomes one `firing` row."""

    match: Match
    subject: str | None = None
    message: str | None = None
    error: str | None = None

    @property
    def rule(self) -> Any:
        return self.match.rule


@dataclass
class RunSummary:
    as_of: date
    run_id: int | None = None
    clients: int = 0
    firings: int = 0
    failed: int = 0
    skipped_cooldown: int = 0
    skipped_duplicate: int = 0
    per_rule: Counter[str] = field(default_factory=Counter)
    per_segment: Counter[str] = field(default_factory=Counter)
    per_action: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("facts", "matching", "rendering", "recording"), 0.0))


class _Clock:
    def __init__(self, summary: RunSummary):
        self.s = summary
        self.t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.s.seconds[stage] += now - self.t
        self.t = now


def render_firing(ruleset: RuleSet, m: Match, advisors: dict[str, dict[str, str]], as_of: date) -> Firing:
    rule = m.rule
    advisor = advisors.get(m.facts.get("advisor_id") or "", {"id": m.facts.get("advisor_id") or "", "name": ""})
    ctx = {"client": m.facts, "advisor": advisor, "rule": {"id": rule.id, "title": rule.spec.title}, "as_of": as_of}
    try:
        subject, text = ruleset.renderer.render(rule.spec.action.template, m.facts.get("locale") or "", ctx)
    except Exception as e:  # noqa: BLE001 - a bad value for one client must not stop the run
        return Firing(m, error=f"{type(e).__name__}: {e}")
    return Firing(m, subject, text)


def evaluate_facts(ruleset: RuleSet, batch: Iterable[Facts], as_of: date,
                   advisors: dict[str, dict[str, str]] | None = None) -> Iterator[Firing]:
    """Match and render without a database (dry runs, rule tests, `steward evaluate`)."""
    for m in match(ruleset.enabled, batch):
        yield render_firing(ruleset, m, advisors or {}, as_of)


def _advisors(conn: Connection) -> dict[str, dict[str, str]]:
    t = Advisor.__table__  # type: ignore[attr-defined]
    return {r.id: {"id": r.id, "name": r.name} for r in conn.execute(select(t.c.id, t.c.name))}


def _row(f: Firing, run_id: int, as_of: date, ruleset: RuleSet, now: datetime) -> dict[str, Any]:
    rule, facts = f.match.rule, f.match.facts
    action = rule.spec.action
    due = action.due_delta
    return {
        "run_id": run_id, "as_of": as_of, "client_id": facts["client_id"], "advisor_id": facts.get("advisor_id"),
        "rule_id": rule.id, "rule_hash": rule.content_hash,
        "template_hash": ruleset.renderer.template_hash(action.template),
        "rule_class": rule.spec.rule_class, "action_type": action.type, "channel": action.channel,
        "priority": action.priority, "locale": facts.get("locale") or "", "subject": f.subject, "message": f.message,
        "due_on": as_of + timedelta(days=max(due.days, 0)) if due else None,
        "status": "failed" if f.error else ("open" if action.type == "task" else "pending"),
        "error": f.error, "facts": recording.jsonable(facts), "created_at": now,
    }


def _new_matches(batch: list[Facts], ruleset: RuleSet, last: dict[tuple[str, str], date],
                 as_of: date, s: RunSummary) -> list[Match]:
    fresh = []
    for m in match(ruleset.enabled, batch):
        prev = last.get((m.rule.id, m.facts["client_id"]))
        if prev == as_of:
            s.skipped_duplicate += 1
        elif prev is not None and as_of - prev < m.rule.spec.cooldown_delta:
            s.skipped_cooldown += 1
        else:
            fresh.append(m)
    return fresh


def _process_batch(conn: Connection, batch: list[Facts], ruleset: RuleSet, run_id: int, as_of: date,
                   advisors: dict[str, dict[str, str]], s: RunSummary, clock: _Clock) -> None:
    ids = [f["client_id"] for f in batch]
    last = recording.last_fired(conn, min(ids), max(ids), as_of)
    fresh = _new_matches(batch, ruleset, last, as_of, s)
    clock.lap("matching")
    fired = [render_firing(ruleset, m, advisors, as_of) for m in fresh]
    clock.lap("rendering")
    now = datetime.now(timezone.utc)
    recording.insert_firings(conn, [_row(f, run_id, as_of, ruleset, now) for f in fired])
    clock.lap("recording")
    for f in fired:
        s.firings += 1
        s.failed += f.error is not None
        s.per_rule[f.rule.id] += 1
        s.per_segment[f.match.facts.get("segment") or "-"] += 1
        s.per_action[f.rule.spec.action.type] += 1


def run(engine: Engine, cfg: Config, ruleset: RuleSet, as_of: date,
        progress: Progress | None = None, mode: str = "run") -> RunSummary:
    """Evaluate every client as of a date and record the firings."""
    s = RunSummary(as_of)
    with engine.begin() as conn:
        trading_calendar.ensure(conn, cfg.calendar.exchange, as_of - timedelta(days=90), as_of)
        s.run_id = recording.start_run(conn, as_of, mode, ruleset.version)
        advisors = _advisors(conn)
    clock = _Clock(s)
    with engine.connect() as read:
        for batch in facts_mod.iter_batches(read, cfg, as_of):
            clock.lap("facts")
            with engine.begin() as conn:
                _process_batch(conn, batch, ruleset, s.run_id, as_of, advisors, s, clock)
            s.clients += len(batch)
            if progress:
                progress(len(batch))
            clock.t = time.perf_counter()
    with engine.begin() as conn:
        recording.finish_run(conn, s.run_id, clients=s.clients, firings=s.firings,
                             skipped_cooldown=s.skipped_cooldown, skipped_duplicate=s.skipped_duplicate)
    return s

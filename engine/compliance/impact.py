"""Impact preview and backtest: who a proposal would contact over real data, versus the approved version.

The preview runs the real pipeline stages (facts, matching, cooldown, policy stages,
rendering, recording) day by day inside one database transaction and then rolls the whole
transaction back, so nothing it did remains. The record hooks (audit events, outbox rows)
do not run: they belong to messages that are really sent. Firings already recorded from the first
day on are set aside inside that transaction, so a backtest over past days starts from the
log as it stood before them. While a preview runs it holds that transaction open: on SQLite
other writers wait for it, so keep ranges short (at most `MAX_DAYS`).

A client counts as contacted by a rule on a day when the firing fires or is held for the
contact window; suppressed, deferred and dropped firings count as blocked, by reason code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.engine import Connection

from engine.audit import facts_store
from engine.compliance import review
from engine.facts import base as facts_mod
from engine.pipeline import run as pipeline
from engine.pipeline import recording
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.errors import StewardError
from engine.language.loading import RuleSet, load_ruleset
from engine.pipeline.policy import StageContext
from engine.pipeline.recording import FIRING

MAX_DAYS = 92
BLOCKED = ("suppressed", "deferred", "dropped")
Contact = tuple[str, date]
"""(client id, day)."""
Progress = Callable[[int, int], None]
"""Called with (days done, days in all) as a preview runs: the console shows it."""


@dataclass(frozen=True)
class Sample:
    client_id: str
    day: date
    locale: str
    subject: str | None
    text: str


@dataclass
class Simulation:
    contacts: dict[str, set[Contact]] = field(default_factory=dict)
    blocked: dict[str, Counter[str]] = field(default_factory=dict)
    samples: dict[str, dict[str, Sample]] = field(default_factory=dict)
    """rule -> locale -> first rendered message in that locale."""
    clients: int = 0
    where: dict[tuple[str, str, date], tuple[str, str]] = field(default_factory=dict)
    """(rule, client, day) -> (segment, locale) of each contact: the console's counts by segment and locale."""


@dataclass(frozen=True)
class RuleImpact:
    rule_id: str
    state: str
    """new, changed, removed or unchanged."""
    added: int
    removed: int
    unchanged: int
    blocked: dict[str, int]
    samples: dict[str, Sample]
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Client segment -> (contacts under the proposal, under the approved version)."""
    locales: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Message locale -> (contacts under the proposal, under the approved version)."""
    added_contacts: list[Contact] = field(default_factory=list)
    removed_contacts: list[Contact] = field(default_factory=list)

    @property
    def proposed(self) -> int:
        return self.added + self.unchanged


@dataclass(frozen=True)
class Impact:
    start: date
    end: date
    clients: int
    rules: list[RuleImpact]


def days_between(start: date, end: date) -> list[date]:
    if end < start:
        raise StewardError(f"--to {end} is before --from {start}")
    n = (end - start).days + 1
    if n > MAX_DAYS:
        raise StewardError(f"{n} days is too long a preview (at most {MAX_DAYS}): choose a shorter --from/--to range")
    return [start + timedelta(days=i) for i in range(n)]


def _collect(conn: Connection, run_id: int, sim: Simulation) -> None:
    q = select(FIRING.c.rule_id, FIRING.c.client_id, FIRING.c.as_of, FIRING.c.status, FIRING.c.reason,
               FIRING.c.locale, FIRING.c.subject, FIRING.c.message, FIRING.c.facts, FIRING.c.facts_sha256,
               ).where(FIRING.c.run_id == run_id).order_by(FIRING.c.id)
    for r, facts in facts_store.pages(conn, conn.execute(q)):
        if r.status in BLOCKED:
            sim.blocked.setdefault(r.rule_id, Counter())[r.reason or r.status] += 1
            continue
        sim.contacts.setdefault(r.rule_id, set()).add((r.client_id, r.as_of))
        sim.where[(r.rule_id, r.client_id, r.as_of)] = (str(facts.get("segment") or "-"), r.locale)
        per_locale = sim.samples.setdefault(r.rule_id, {})
        if r.message and r.locale not in per_locale:
            per_locale[r.locale] = Sample(r.client_id, r.as_of, r.locale, r.subject, r.message)


def _batch(conn: Connection, batch: list[facts_mod.Facts], ruleset: RuleSet, run_id: int, ctx: StageContext,
           advisors: dict[str, dict[str, str]], s: pipeline.RunSummary) -> None:
    """The nightly steps without the record hooks: audit events and outbox rows are for real sends."""
    decisions = pipeline.decide(conn, ctx, ruleset, batch, s)
    pipeline.record_decisions(conn, ctx, ruleset, decisions, run_id, advisors, hooks=False)


def _day(conn: Connection, cfg: Config, ruleset: RuleSet, day: date, advisors: dict[str, dict[str, str]], sim: Simulation) -> None:
    s = pipeline.RunSummary(day)
    run_id = recording.start_run(conn, day, "preview", ruleset.version)
    n = 0
    for batch in facts_mod.iter_batches(conn, cfg, day):
        ids = [f["client_id"] for f in batch]
        if ids:
            _batch(conn, batch, ruleset, run_id, StageContext(conn, cfg, day, min(ids), max(ids)), advisors, s)
            n += len(ids)
    sim.clients = max(sim.clients, n)
    _collect(conn, run_id, sim)


def simulate(engine: Engine, cfg: Config, ruleset: RuleSet, days: list[date],
             progress: Progress | None = None) -> Simulation:
    """Run the pipeline for each day in one transaction, collect what it did, roll everything back."""
    sim = Simulation()
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            trading_calendar.ensure(conn, cfg.calendar.exchange, days[0] - timedelta(days=90), days[-1])
            conn.execute(delete(FIRING).where(FIRING.c.as_of >= days[0]))
            advisors = pipeline.advisors_of(conn)
            for i, day in enumerate(days):
                _day(conn, cfg, ruleset, day, advisors, sim)
                if progress is not None:
                    progress(i + 1, len(days))
        finally:
            trans.rollback()
    return sim


def _state(rule_id: str, approved: RuleSet | None, proposed: RuleSet) -> str:
    a, p = approved.get(rule_id) if approved else None, proposed.get(rule_id)
    if a is None:
        return "new"
    if p is None:
        return "removed"
    same = (a.content_hash == p.content_hash and
            approved is not None and approved.renderer.template_hash(a.spec.action.template)
            == proposed.renderer.template_hash(p.spec.action.template))
    return "unchanged" if same else "changed"


def _tally(rule_id: str, contacts: set[Contact], sim: Simulation) -> tuple[Counter[str], Counter[str]]:
    """Contacts by segment and by locale."""
    where = [sim.where[(rule_id, *c)] for c in contacts]
    return Counter(seg for seg, _ in where), Counter(loc for _, loc in where)


def _pair(proposed: Counter[str], approved: Counter[str]) -> dict[str, tuple[int, int]]:
    return {k: (proposed[k], approved[k]) for k in sorted(set(proposed) | set(approved))}


def compare(engine: Engine, cfg: Config, approved: RuleSet | None, proposed: RuleSet, start: date, end: date,
            only: set[str] | None = None, include_unchanged: bool = False, progress: Progress | None = None) -> Impact:
    """Per rule: contacts added, removed and unchanged by the proposal over the days, with samples.

    `progress` hears (steps done, steps in all): one step per simulated day, both versions."""
    days = days_between(start, end)
    steps = len(days) * (2 if approved is not None else 1)
    new = simulate(engine, cfg, proposed, days, progress and (lambda i, _: progress(i, steps)))
    old = (simulate(engine, cfg, approved, days, progress and (lambda i, _: progress(len(days) + i, steps)))
           if approved is not None else Simulation())
    ids = sorted({r.id for r in proposed.rules} | ({r.id for r in approved.rules} if approved else set()))
    out = []
    for rid in ids:
        if only is not None and rid not in only:
            continue
        state = _state(rid, approved, proposed)
        if state == "unchanged" and not include_unchanged and only is None:
            continue
        a, p = old.contacts.get(rid, set()), new.contacts.get(rid, set())
        (new_seg, new_loc), (old_seg, old_loc) = _tally(rid, p, new), _tally(rid, a, old)
        out.append(RuleImpact(rid, state, len(p - a), len(a - p), len(a & p),
                              dict(new.blocked.get(rid, Counter())), new.samples.get(rid, {}),
                              _pair(new_seg, old_seg), _pair(new_loc, old_loc),
                              sorted(p - a), sorted(a - p)))
    return Impact(start, end, max(new.clients, old.clients), out)


def as_dict(impact: Impact) -> dict[str, Any]:
    """Plain data for JSON output and tests."""
    return {r.rule_id: {"state": r.state, "added": r.added, "removed": r.removed, "unchanged": r.unchanged,
                        "blocked": r.blocked} for r in impact.rules}


def approved_or_none(engine: Engine, cfg: Config) -> RuleSet | None:
    """The approved version's rules for an impact preview's left side; None before any approval."""
    try:
        return review.approved_ruleset(engine, cfg)[0]
    except review.NothingApproved:
        return None


def proposal_ruleset(engine: Engine, cfg: Config, row: Any) -> RuleSet:
    """A proposal of YAML rules and templates, unpacked and loaded for an impact preview.

    Refuses a proposal that holds Python rule files: proposed code never runs in a reviewer's
    process (the author runs `steward rules backtest` on the working files)."""
    if code := review.python_files(row.manifest):
        raise StewardError(f"impact preview skipped: the proposal holds Python rule file(s) {', '.join(code)}; proposed "
                           "code never runs in a reviewer's process (the author runs `steward rules backtest`)")
    with engine.begin() as conn:
        root = review.materialise(conn, cfg, row.manifest, row.content_hash)
    sc, rules, templates = review.snapshot_config(cfg, root)
    return load_ruleset(sc, rules, templates)

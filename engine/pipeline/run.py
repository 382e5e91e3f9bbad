"""The nightly path: facts -> matching -> cooldown/dedup -> rendering -> recording.

Each batch of clients is matched and decided as a whole, then rendered and recorded
in transactions of `RECORD_CHUNK` clients (no per-firing commits). The same code serves a database run and a dry run
over a facts file (`evaluate_facts`), so a dry run goes through the real stages.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine.facts import base as facts_mod
from engine.pipeline import recording
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.audit.log import sha256_text
from engine.db import bulk_writer
from engine.facts.base import Facts
from engine.language.loading import RuleSet
from engine.language.rendering import RenderBudgetError
from engine.pipeline.matching import Match, match
from engine import clock
from engine.models import Advisor
from engine.pipeline.policy import Decision, StageContext, apply_all, apply_offline

RecordHook = Callable[[Connection, StageContext, list[dict[str, Any]]], None]
"""Called in the recording transaction with the firing rows just inserted (ids set)."""
Writer = Callable[[Connection], None]
PrepareHook = Callable[[Connection, StageContext, list[dict[str, Any]]], Writer]
"""A record hook in two steps: called with the firing rows before they have ids, it does the work
that needs no lock and returns what to write once they are inserted (ids set)."""
_RECORD_HOOKS: list[RecordHook] = []
_PREPARE: dict[RecordHook, PrepareHook] = {}


def register_record_hook(hook: RecordHook, prepare: PrepareHook | None = None) -> RecordHook:
    """Run `hook` after each batch's firings are inserted, in the same transaction.

    With `prepare` (equivalent to `hook`, split in two), the batch calls `prepare` before it
    takes the write lock and the step it returns after the insert, instead of `hook`: two
    processes (shards, the event engine) then hold the lock only for the writes.
    """
    _RECORD_HOOKS.append(hook)
    if prepare is not None:
        _PREPARE[hook] = prepare
    return hook


def _prepared(hook: RecordHook, conn: Connection, ctx: StageContext, rows: list[dict[str, Any]]) -> Writer:
    prepare = _PREPARE.get(hook)
    if prepare is not None:
        return prepare(conn, ctx, rows)
    return lambda c: hook(c, ctx, rows)

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
    per_reason: Counter[str] = field(default_factory=Counter)
    per_rule_blocked: Counter[str] = field(default_factory=Counter)
    per_rule: Counter[str] = field(default_factory=Counter)
    per_segment: Counter[str] = field(default_factory=Counter)
    per_action: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("facts", "matching", "rendering", "recording", "commit", "collect"), 0.0))
    """Seconds per stage, summed over batches (and over shards: CPU seconds, not wall time)."""
    failed_runs: list[tuple[int, date, str]] = field(default_factory=list)
    """Earlier runs found dead at this start and marked failed: (run id, as_of, why)."""


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
    if m.error:
        return Firing(m, error=m.error)
    ctx = {"client": m.facts, "advisor": advisor, "rule": {"id": rule.id, "title": rule.spec.title}, "as_of": as_of}
    try:
        subject, text = ruleset.renderer.render(rule.spec.action.template, m.facts.get("locale") or "", ctx)
    except RenderBudgetError as e:  # reason code first: RENDER_TOO_LONG, RENDER_TOO_MANY_STEPS, ...
        return Firing(m, error=str(e)[:500])
    except Exception as e:  # noqa: BLE001 - a bad value for one client must not stop the run
        return Firing(m, error=f"{type(e).__name__}: {str(e)[:500]}")
    return Firing(m, subject, text)


def evaluate_facts(ruleset: RuleSet, batch: Iterable[Facts], as_of: date,
                   advisors: dict[str, dict[str, str]] | None = None) -> Iterator[Firing]:
    """Match and render without a database (dry runs, rule tests, `steward evaluate`)."""
    for m in match(ruleset.enabled, batch):
        yield render_firing(ruleset, m, advisors or {}, as_of)


@dataclass
class DryRun:
    """`steward evaluate`: firings through every gate that needs no database, and which gates were skipped."""

    firings: list[Firing]
    blocked: list[Decision]
    applied: list[str]
    skipped: list[str]


def evaluate_gated(cfg: Config, ruleset: RuleSet, batch: list[Facts], as_of: date) -> DryRun:
    per_client: dict[str, list[Decision]] = {}
    for m in match(ruleset.enabled, batch):
        per_client.setdefault(m.facts["client_id"], []).append(Decision(m))
    groups = list(per_client.values())
    ids = sorted(per_client) or [""]
    applied, skipped = apply_offline(StageContext(None, cfg, as_of, ids[0], ids[-1]), groups)
    decisions = [d for g in groups for d in g]
    return DryRun([render_firing(ruleset, d.match, {}, as_of) for d in decisions if d.live],
                  [d for d in decisions if not d.live], applied, skipped)


def advisors_of(conn: Connection) -> dict[str, dict[str, str]]:
    """Advisor id -> the `advisor` variable templates see."""
    t = Advisor.__table__  # type: ignore[attr-defined]
    return {r.id: {"id": r.id, "name": r.name} for r in conn.execute(select(t.c.id, t.c.name))}


def _status(f: Firing | None, d: Decision, action_type: str) -> str:
    if not d.live:
        return d.outcome
    if f is not None and f.error:
        return "failed"
    return "open" if action_type == "task" else "pending"


ASSIGN_SUPERVISOR = "assign:supervisor"
"""Rule tag: the task goes to the supervisor of the client's advisor (escalations), when there is one."""


def assignee(rule: Any, facts: Facts) -> str | None:
    if ASSIGN_SUPERVISOR in rule.spec.tags and facts.get("supervisor_id"):
        return str(facts["supervisor_id"])
    return facts.get("advisor_id")


class _RuleConst(NamedTuple):
    template_hash: str | None
    due_days: int | None


def _rule_const(ruleset: RuleSet, rule: Any, cache: dict[str, _RuleConst]) -> _RuleConst:
    """What a firing row takes from its rule alone, worked out once per rule and batch."""
    c = cache.get(rule.id)
    if c is None:
        action = rule.spec.action
        due = action.due_delta
        c = cache[rule.id] = _RuleConst(ruleset.renderer.template_hash(action.template),
                                        max(due.days, 0) if due else None)
    return c


def _row(d: Decision, f: Firing | None, run_id: int, as_of: date, ruleset: RuleSet, now: datetime,
         snapshots: dict[int, tuple[dict[str, Any], str, str]], consts: dict[str, _RuleConst],
         dates: tuple[str, ...]) -> dict[str, Any]:
    rule, facts = d.match.rule, d.match.facts
    snap = snapshots.get(id(facts))
    if snap is None:  # once per client: its firings share one encoded snapshot, stored once by its hash
        stored, text = recording.encoded_facts(facts, dates)
        snap = snapshots[id(facts)] = (stored, text, sha256_text(text))
    action = rule.spec.action
    c = _rule_const(ruleset, rule, consts)
    return {
        "run_id": run_id, "as_of": as_of, "client_id": facts["client_id"], "advisor_id": assignee(rule, facts),
        "rule_id": rule.id, "rule_hash": rule.content_hash, "template_hash": c.template_hash,
        "rule_class": rule.spec.rule_class, "action_type": action.type, "channel": action.channel,
        "priority": action.priority, "locale": facts.get("locale") or "",
        "subject": f.subject if f else None, "message": f.message if f else None,
        "due_on": as_of + timedelta(days=c.due_days) if c.due_days is not None else None,
        "status": _status(f, d, action.type), "error": f.error if f else None, "reason": d.reason,
        "policy": d.trail, "facts": snap[0], "facts_json": snap[1], "facts_sha256": snap[2], "created_at": now,
    }


def _new_matches(batch: list[Facts], ruleset: RuleSet, last: dict[tuple[str, str], tuple[date, date | None]],
                 as_of: date, s: RunSummary, failed: list[Decision]) -> list[list[Decision]]:
    """Matches not already recorded today nor within cooldown, grouped per client.

    A rule that failed to evaluate goes to `failed`: recorded, but it takes no part in the policy stages.
    """
    per_client: dict[str, list[Decision]] = {}
    cooldowns: dict[str, timedelta] = {}  # parsed once per rule, not per match
    for m in match(ruleset.enabled, batch):
        cooldown = cooldowns.get(m.rule.id)
        if cooldown is None:
            cooldown = cooldowns[m.rule.id] = m.rule.spec.cooldown_delta
        held = recording.within_cooldown(last.get((m.rule.id, m.facts["client_id"])), as_of, cooldown)
        if held == "duplicate":
            s.skipped_duplicate += 1
        elif m.error:
            failed.append(Decision(m))
        elif held == "cooldown":
            s.skipped_cooldown += 1
        else:
            per_client.setdefault(m.facts["client_id"], []).append(Decision(m))
    return list(per_client.values())


def decide(conn: Connection, ctx: StageContext, ruleset: RuleSet, batch: list[Facts], s: RunSummary) -> list[Decision]:
    """Matches of one batch not already recorded today nor within cooldown, through the policy stages."""
    last = recording.last_fired(conn, ctx.lo, ctx.hi, ctx.as_of)
    failed: list[Decision] = []
    per_client = _new_matches(batch, ruleset, last, ctx.as_of, s, failed)
    apply_all(ctx, per_client)
    return [d for group in per_client for d in group] + failed


def record_decisions(conn: Connection, ctx: StageContext, ruleset: RuleSet, decisions: list[Decision],
                     run_id: int, advisors: dict[str, dict[str, str]], *, hooks: bool = True,
                     lap: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Render live decisions, insert one `firing` row per decision, run the record hooks.

    Shared by the nightly batch, event rules and impact previews (which pass hooks=False:
    audit events and outbox rows are for real sends). Returns the rows, ids set.
    """
    rendered = [render_firing(ruleset, d.match, advisors, ctx.as_of) if d.live else None for d in decisions]
    if lap:
        lap("rendering")
    fixed = ctx.cache.get("now")
    now = fixed if isinstance(fixed, datetime) else clock.now()
    snapshots: dict[int, tuple[dict[str, Any], str, str]] = {}
    consts: dict[str, _RuleConst] = {}
    dates = recording.date_fields()
    rows = [_row(d, f, run_id, ctx.as_of, ruleset, now, snapshots, consts, dates) for d, f in zip(decisions, rendered)]
    # Everything that needs no lock first: the rows' tuples, the outbox rows, the audit bodies.
    prepared = recording.prepare_firings(conn, rows)
    writers = [_prepared(hook, conn, ctx, rows) for hook in _RECORD_HOOKS] if hooks else []
    # Then the writes: the first one takes SQLite's write lock (the audit append takes the
    # PostgreSQL chain lock), held to the commit.
    recording.write_firings(conn, rows, prepared)
    for write in writers:
        write(conn)
    return rows


def _record_part(conn: Connection, decisions: list[Decision], ruleset: RuleSet, run_id: int, ctx: StageContext,
                 advisors: dict[str, dict[str, str]], s: RunSummary, clock: _Clock) -> None:
    rows = record_decisions(conn, ctx, ruleset, decisions, run_id, advisors, lap=clock.lap)
    clock.lap("recording")
    for d, row in zip(decisions, rows):
        if not d.live:
            s.per_reason[d.reason or d.outcome] += 1
            s.per_rule_blocked[d.match.rule.id] += 1
            continue
        s.firings += 1
        s.failed += row["status"] == "failed"
        s.per_rule[d.match.rule.id] += 1
        s.per_segment[d.match.facts.get("segment") or "-"] += 1
        s.per_action[d.match.rule.spec.action.type] += 1


class Opened(NamedTuple):
    run_id: int
    advisors: dict[str, dict[str, str]]
    failed_runs: list[tuple[int, date, str]]
    """Earlier nightly runs found dead at this start and marked failed: (run id, as_of, why)."""


def start(engine: Engine, cfg: Config, ruleset: RuleSet, as_of: date, mode: str = "run",
          now: datetime | None = None) -> Opened:
    """Open a run: trading calendar, dead earlier runs marked failed, the `evaluation_run` row."""
    with engine.begin() as conn:
        trading_calendar.ensure(conn, cfg.calendar.exchange, as_of - timedelta(days=90), as_of)
        failed_runs = [(r.id, r.as_of, r.error) for r in recording.fail_dead_runs(conn)] if mode == "run" else []
        run_id = recording.start_run(conn, as_of, mode, ruleset.version, now)
        return Opened(run_id, advisors_of(conn), failed_runs)


def evaluate_range(engine: Engine, cfg: Config, ruleset: RuleSet, as_of: date, run_id: int,
                   advisors: dict[str, dict[str, str]], now: datetime | None = None, lo: str | None = None,
                   hi: str | None = None, progress: Progress | None = None) -> RunSummary:
    """Evaluate the clients with ids in [lo, hi] (all when None), one transaction per batch.

    One shard of a run (engine.pipeline.shards) or the whole book. `now`, when given, is the
    run's fixed clock: the contact-window stage, the outbox and the firing rows read it instead
    of the wall clock, so every batch of the run decides against the same instant (benchmarks,
    tests, replays of a day). Each batch also records the run's heartbeat (real clock).
    """
    s = RunSummary(as_of, run_id)
    clock = _Clock(s)
    with _fewer_collections(), engine.connect() as read, bulk_writer(engine) as (conn, committed):
        for batch in facts_mod.iter_batches(read, cfg, as_of, lo=lo, hi=hi):
            clock.lap("facts")
            batch.sort(key=_client_id)  # disjoint id ranges per transaction (a no-op: facts come by id)
            ids = [f["client_id"] for f in batch]
            ctx = StageContext(read, cfg, as_of, ids[0], ids[-1])
            ctx.cache.update(ruleset=ruleset, advisors=advisors)  # for record hooks (audit)
            if now is not None:
                ctx.cache["now"] = now
            decisions = decide(read, ctx, ruleset, batch, s)  # reads only: no lock taken
            clock.lap("matching")
            part_of = {cid: i // RECORD_CHUNK for i, cid in enumerate(ids)}
            parts: list[list[Decision]] = [[] for _ in range(0, len(ids), RECORD_CHUNK)]
            for d in decisions:
                parts[part_of[d.match.facts["client_id"]]].append(d)
            for k, part in enumerate(parts):
                chunk = ids[k * RECORD_CHUNK:(k + 1) * RECORD_CHUNK]
                with conn.begin():
                    _record_part(conn, part, ruleset, run_id, StageContext(conn, cfg, as_of, chunk[0], chunk[-1], ctx.cache),
                                 advisors, s, clock)
                    recording.heartbeat(conn, run_id)
                committed()  # SQLite: the WAL checkpoint runs on another thread while the next chunk is prepared
                clock.lap("commit")
                s.clients += len(chunk)
                if progress:
                    progress(len(chunk))
                clock.t = time.perf_counter()
            del decisions, parts, batch
            gc.collect()  # this batch's cycles: with the collector relaxed they would wait for a rare full pass
            clock.lap("collect")
    return s


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector runs less often while a range is evaluated (and fully once per batch).

    A batch allocates a few dicts per client and per firing, nearly all freed by reference
    counting; at the default threshold (700 allocations) the collector ran thousands of times
    per batch and cost ~10% of the run's CPU. evaluate_range collects fully once per facts batch
    instead: cycles the batch made would otherwise survive into the oldest generation and wait
    for a rare full pass, and memory would grow with the book (tests/test_run_memory.py). The
    objects alive when the evaluation starts are frozen (`gc.freeze`), so that pass looks only at
    what the run allocated since. The
    threshold is put back when the last evaluation running in this process ends (threads may overlap).
    """
    global _relaxed, _threshold
    with _gc_lock:
        if _relaxed == 0:
            _threshold = gc.get_threshold()
            gc.set_threshold(50_000, 20, 100)
            gc.freeze()  # what exists now (modules, rules, templates) is never garbage: the per-batch pass skips it
        _relaxed += 1
    try:
        yield
    finally:
        with _gc_lock:
            _relaxed -= 1
            if _relaxed == 0:
                gc.unfreeze()
                gc.set_threshold(*_threshold)


_gc_lock = threading.Lock()
_relaxed = 0
_threshold: tuple[int, ...] = gc.get_threshold()


def _client_id(f: Facts) -> str:
    return str(f["client_id"])


RECORD_CHUNK = 2_000
"""Clients per recording transaction. The facts come in batches of `evaluation.batch_size`; each
is matched and put through the policy stages as a whole (reads only), then rendered and
recorded in transactions of this many clients (in client id order).
The write lock (SQLite) and the audit chain lock are held from a transaction's first write to
its commit, so with several writers (shards, the event engine) one writes while the others
prepare their next transaction; smaller transactions also keep what one commit writes small."""


def finish(engine: Engine, s: RunSummary, now: datetime | None = None) -> None:
    assert s.run_id is not None
    with engine.begin() as conn:
        recording.finish_run(conn, s.run_id, now, clients=s.clients, firings=s.firings,
                             skipped_cooldown=s.skipped_cooldown, skipped_duplicate=s.skipped_duplicate)


def merge(into: RunSummary, part: RunSummary) -> None:
    """Add one shard's counts to the run's summary."""
    into.clients += part.clients
    into.firings += part.firings
    into.failed += part.failed
    into.skipped_cooldown += part.skipped_cooldown
    into.skipped_duplicate += part.skipped_duplicate
    for name in ("per_reason", "per_rule_blocked", "per_rule", "per_segment", "per_action"):
        getattr(into, name).update(getattr(part, name))
    for stage, sec in part.seconds.items():
        into.seconds[stage] = into.seconds.get(stage, 0.0) + sec


def run(engine: Engine, cfg: Config, ruleset: RuleSet, as_of: date,
        progress: Progress | None = None, mode: str = "run", now: datetime | None = None) -> RunSummary:
    """Evaluate every client as of a date and record the firings, in this process.

    `now` (timezone-aware): a fixed clock for the whole run; None reads the wall clock.
    """
    run_id, advisors, failed_runs = start(engine, cfg, ruleset, as_of, mode, now)
    s = evaluate_range(engine, cfg, ruleset, as_of, run_id, advisors, now, progress=progress)
    s.failed_runs = failed_runs
    finish(engine, s, now)
    return s

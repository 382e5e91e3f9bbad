"""Event processing: conditions on durable-rules, sequences, absences, recording.

One `Processor` lives in the engine thread (durable-rules is owned by one thread).
Stored events are claimed in batches (`process_batch`, one transaction per batch); for
each event in turn: write its fact rows, compute the client's facts when a rule may
fire, ask durable-rules which rule steps the event meets, then

- `single` step: the rule fires now;
- `first` step of a sequence: an `event_mark` row (the sequence's persisted state);
- `then` step: fires when a mark of the same client lies inside the window;
- `start` step of an absence: an `event_deadline` row (due time computed now);
- `cured_by` step: closes the client's armed deadlines of that rule that are not yet due.

Firings go through the snapshot pipeline's pieces (cooldown and same-day dedup,
policy stages, rendering, `pipeline.record_decisions` with its audit and outbox
hooks); the batch's events are marked processed in the same transaction, so a crash
either keeps everything or nothing and a replay never fires twice. Fact rows, marks and
deadlines are buffered (`_Writes`) and flushed before any read, so each event sees what
it would see alone. `tick(now)` fires the
deadlines that are due, each in its own transaction with the same recording path.

durable-rules holds no state between events here: each event is asserted as one
fact in a session that is closed at once (DurableMatcher), and everything that must
outlive an event (marks, deadlines) is in the database, so a restart loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.engine import Connection

from engine.pipeline import run as pipeline
from engine.pipeline import recording
from engine.language import expr
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.events.durable import DurableMatcher
from engine.events import store
from engine.language import event_schema as schema
from engine.language.event_rules import EventRule, EventRuleSet, Window
from engine.events.tables import EventDeadline, EventMark
from engine.facts.base import Facts, facts_for
from engine.pipeline.matching import Match
from engine.models import Advisor, TradingDay
from engine.pipeline.policy import Decision, StageContext, apply_all

MARK = EventMark.__table__  # type: ignore[attr-defined]
DEADLINE = EventDeadline.__table__  # type: ignore[attr-defined]
DAY = TradingDay.__table__  # type: ignore[attr-defined]


def utc(dt: datetime) -> datetime:
    """Every stored or compared datetime is UTC (SQLite keeps no zone)."""
    return dt.astimezone(timezone.utc)


SHARED_FACTS_SECONDS = 5.0
"""How long events reuse the per-day values the fact providers read once per nightly run (latest
snapshot dates, the activity window, supervisors): an import of a new snapshot is seen within this."""

ORDER = ("cured_by", "then", "single", "first", "start")
"""Steps handled in this order, so an event never pairs with or cures itself."""


@dataclass
class Outcome:
    """What processing one event or one deadline did."""

    firings: list[dict[str, Any]] = field(default_factory=list)
    marks: int = 0
    armed: int = 0
    cured: int = 0
    note: str | None = None

    @property
    def live(self) -> int:
        return sum(1 for r in self.firings if r["status"] in ("pending", "open", "failed"))


_ARMED = select(DEADLINE.c.rule_id, DEADLINE.c.client_id).distinct().where(
    DEADLINE.c.rule_id.in_(bindparam("rules", expanding=True)), DEADLINE.c.client_id.in_(bindparam("clients", expanding=True)),
    DEADLINE.c.state == "armed")


class _Writes:
    """One batch's fact rows, sequence marks and deadlines: written in bulk by `flush`, which runs
    before anything reads the database (so reads see every earlier event of the batch)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.facts: dict[Any, list[dict[str, Any]]] = {}
        self.marks: list[dict[str, Any]] = []
        self.deadlines: list[dict[str, Any]] = []

    def rows(self, table: Any) -> list[dict[str, Any]]:
        return self.facts.setdefault(table, [])

    def flush(self) -> None:
        for table, rows in self.facts.items():
            store.insert_fact_rows(self.conn, table, rows)
        if self.marks:
            self.conn.execute(MARK.insert(), self.marks)
        if self.deadlines:
            self.conn.execute(DEADLINE.insert(), self.deadlines)
        self.facts, self.marks, self.deadlines = {}, [], []


class Processor:
    """Event rules for one process: build once (in the engine thread), then process and tick."""

    def __init__(self, engine: Engine, cfg: Config, rules: EventRuleSet):
        self.engine, self.cfg, self.rules = engine, cfg, rules
        self.steps: dict[str, tuple[EventRule, str]] = {}
        by_type: dict[str, list[tuple[str, expr.Node]]] = {}
        for r in rules.rules:
            if not r.rule.spec.enabled:
                continue
            for step, (etype, node) in r.steps.items():
                key = f"{r.id}:{step}"
                self.steps[key] = (r, step)
                by_type.setdefault(etype, []).append((key, node if node is not None else expr.Literal(True)))
        self.matchers = {t: DurableMatcher(pairs) for t, pairs in by_type.items()}
        self.needs_facts = {t: any(not f.startswith(schema.PREFIX) for _, n in pairs for f in expr.fields_of(n))
                            for t, pairs in by_type.items()}
        """Event types whose conditions read client facts; others read facts only when a rule fires."""
        self.advisors: dict[str, dict[str, str]] = {}
        self._runs: dict[date, int] = {}
        self._covered: tuple[date, date] | None = None
        self._shared: dict[date, tuple[float, dict[str, Any]]] = {}
        self._cure_rules = sorted({r.id for r, step in self.steps.values() if step == "cured_by"})
        with engine.begin() as conn:
            a = Advisor.__table__  # type: ignore[attr-defined]
            self.advisors = {r.id: {"id": r.id, "name": r.name} for r in conn.execute(select(a.c.id, a.c.name))}

    # -------------------------------------------------------------- facts

    def _facts(self, conn: Connection, day: date, client_id: str) -> Facts | None:
        """One client's facts; what the providers read once per evaluation day (snapshot dates, the
        activity window, the supervisor map) is shared between events for `SHARED_FACTS_SECONDS`."""
        now = time.monotonic()
        shared = self._shared.get(day)
        if shared is None or now - shared[0] > SHARED_FACTS_SECONDS:
            if len(self._shared) > 4:
                self._shared.clear()
            shared = self._shared[day] = (now, {})
        return facts_for(conn, self.cfg, day, client_id, shared[1])

    # -------------------------------------------------------------- calendar

    def _calendar(self, conn: Connection, day: date) -> None:
        lo, hi = day - timedelta(days=60), day + timedelta(days=45)
        if self._covered is None or day - timedelta(days=40) < self._covered[0] or day + timedelta(days=30) > self._covered[1]:
            trading_calendar.ensure(conn, self.cfg.calendar.exchange, lo, hi)
            self._covered = (lo, hi)

    def _nth_trading_day(self, conn: Connection, day: date, n: int) -> date:
        rows = [r[0] for r in conn.execute(
            select(DAY.c.day).where(DAY.c.exchange == self.cfg.calendar.exchange, DAY.c.is_open.is_(True), DAY.c.day > day)
            .order_by(DAY.c.day).limit(n))]
        if len(rows) < n:
            raise trading_calendar.CalendarGap(f"trading calendar ends before {n} trading days after {day}: run 'steward calendar sync'")
        return rows[-1]  # type: ignore[no-any-return]

    def window_end(self, conn: Connection, start: datetime, w: Window) -> datetime:
        """When a window opened at `start` closes (a deadline's due time)."""
        if w.delta is not None:
            return start + w.delta
        assert w.trading_days is not None
        local = start.astimezone(self.cfg.tz).date()
        day = self._nth_trading_day(conn, local, w.trading_days)
        return datetime.combine(day, self.cfg.events.session_close, self.cfg.tz)

    # -------------------------------------------------------------- events

    def _run_id(self, conn: Connection, day: date, opened: dict[date, int]) -> int:
        """The day's `events` run, opened in the batch's transaction when new (kept once committed)."""
        run_id = self._runs.get(day) or opened.get(day)
        if run_id is None:
            run_id = opened[day] = recording.start_run(conn, day, "events", self.rules.version)
        return run_id

    def process(self, p: store.Pending) -> Outcome | None:
        """Process one stored event; None when another worker already did. Raises what processing raised."""
        done = self.process_batch([p.seq], limit=1)
        return done[0][1] if done else None

    def process_batch(self, seqs: list[int] | None = None, after: int = 0,
                      limit: int = 200) -> list[tuple[store.Pending, Outcome]]:
        """Claim up to `limit` stored events (those in `seqs`, or the oldest after `after`) and process
        them in order in one transaction; returns what each did. Raises what processing raised, and
        then nothing of the batch is kept (the caller retries its events one by one).

        Fact rows, sequence marks and deadlines are buffered and written in bulk, flushed before
        anything reads the database, so every event sees exactly what it would see alone.
        """
        opened: dict[date, int] = {}
        try:
            with self.engine.begin() as conn:
                items = store.claim_batch(conn, seqs, after, limit)
                if not items:
                    return []
                w = _Writes(conn)
                armed = self._armed(conn, items)
                done = []
                for p in items:
                    day = schema.local_day(p.event, self.cfg.tz)
                    out = self._process(conn, p, day, self._run_id(conn, day, opened), w, armed)
                    done.append((p, out))
                w.flush()
                store.mark_many(conn, [(p.seq, "processed", out.live, out.note) for p, out in done], self.rules.version)
        except BaseException:
            self._covered = None  # a calendar extension may have been rolled back
            self._shared.clear()
            raise
        self._runs.update(opened)
        return done

    def _armed(self, conn: Connection, items: list[store.Pending]) -> set[tuple[str, str]]:
        """(rule, client) pairs of the batch's clients with an armed deadline a `cured_by` step could close."""
        if not self._cure_rules:
            return set()
        clients = sorted({p.event.client_id for p in items})
        return {(r[0], r[1]) for r in conn.execute(_ARMED, {"rules": self._cure_rules, "clients": clients})}

    def _process(self, conn: Connection, p: store.Pending, day: date, run_id: int, w: _Writes,
                 armed: set[tuple[str, str]]) -> Outcome:
        ev, out = p.event, Outcome()
        self._calendar(conn, day)
        row = store.fact_row(ev, self.cfg.tz)
        if row is not None:
            w.rows(row[0]).append(row[1])
        elif ev.type == "task_outcome":  # type: ignore[attr-defined] # reads and closes a task: not buffered
            w.flush()
            store.apply_facts(conn, ev, self.cfg.tz)
        matcher = self.matchers.get(ev.type)  # type: ignore[attr-defined]
        if matcher is None:
            return out
        values = schema.rule_values(ev, self.cfg.tz)
        client: Facts | None = None
        if self.needs_facts[ev.type]:  # type: ignore[attr-defined]
            w.flush()
            client = self._facts(conn, day, ev.client_id)
            if client is None:
                out.note = "unknown client (or opened after the event): no rule evaluated"
                return out
        hit = matcher.match({**(client or {}), **values})
        if client is None and any(k.endswith((":single", ":then")) for k in hit):
            w.flush()
            client = self._facts(conn, day, ev.client_id)  # facts are read only when something may fire
            if client is None:
                out.note = "unknown client (or opened after the event): nothing fired"
                return out
        merged = {**(client or {}), **values}
        fire: list[Facts] = []
        rules: list[EventRule] = []
        for key in sorted(hit, key=lambda k: ORDER.index(k.rsplit(":", 1)[1])):
            rule, step = self.steps[key]
            f = self._step(conn, p, rule, step, merged, values, out, w, armed)
            if f is not None:
                fire.append(f)
                rules.append(rule)
        if fire:
            w.flush()
            out.firings = self._record(conn, list(zip(rules, fire)), day, ev.at, run_id)
        return out

    def _step(self, conn: Connection, p: store.Pending, rule: EventRule, step: str, merged: Facts,
              values: dict[str, Any], out: Outcome, w: _Writes, armed: set[tuple[str, str]]) -> Facts | None:
        ev = p.event
        if step == "single":
            return merged
        if step == "first":
            w.marks.append({"rule_id": rule.id, "client_id": ev.client_id, "event_seq": p.seq,
                            "occurred_at": utc(ev.at), "fields": values})
            out.marks += 1
        elif step == "then":
            w.flush()
            first = self._first_in_window(conn, rule, ev.client_id, ev.at, p.seq)
            if first is not None:
                return {**merged, **{"first_" + k.removeprefix(schema.PREFIX): v for k, v in first.items()}}
        elif step == "start":
            assert rule.window is not None
            due = self.window_end(conn, ev.at, rule.window)
            w.deadlines.append({"rule_id": rule.id, "client_id": ev.client_id, "start_seq": p.seq,
                                "started_at": utc(ev.at), "due_at": utc(due), "state": "armed", "fields": values})
            armed.add((rule.id, ev.client_id))
            out.armed += 1
        elif step == "cured_by" and (rule.id, ev.client_id) in armed:  # else nothing is armed: no UPDATE to send
            w.flush()
            res = conn.execute(update(DEADLINE).where(
                DEADLINE.c.rule_id == rule.id, DEADLINE.c.client_id == ev.client_id, DEADLINE.c.state == "armed",
                DEADLINE.c.started_at <= utc(ev.at), DEADLINE.c.due_at >= utc(ev.at),
            ).values(state="cured", closed_at=utc(ev.at), closed_by_seq=p.seq))
            out.cured += int(res.rowcount or 0)
        return None

    def _first_in_window(self, conn: Connection, rule: EventRule, client_id: str, at: datetime,
                         seq: int) -> dict[str, Any] | None:
        """The latest first-step event of this client whose window still holds `at`."""
        w = rule.window
        assert w is not None
        back = w.delta if w.delta is not None else timedelta(days=7 * (w.trading_days or 0) // 5 + 30)
        rows = conn.execute(select(MARK.c.occurred_at, MARK.c.fields, MARK.c.event_seq).where(
            MARK.c.rule_id == rule.id, MARK.c.client_id == client_id,
            MARK.c.occurred_at >= utc(at - back), MARK.c.occurred_at <= utc(at), MARK.c.event_seq != seq,
        ).order_by(MARK.c.occurred_at.desc()))
        for r in rows:
            if at <= self.window_end(conn, store.aware(r.occurred_at), w):
                return dict(r.fields)
        return None

    # -------------------------------------------------------------- recording

    def _record(self, conn: Connection, fired: Iterable[tuple[EventRule, Facts]], day: date, now: datetime,
                run_id: int) -> list[dict[str, Any]]:
        """Cooldown and same-day dedup, policy stages, then the pipeline's recording path."""
        fired = sorted(fired, key=lambda p: -p[0].rule.spec.action.priority)
        cid = fired[0][1]["client_id"]
        last = recording.last_fired(conn, cid, cid, day)
        decisions = []
        for rule, facts in fired:
            if recording.within_cooldown(last.get((rule.id, cid)), day, rule.rule.spec.cooldown_delta):
                continue
            decisions.append(Decision(Match(rule.rule, facts)))
        if not decisions:
            return []
        ctx = StageContext(conn, self.cfg, day, cid, cid)
        ctx.cache.update(ruleset=self.rules.ruleset, advisors=self.advisors, now=now)
        apply_all(ctx, [decisions])
        return pipeline.record_decisions(conn, ctx, self.rules.ruleset, decisions, run_id, self.advisors)

    # -------------------------------------------------------------- deadlines

    def tick(self, now: datetime, limit: int = 500) -> list[Outcome]:
        """Fire the absence deadlines due at `now` (each in its own transaction)."""
        with self.engine.connect() as conn:
            due = list(conn.execute(select(DEADLINE.c.id, DEADLINE.c.due_at).where(
                DEADLINE.c.state == "armed", DEADLINE.c.due_at <= utc(now))
                .order_by(DEADLINE.c.due_at, DEADLINE.c.id).limit(limit)))
        out = []
        for r in due:
            day = store.aware(r.due_at).astimezone(self.cfg.tz).date()
            o = self._fire_deadline(r.id, now, day)
            if o is not None:
                out.append(o)
        return out

    def _fire_deadline(self, deadline_id: int, now: datetime, day: date) -> Outcome | None:
        opened: dict[date, int] = {}
        with self.engine.begin() as conn:
            out = self._fire_deadline_in(conn, deadline_id, now, day, opened)
        self._runs.update(opened)
        return out

    def _fire_deadline_in(self, conn: Connection, deadline_id: int, now: datetime, day: date,
                          opened: dict[date, int]) -> Outcome | None:
        res = conn.execute(update(DEADLINE).where(DEADLINE.c.id == deadline_id, DEADLINE.c.state == "armed")
                           .values(state="fired", closed_at=utc(now)))
        if not res.rowcount:
            return None
        d = conn.execute(select(DEADLINE).where(DEADLINE.c.id == deadline_id)).one()
        rule = self.rules.get(d.rule_id)
        out = Outcome()
        if rule is None or not rule.rule.spec.enabled:
            out.note = f"rule {d.rule_id} is not in this rule set"
            return out
        self._calendar(conn, day)
        client = self._facts(conn, day, d.client_id)
        if client is None:
            out.note = "unknown client"
            return out
        due = store.aware(d.due_at)
        facts = {**client, **dict(d.fields), "event_deadline": due.astimezone(self.cfg.tz).strftime("%Y-%m-%d %H:%M")}
        out.firings = self._record(conn, [(rule, facts)], day, due, self._run_id(conn, day, opened))
        return out

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
from engine.facts.base import Facts, facts_for, facts_of
from engine.pipeline.matching import Match
from engine.models import Advisor, Client, TradingDay
from engine.pipeline.policy import Decision, StageContext, stages

MARK = EventMark.__table__  # type: ignore[attr-defined]
DEADLINE = EventDeadline.__table__  # type: ignore[attr-defined]
DAY = TradingDay.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]


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


WAVE_SPAN = timedelta(seconds=5)
"""Longest event-time span of one wave (the firings of a batch recorded together): their firing and
outbox rows carry the wave's latest event time, at most this much after their own."""


@dataclass
class _Waiting:
    """An event whose firings wait for the wave: its rules with the values each adds to the facts."""

    out: Outcome
    client_id: str
    at: datetime
    fired: list[tuple[EventRule, dict[str, Any]]]
    client: Facts | None
    """The client's facts when the event's conditions already needed them, else None (computed by the wave)."""


@dataclass
class _Wave:
    """Firings of one batch waiting to be recorded together: one day and run, each client at most once."""

    items: list[_Waiting] = field(default_factory=list)
    clients: set[str] = field(default_factory=set)
    day: date | None = None
    run_id: int | None = None
    first_at: datetime | None = None

    def add(self, item: _Waiting, day: date, run_id: int) -> None:
        if not self.items:
            self.day, self.run_id, self.first_at = day, run_id, item.at
        self.items.append(item)
        self.clients.add(item.client_id)

    def reset(self) -> None:
        self.items, self.clients, self.day, self.run_id, self.first_at = [], set(), None, None, None


class _Known:
    """When the batch's clients opened (absent: unknown), read once, when an event first may fire."""

    def __init__(self, items: list[store.Pending]):
        self.ids = sorted({p.event.client_id for p in items})
        self.opened_on: dict[str, date] | None = None

    def opened(self, conn: Connection, client_id: str, day: date) -> bool:
        """Whether the client's facts on `day` exist (the test `facts_for` applies)."""
        if self.opened_on is None:
            self.opened_on = dict(conn.execute(select(CLIENT.c.id, CLIENT.c.opened_on).where(CLIENT.c.id.in_(self.ids))).all())
        on = self.opened_on.get(client_id)
        return on is not None and on <= day


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
        """One client's facts (the per-day values shared, see `_shared_values`)."""
        return facts_for(conn, self.cfg, day, client_id, self._shared_values(day))

    def _facts_of(self, conn: Connection, day: date, client_ids: list[str]) -> dict[str, Facts]:
        """Facts of several clients in one bulk computation (a wave's firing clients)."""
        return facts_of(conn, self.cfg, day, client_ids, self._shared_values(day))

    def _shared_values(self, day: date) -> dict[str, Any]:
        """What the providers read once per evaluation day (snapshot dates, the activity window, the
        supervisor map), shared between events for `SHARED_FACTS_SECONDS`."""
        now = time.monotonic()
        shared = self._shared.get(day)
        if shared is None or now - shared[0] > SHARED_FACTS_SECONDS:
            if len(self._shared) > 4:
                self._shared.clear()
            shared = self._shared[day] = (now, {})
        return shared[1]

    # -------------------------------------------------------------- calendar

    def _calendar(self, conn: Connection, day: date) -> None:
        lo, hi = day - timedelta(days=60), day + timedelta(days=45)
        if self._covered is None or day - timedelta(days=40) < self._covered[0] or day + timedelta(days=30) > self._covered[1]:
            trading_calendar.ensure(conn, self.cfg.calendar.exchange, lo, hi)
            self._covered = (lo, hi)

    def _nth_trading_day(self, conn: Connection, day: date, n: int) -> date:
        """The nth trading day after `day`; kept with the day's shared values (`SHARED_FACTS_SECONDS`),
        so deadlines and sequence windows of a batch read the calendar once per (day, n)."""
        shared = self._shared_values(day)
        key = f"_events_nth_trading_day_{n}"  # beside the fact providers' keys: prefixed
        if key not in shared:
            shared[key] = self._read_nth_trading_day(conn, day, n)
        return shared[key]  # type: ignore[no-any-return]

    def _read_nth_trading_day(self, conn: Connection, day: date, n: int) -> date:
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
                w, wave, known = _Writes(conn), _Wave(), _Known(items)
                armed = self._armed(conn, items)
                done = []
                for p in items:
                    day = schema.local_day(p.event, self.cfg.tz)
                    out = self._process(conn, p, day, self._run_id(conn, day, opened), w, armed, wave, known)
                    done.append((p, out))
                self._flush_wave(conn, wave, w)
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
                 armed: set[tuple[str, str]], wave: _Wave, known: _Known) -> Outcome:
        ev, out = p.event, Outcome()
        if ev.client_id in wave.clients:  # this event may change what the waiting firings would see
            self._flush_wave(conn, wave, w)
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
        # An unknown client (or one opened after the event) fires nothing and takes no other step either.
        # Facts are read later (by the wave); the wave finds out itself when only firing steps matched,
        # otherwise `known` (one query per batch) tells before a mark, deadline or cure is written.
        if client is None and any(k.endswith((":single", ":then")) for k in hit) \
                and any(k.endswith((":first", ":start", ":cured_by")) for k in hit) \
                and not known.opened(conn, ev.client_id, day):
            out.note = "unknown client (or opened after the event): nothing fired"
            return out
        fire: list[tuple[EventRule, dict[str, Any]]] = []
        for key in sorted(hit, key=lambda k: ORDER.index(k.rsplit(":", 1)[1])):
            rule, step = self.steps[key]
            f = self._step(conn, p, rule, step, values, out, w, armed)
            if f is not None:
                fire.append((rule, f))
        if fire:  # facts and recording for the batch's firing clients together (`_flush_wave`)
            if wave.first_at is not None and (wave.day != day or wave.run_id != run_id or ev.at - wave.first_at > WAVE_SPAN):
                self._flush_wave(conn, wave, w)
            wave.add(_Waiting(out, ev.client_id, ev.at, fire, client), day, run_id)
        return out

    def _step(self, conn: Connection, p: store.Pending, rule: EventRule, step: str,
              values: dict[str, Any], out: Outcome, w: _Writes, armed: set[tuple[str, str]]) -> dict[str, Any] | None:
        """Run one matched step; returns the values a firing adds to the client's facts, None when nothing fires."""
        ev = p.event
        if step == "single":
            return values
        if step == "first":
            w.marks.append({"rule_id": rule.id, "client_id": ev.client_id, "event_seq": p.seq,
                            "occurred_at": utc(ev.at), "fields": values})
            out.marks += 1
        elif step == "then":
            w.flush()
            first = self._first_in_window(conn, rule, ev.client_id, ev.at, p.seq)
            if first is not None:
                return {**values, **{"first_" + k.removeprefix(schema.PREFIX): v for k, v in first.items()}}
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

    def _flush_wave(self, conn: Connection, wave: _Wave, w: _Writes) -> None:
        """Facts, cooldown, policy stages and recording for the waiting firings of the batch, at once.

        One facts computation for all their clients, one cooldown query, one pass of the policy
        stages (prepared once, applied per client with that client's event time), one
        `record_decisions` (one firing insert, one outbox write, one audit append). A wave holds
        each client once, so every firing sees exactly what it would have seen alone.
        """
        if not wave.items:
            return
        w.flush()
        items, day, run_id = wave.items, wave.day, wave.run_id
        wave.reset()
        assert day is not None and run_id is not None
        ids = [it.client_id for it in items if it.client is None]
        facts = self._facts_of(conn, day, ids) if ids else {}
        last = recording.last_fired_of(conn, [it.client_id for it in items], day)
        groups: list[tuple[_Waiting, list[Decision]]] = []
        for it in items:
            client = it.client if it.client is not None else facts.get(it.client_id)
            if client is None:  # only firing steps matched (see `_process`): nothing else was written
                it.out.note = "unknown client (or opened after the event): nothing fired"
                continue
            decisions = []
            for rule, extra in sorted(it.fired, key=lambda p: -p[0].rule.spec.action.priority):
                if recording.within_cooldown(last.get((rule.id, it.client_id)), day, rule.rule.spec.cooldown_delta):
                    continue
                decisions.append(Decision(Match(rule.rule, {**client, **extra})))
            if decisions:
                groups.append((it, decisions))
        if groups:
            self._decide_and_record(conn, groups, day, run_id)

    def _decide_and_record(self, conn: Connection, groups: list[tuple[_Waiting, list[Decision]]], day: date,
                           run_id: int) -> None:
        ids = tuple(sorted({it.client_id for it, _ in groups}))
        ctx = StageContext(conn, self.cfg, day, ids[0], ids[-1], ids=ids if len(ids) > 1 else None)
        ctx.cache.update(ruleset=self.rules.ruleset, advisors=self.advisors)
        active = stages()
        for stage in active:
            stage.prepare(ctx)
        for it, decisions in groups:  # as policy.apply_all, with each event's own time for the contact window
            ctx.cache["now"] = it.at
            for stage in active:
                if any(d.live for d in decisions):
                    stage.apply(ctx, decisions)
        # Firing rows and outbox rows of the wave are stamped with its latest event time (at most
        # WAVE_SPAN after each event's own); the window decisions above used each event's time.
        ctx.cache["now"] = max(it.at for it, _ in groups)
        rows = pipeline.record_decisions(conn, ctx, self.rules.ruleset, [d for _, ds in groups for d in ds],
                                         run_id, self.advisors)
        i = 0
        for it, decisions in groups:
            it.out.firings = rows[i:i + len(decisions)]
            i += len(decisions)

    def _record(self, conn: Connection, rule: EventRule, client: Facts, day: date, now: datetime,
                run_id: int, out: Outcome) -> None:
        """One firing alone (a due deadline): the wave path with one waiting event."""
        wave = _Wave()
        wave.add(_Waiting(out, str(client["client_id"]), now, [(rule, {})], client), day, run_id)
        self._flush_wave(conn, wave, _Writes(conn))

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
        self._record(conn, rule, facts, day, due, self._run_id(conn, day, opened), out)
        return out

"""Event rule tests written as data: timed events in, firings (with their time and text) out.

A file `rules/events/tests/<rule_id>.yaml`:

    rule: withdrawal_then_transfer_out
    client: {locale: en}                 # columns of the test client (optional)
    cases:
      - name: transfer-out 3 trading days after a large withdrawal
        events:
          - {at: "2026-11-16 10:01", type: cash_movement, kind: withdrawal, amount: 200000}
          - {at: "2026-11-19 10:05", type: cash_movement, kind: transfer_out, amount: 50000}
        expect:
          - at: "2026-11-19 10:05"
            text: {en: ["withdrew", "200,000"], zh-CN: ["取出"]}
      - name: too late
        events: [...]
        until: "2026-12-01 16:00"        # run the clock (deadlines) up to here
        expect: []

Times are local (config timezone). Each case runs through the real engine (intake,
durable-rules, marks and deadlines, policy, rendering, recording) from a clean state:
its own copy of a freshly migrated scratch SQLite database and its own EventService,
so a case's verdict never depends on which cases or files ran before it (facts such
as the latest cash-balance day are read across all clients, and the processor caches
run ids and calendar coverage). The case's clock starts at its first event and only
moves forward: before each event it ticks to the event's time, so a deadline due
before it fires first; a firing's time is the event that caused it or the deadline it
met. Only firings of the file's rule are compared.

What cases share (`Bench`) cannot change while they run: the loaded rule set (frozen;
durable-rules rulesets registered by content hash), the migrated template database
file (read-only on disk, only ever read through SQLite's backup API) and one SQLAlchemy
engine whose connections are all closed when a case ends, so only its compiled SQL
carries over. Case databases skip fsync: they are thrown away.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, event, select

from engine import db as dbmod
from engine.audit import facts_store
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.errors import SourceErrors, rel
from engine.language.event_rules import EventRuleSet
from engine.language.event_schema import parse_event
from engine.events.service import EventService
from engine.pipeline.matching import Match
from engine.models import Advisor, CashBalance, Client
from engine.pipeline.run import render_firing
from engine.pipeline.ruletest import Result, parse_file
from engine.pipeline.recording import FIRING


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_M):
    at: datetime
    text: dict[str, list[str]] = Field(default_factory=dict)
    text_absent: dict[str, list[str]] = Field(default_factory=dict)


class Case(_M):
    name: str
    events: list[dict[str, Any]]
    until: datetime | None = None
    expect: list[Expect]


class TestFile(_M):
    rule: str
    client: dict[str, Any] = Field(default_factory=dict)
    """Columns of the test client's row (locale, opened_on, risk_level, ...)."""
    cash: float | None = None
    """Cash balance of the test client the day before its first event (gives market_value and segment)."""
    cases: list[Case]


def load_test_file(path: Path) -> TestFile:
    return parse_file(TestFile, path)[0]


def _local(dt: datetime, cfg: Config) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=cfg.tz)


def _template_db(path: Path) -> None:
    """A migrated database holding only the test advisor: what every case starts from."""
    eng = dbmod.make_engine(f"sqlite:///{path}")
    try:
        dbmod.upgrade(eng)
        with eng.begin() as c:
            c.execute(Advisor.__table__.insert(), [{"id": "A01", "name": "李明", "email": None,  # type: ignore[attr-defined]
                                                    "supervisor_id": "S01", "daily_capacity": 20}])
    finally:
        eng.dispose()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # a single file that reads leave untouched (WAL would add -shm)
    finally:
        conn.close()
    path.chmod(0o444)


def _client(eng: Engine, cfg: Config, cid: str, tf: TestFile, first: date) -> None:
    row = {"id": cid, "name": "王芳", "birth_date": date(1980, 5, 17), "locale": "zh-CN", "phone": None, "email": None,
           "opened_on": date(2020, 1, 1), "advisor_id": "A01", "risk_level": "C3", "lowest_category": False,
           "risk_assessed_on": first - timedelta(days=100)}
    row.update(tf.client)
    with eng.begin() as c:
        c.execute(Client.__table__.insert(), [row])  # type: ignore[attr-defined]
        if tf.cash is not None:
            c.execute(CashBalance.__table__.insert(), [  # type: ignore[attr-defined]
                {"as_of": first - timedelta(days=1), "client_id": cid, "amount": tf.cash}])
        trading_calendar.ensure(c, cfg.calendar.exchange, first - timedelta(days=90), first + timedelta(days=90))


def _when(row: Any, cfg: Config) -> datetime:
    d = row.facts.get("event_deadline")
    if d:
        return datetime.fromisoformat(d).replace(tzinfo=cfg.tz)
    return datetime.fromisoformat(f"{row.facts['event_day']}T{row.facts['event_time']}").replace(tzinfo=cfg.tz)


def _at(e: dict[str, Any], cfg: Config) -> datetime:
    return _local(datetime.fromisoformat(str(e["at"])), cfg)


def run_case(svc: EventService, cfg: Config, tf: TestFile, case: Case, cid: str) -> list[tuple[datetime, Any]]:
    """Play a case's events in time order on a fresh service; return (time, firing row) of the file's rule."""
    events = sorted(case.events, key=lambda e: _at(e, cfg))
    for i, e in enumerate(events):
        when = _at(e, cfg)
        svc.tick(when)
        body = {"id": f"{cid}-{i}", "client_id": cid, **e, "at": when.isoformat()}
        svc.post([parse_event(body, f"case {case.name!r}", None)])
        svc.drain()
    if case.until is not None:
        svc.tick(_local(case.until, cfg))
    with svc.engine.connect() as c:
        rows = list(c.execute(select(FIRING).where(FIRING.c.client_id == cid, FIRING.c.rule_id == tf.rule)
                              .order_by(FIRING.c.id)))
        # each row with its facts snapshot resolved (stored by reference since issue 16)
        fired = facts_store.with_facts(c, rows)
    return [(_when(r, cfg), r) for r in fired]


def _texts(rules: EventRuleSet, tf: TestFile, exp: Expect, row: Any) -> str | None:
    rule = rules.get(tf.rule)
    assert rule is not None
    for locale in sorted(set(exp.text) | set(exp.text_absent)):
        f = render_firing(rules.ruleset, Match(rule.rule, {**row.facts, "locale": locale}),
                          {"A01": {"id": "A01", "name": "李明"}}, row.as_of)
        if f.error:
            return f"[{locale}] render failed: {f.error}"
        text = f"{f.subject or ''}\n{f.message or ''}"
        missing = [p for p in exp.text.get(locale, []) if p not in text]
        present = [p for p in exp.text_absent.get(locale, []) if p in text]
        if missing or present:
            return f"[{locale}] {'missing ' + str(missing) if missing else 'must not contain ' + str(present)} in: {text.strip()!r}"
    return None


def check_case(rules: EventRuleSet, cfg: Config, tf: TestFile, case: Case, got: list[tuple[datetime, Any]]) -> str | None:
    want = [_local(e.at, cfg) for e in case.expect]
    times = [t for t, r in got if r.status in ("open", "pending")]
    if times != want:
        show = [t.strftime("%Y-%m-%d %H:%M") for t in times]
        blocked = [f"{t.strftime('%Y-%m-%d %H:%M')} {r.status} {r.reason}" for t, r in got if r.status not in ("open", "pending")]
        if blocked:
            show.append(f"blocked: {blocked}")
        return f"expected firings at {[t.strftime('%Y-%m-%d %H:%M') for t in want]}, got {show}"
    for exp, (_, row) in zip(case.expect, got):
        problem = _texts(rules, tf, exp, row)
        if problem:
            return problem
    return None


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    """Scratch data is thrown away: skip fsync (transactions and rollback work as before)."""
    dbapi_conn.execute("PRAGMA synchronous=OFF")


class Bench:
    """Runs cases one at a time, each from a clean state; see the module docstring.

    Build it once per run (`bench()`); `run_file` and `run_one` may then be called
    in any order and give the same verdicts.
    """

    def __init__(self, rules: EventRuleSet, cfg: Config, folder: Path):
        self.rules, self.cfg, self.folder = rules, cfg, folder
        self.template = folder / "template.db"
        _template_db(self.template)
        self._case: Path | None = None
        self.engine = dbmod.sqlite_engine_on(self._connect)
        """One engine for every case, so SQL compiles once. Its connections open the running
        case's own file and are all closed when the case ends, so nothing but compiled
        statements outlives a case."""
        event.listen(self.engine, "connect", _no_fsync)  # after the engine's own pragmas

    def _connect(self) -> sqlite3.Connection:
        if self._case is None:
            raise RuntimeError("the rule-test database is only open while a case runs (inside Bench.fresh())")
        return sqlite3.connect(self._case, timeout=30)

    @contextmanager
    def fresh(self) -> Iterator[EventService]:
        """A started EventService on a private copy of the template database, dropped afterwards."""
        if self._case is not None:
            raise RuntimeError("one case at a time: Bench.fresh() is already open")
        path = self.folder / f"case-{uuid.uuid4().hex}.db"
        src = sqlite3.connect(f"file:{self.template}?mode=ro", uri=True)
        dst = sqlite3.connect(path)
        try:
            dst.execute("PRAGMA synchronous=OFF")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=WAL")  # as the engine would on connect, minus its fsync
        finally:
            dst.close()
            src.close()
        self._case = path
        try:
            svc = EventService(self.engine, self.cfg, self.rules)
            svc.start()
            yield svc
        finally:
            left_open = self.engine.pool.checkedout()  # type: ignore[attr-defined]
            self.engine.dispose()  # closes every pooled connection to this case's file
            self._case = None
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                p.unlink(missing_ok=True)
        if left_open:
            raise RuntimeError(f"a rule-test case left {left_open} database connection(s) open")

    def close(self) -> None:
        self.engine.dispose()

    def run_one(self, path: Path, tf: TestFile, index: int) -> Result:
        """Case `index` of a loaded test file, alone."""
        case = tf.cases[index]
        if self.rules.get(tf.rule) is None:
            return Result(rel(path), tf.rule, case.name, False, f"no event rule {tf.rule!r}")
        events = sorted(_at(e, self.cfg) for e in case.events)
        if not events:
            return Result(rel(path), tf.rule, case.name, False, "a case needs at least one event (its clock starts there)")
        if case.until is not None and _local(case.until, self.cfg) < events[-1]:
            return Result(rel(path), tf.rule, case.name, False,
                          f"until {case.until:%Y-%m-%d %H:%M} is before the case's last event at "
                          f"{events[-1]:%Y-%m-%d %H:%M}: a case's clock only moves forward; set until later or drop it")
        cid = f"T{hashlib.sha1(rel(path).encode()).hexdigest()[:8]}{index:03d}"
        try:
            with self.fresh() as svc:
                _client(svc.engine, self.cfg, cid, tf, events[0].date())
                problem = check_case(self.rules, self.cfg, tf, case, run_case(svc, self.cfg, tf, case, cid))
        except SourceErrors as e:
            problem = "; ".join(str(p) for p in e.problems)
        return Result(rel(path), tf.rule, case.name, problem is None, problem or "")

    def run_file(self, path: Path) -> list[Result]:
        tf = load_test_file(path)
        if self.rules.get(tf.rule) is None:
            return [Result(rel(path), tf.rule, "-", False, f"no event rule {tf.rule!r}")]
        return [self.run_one(path, tf, i) for i in range(len(tf.cases))]


@contextmanager
def bench(rules: EventRuleSet, cfg: Config) -> Iterator[Bench]:
    """A Bench in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="steward-events-test-") as d:
        b = Bench(rules, cfg, Path(d))
        try:
            yield b
        finally:
            b.close()


def case_files(cfg: Config, rules_dir: Path | None = None) -> list[Path]:
    return sorted(((rules_dir or cfg.path(cfg.events.rules_dir)) / "tests").glob("*.yaml"))


def run_all(rules: EventRuleSet, cfg: Config, files: list[Path] | None = None) -> list[Result]:
    """Every case of every file (default: the rule folder's tests/*.yaml, sorted), each from a clean state."""
    with bench(rules, cfg) as b:
        return [r for p in (files if files is not None else case_files(cfg)) for r in b.run_file(p)]

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

Times are local (config timezone). Each case runs against its own client in a
scratch SQLite database through the real engine: intake, durable-rules, marks and
deadlines, policy, rendering, recording. Before each event the clock ticks to the
event's time, so a deadline due before it fires first; a firing's time is the event
that caused it or the deadline it met. Only firings of the file's rule are compared.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select

from engine import db as dbmod
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


def scratch_db(cfg: Config, folder: Path) -> Engine:
    eng = dbmod.make_engine(f"sqlite:///{folder / 'events-test.db'}")
    dbmod.upgrade(eng)
    with eng.begin() as c:
        c.execute(Advisor.__table__.insert(), [{"id": "A01", "name": "李明", "email": None,  # type: ignore[attr-defined]
                                                "supervisor_id": "S01", "daily_capacity": 20}])
    return eng


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


def run_case(svc: EventService, cfg: Config, tf: TestFile, case: Case, cid: str) -> list[tuple[datetime, Any]]:
    """Play a case's events in time order; return (time, firing row) of the file's rule."""
    events = sorted(case.events, key=lambda e: _local(datetime.fromisoformat(str(e["at"])), cfg))
    for i, e in enumerate(events):
        when = _local(datetime.fromisoformat(str(e["at"])), cfg)
        svc.tick(when)
        body = {"id": f"{cid}-{i}", "client_id": cid, **e, "at": when.isoformat()}
        svc.post([parse_event(body, f"case {case.name!r}", None)])
        svc.drain()
    if case.until is not None:
        svc.tick(_local(case.until, cfg))
    with svc.engine.connect() as c:
        rows = list(c.execute(select(FIRING).where(FIRING.c.client_id == cid, FIRING.c.rule_id == tf.rule)
                              .order_by(FIRING.c.id)))
    return [(_when(r, cfg), r) for r in rows]


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


def run_file(rules: EventRuleSet, cfg: Config, path: Path, eng: Engine, svc: EventService) -> list[Result]:
    tf = load_test_file(path)
    if rules.get(tf.rule) is None:
        return [Result(rel(path), tf.rule, "-", False, f"no event rule {tf.rule!r}")]
    out = []
    for i, case in enumerate(tf.cases):
        cid = f"T{hashlib.sha1(rel(path).encode()).hexdigest()[:8]}{i:03d}"
        first = min(_local(datetime.fromisoformat(str(e["at"])), cfg) for e in case.events).date()
        _client(eng, cfg, cid, tf, first)
        try:
            problem = check_case(rules, cfg, tf, case, run_case(svc, cfg, tf, case, cid))
        except SourceErrors as e:
            problem = "; ".join(str(p) for p in e.problems)
        out.append(Result(rel(path), tf.rule, case.name, problem is None, problem or ""))
    return out


def case_files(cfg: Config, rules_dir: Path | None = None) -> list[Path]:
    return sorted(((rules_dir or cfg.path(cfg.events.rules_dir)) / "tests").glob("*.yaml"))


def run_all(rules: EventRuleSet, cfg: Config, files: list[Path] | None = None) -> list[Result]:
    """Every case of every file, in one scratch database (each case has its own client)."""
    with tempfile.TemporaryDirectory(prefix="steward-events-test-") as d:
        eng = scratch_db(cfg, Path(d))
        try:
            svc = EventService(eng, cfg, rules)
            svc.start()
            return [r for p in (files if files is not None else case_files(cfg)) for r in run_file(rules, cfg, p, eng, svc)]
        finally:
            eng.dispose()

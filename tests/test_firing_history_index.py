"""The cooldown and same-day dedup of a batch read its own clients' firing history only, however
long the history of the whole book (migration 0024_lead), so a night's cost per client stays flat."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from engine.pipeline import recording

DAY = date(2026, 11, 20)


def _history(eng: Engine, clients: int, days: int) -> None:
    """Firings of `clients` clients on each of `days` past days (a book's accumulated history), with
    messages of a realistic length, written on the server side."""
    with eng.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO firing (run_id, as_of, client_id, rule_id, rule_hash, rule_class, action_type, channel, "
            "priority, locale, message, status, policy, facts_sha256, created_at) "
            "SELECT 1, DATE '2026-11-20' - d, 'C' || lpad(c::text, 6, '0'), 'r1', 'h', 'service', 'message', 'sms', "
            "50, 'zh-CN', repeat('x', 400), 'pending', '[]', 'f', TIMESTAMPTZ '2026-11-19 18:00+00' "
            "FROM generate_series(1, %(days)s) d, generate_series(0, %(clients)s - 1) c",
            {"days": days, "clients": clients})


def _largest_scan(plan: dict[str, Any]) -> int:
    """The most rows any node of an EXPLAIN ANALYZE plan produced."""
    return max([int(plan.get("Actual Rows", 0))] + [_largest_scan(p) for p in plan.get("Plans", [])])


@pytest.mark.postgres
def test_a_batch_reads_its_own_clients_history_not_the_whole_books(pg_engine: Engine) -> None:
    with pg_engine.begin() as c:  # statistics taken while the table was empty (a new book, as on a first night)
        c.exec_driver_sql("ANALYZE firing")
    _history(pg_engine, clients=3000, days=20)  # then 60,000 firing rows
    lo, hi = "C000100", "C000109"  # a batch of 10 clients: 200 of those rows
    got = None
    with pg_engine.connect() as c:
        got = recording.last_fired(c, lo, hi, DAY)
        sql = ("EXPLAIN (ANALYZE, FORMAT JSON) SELECT rule_id, client_id, max(as_of) FROM firing "
               "WHERE client_id >= %(lo)s AND client_id <= %(hi)s AND as_of <= %(d)s GROUP BY rule_id, client_id")
        raw = c.connection.driver_connection
        plan = raw.execute(sql, {"lo": lo, "hi": hi, "d": DAY}).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    assert len(got) == 10 and all(v[0] == DAY - timedelta(days=1) for v in got.values())
    assert _largest_scan(plan[0]["Plan"]) <= 200  # with (client_id, rule_id) alone: 60,000 (the as_of index)


def test_the_history_index_is_led_by_client_and_holds_the_day(db: Engine) -> None:
    from sqlalchemy import inspect

    idx = {i["name"]: i["column_names"] for i in inspect(db).get_indexes("firing")}
    assert idx["ix_firing_client_rule_day"] == ["client_id", "rule_id", "as_of"]
    assert "ix_firing_client_rule" not in idx

"""A tiny hand-made book whose facts are known exactly (shared by tests)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from engine import clock
from engine.facts import trading_calendar
from engine.models import (
    Advisor, CashBalance, CashMovement, Client, Contact, Holding, MarginSnapshot, Trade,
)

AS_OF = date(2026, 11, 20)  # a Friday, a trading day on XSHG


def _t(m: Any) -> Any:
    return m.__table__


def client(cid: str, opened: date, **kw: Any) -> dict[str, Any]:
    row = {"id": cid, "name": f"客户{cid}", "birth_date": date(1980, 5, 17), "locale": "zh-CN", "phone": None,
           "email": None, "opened_on": opened, "advisor_id": "A01", "risk_level": "C3", "lowest_category": False,
           "risk_assessed_on": date(2025, 1, 1)}
    row.update(kw)
    return row


def build(eng: Engine) -> None:
    d = AS_OF
    with eng.begin() as c:
        trading_calendar.ensure(c, "XSHG", d - timedelta(days=120), d)
        c.execute(_t(Advisor).insert(), [{"id": "A01", "name": "李明", "email": None, "supervisor_id": None, "daily_capacity": 20}])
        c.execute(_t(Client).insert(), [
            client("C001", d - timedelta(days=10)),                          # new, no callback
            client("C002", date(2020, 1, 1)),                                # dormant with assets
            client("C003", date(2019, 3, 1), locale="en", birth_date=None),  # concentrated, active
            client("C004", d - timedelta(days=12)),                          # new, callback done
            client("C005", d + timedelta(days=3)),                           # opens in the future: not evaluated
        ])
        c.execute(_t(Holding).insert(), [
            {"as_of": d, "client_id": "C002", "symbol": "601398", "quantity": 10000, "cost": 6.0, "close_price": 5.0},
            {"as_of": d, "client_id": "C002", "symbol": "600036", "quantity": 1000, "cost": 30.0, "close_price": 40.0},
            {"as_of": d, "client_id": "C003", "symbol": "600519", "quantity": 200, "cost": 1500.0, "close_price": 1500.0},
            {"as_of": d, "client_id": "C003", "symbol": "000001", "quantity": 10000, "cost": 10.0, "close_price": 10.0},
            # an older snapshot must be ignored
            {"as_of": d - timedelta(days=1), "client_id": "C001", "symbol": "000001", "quantity": 1, "cost": 1, "close_price": 1},
        ])
        c.execute(_t(CashBalance).insert(), [
            {"as_of": d, "client_id": "C002", "amount": 10000.0},
            {"as_of": d, "client_id": "C003", "amount": 100000.0},
        ])
        c.execute(_t(Trade).insert(), [
            {"id": "T1", "client_id": "C002", "trade_date": d - timedelta(days=100), "symbol": "601398", "side": "buy", "quantity": 10000, "price": 6.0, "amount": 60000.0},
            {"id": "T2", "client_id": "C003", "trade_date": d - timedelta(days=2), "symbol": "600519", "side": "buy", "quantity": 100, "price": 1500.0, "amount": 150000.0},
            {"id": "T3", "client_id": "C003", "trade_date": d, "symbol": "000001", "side": "sell", "quantity": 1000, "price": 10.0, "amount": 10000.0},
            {"id": "T4", "client_id": "C003", "trade_date": d - timedelta(days=60), "symbol": "000001", "side": "buy", "quantity": 1, "price": 1.0, "amount": 999.0},
        ])
        c.execute(_t(CashMovement).insert(), [
            {"id": "M1", "client_id": "C003", "moved_on": d - timedelta(days=3), "kind": "deposit", "amount": 50000.0},
            {"id": "M2", "client_id": "C003", "moved_on": d - timedelta(days=1), "kind": "withdrawal", "amount": 20000.0},
            {"id": "M3", "client_id": "C003", "moved_on": d - timedelta(days=1), "kind": "transfer_out", "amount": 5000.0},
        ])
        c.execute(_t(MarginSnapshot).insert(), [
            {"as_of": d, "client_id": "C003", "maintenance_ratio": 1.42, "contract_expiry": d + timedelta(days=25)},
        ])
        c.execute(_t(Contact).insert(), [
            {"id": "K1", "client_id": "C004", "contacted_on": d - timedelta(days=5), "kind": "callback", "outcome": "reached", "by_user": "u1"},
            {"id": "K2", "client_id": "C002", "contacted_on": d - timedelta(days=40), "kind": "visit", "outcome": None, "by_user": "u1"},
        ])


def now() -> datetime:
    """The test clock's now (tests/conftest.py installs it)."""
    return clock.now()

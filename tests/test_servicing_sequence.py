"""The dormant activation sequence read back from firings and imported contacts; account anniversaries."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, update

from engine.config.base import Config
from engine.facts.base import iter_batches
from engine.language.loading import load_ruleset
from engine.models import Client, Contact, Firing, Trade
from engine.pipeline.run import run
from tests import book

D = book.AS_OF


def _facts(eng: Engine, cfg: Config, as_of: date) -> dict[str, dict[str, Any]]:
    with eng.connect() as c:
        return {f["client_id"]: f for b in iter_batches(c, cfg, as_of, batch_size=10) for f in b}


def _fired(eng: Engine, cfg: Config, as_of: date) -> set[str]:
    s = run(eng, cfg, load_ruleset(cfg), as_of)
    return {r for r, n in s.per_rule.items() if n}


def _sent(eng: Engine) -> None:
    """The dispatcher sent what was pending."""
    with eng.begin() as c:
        c.execute(update(Firing.__table__).where(Firing.__table__.c.status == "pending")  # type: ignore[attr-defined]
                  .values(status="sent"))


def test_sequence_steps_follow_each_other_and_a_trade_stops_them(db: Engine, full_cfg: Config) -> None:
    book.build(db)  # C002: dormant with 100,000, last trade 100 days ago
    assert _facts(db, full_cfg, D)["C002"]["activation_step"] == 0
    assert "dormant_activation" in _fired(db, full_cfg, D)
    assert _facts(db, full_cfg, D + timedelta(days=14))["C002"]["activation_step"] == 0  # not sent yet
    _sent(db)
    later = D + timedelta(days=14)
    f = _facts(db, full_cfg, later)["C002"]
    assert (f["activation_step"], f["days_since_activation_step"]) == (1, 14)
    fired = _fired(db, full_cfg, later)
    assert "dormant_research_share" in fired and "dormant_activation" not in fired
    _sent(db)
    assert _facts(db, full_cfg, later + timedelta(days=1))["C002"]["activation_step"] == 2
    with db.begin() as c:  # the client trades: the count restarts from the trade
        c.execute(Trade.__table__.insert(), [{  # type: ignore[attr-defined]
            "id": "TS", "client_id": "C002", "trade_date": later + timedelta(days=2), "symbol": "601398",
            "side": "buy", "quantity": 100, "price": 5.0, "amount": 500.0}])
    f = _facts(db, full_cfg, later + timedelta(days=20))["C002"]
    assert (f["activation_step"], f["days_since_activation_step"]) == (0, None)


def test_a_suppressed_step_does_not_count_and_an_imported_one_does(db: Engine, full_cfg: Config) -> None:
    book.build(db)
    _fired(db, full_cfg, D)
    with db.begin() as c:
        c.execute(update(Firing.__table__).where(  # type: ignore[attr-defined]
            Firing.__table__.c.rule_id == "dormant_activation").values(status="suppressed"))  # type: ignore[attr-defined]
    _sent(db)
    assert _facts(db, full_cfg, D + timedelta(days=14))["C002"]["activation_step"] == 0
    with db.begin() as c:
        c.execute(Contact.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": "CRM1", "client_id": "C002", "contacted_on": D - timedelta(days=30), "kind": "dormant_research_share",
             "outcome": "sent", "by_user": "A01"},
            # before the latest trade (100 days ago): an earlier idle spell, not counted
            {"id": "CRM0", "client_id": "C002", "contacted_on": D - timedelta(days=200), "kind": "dormant_phone_visit",
             "outcome": "reached", "by_user": "A01"}])
    f = _facts(db, full_cfg, D)["C002"]
    assert (f["activation_step"], f["days_since_activation_step"]) == (2, 30)


def test_account_anniversary(db: Engine, cfg: Config) -> None:
    book.build(db)
    with db.begin() as c:
        c.execute(update(Client.__table__).where(Client.__table__.c.id == "C002")  # type: ignore[attr-defined]
                  .values(opened_on=date(2020, 11, 22)))  # a Sunday anniversary: marked on Friday the 20th
    f = _facts(db, cfg, D)
    assert f["C002"]["anniversary_due"] is True and f["C002"]["account_years"] == 5
    assert f["C003"]["anniversary_due"] is False and f["C003"]["account_years"] == 7
    assert f["C004"]["anniversary_due"] is False  # opened 12 days ago: no anniversary yet
    assert _facts(db, cfg, D + timedelta(days=3))["C002"]["anniversary_due"] is False


def test_a_step_counts_once_sent(db: Engine, full_cfg: Config) -> None:
    book.build(db)
    _fired(db, full_cfg, D)  # pending: waiting in the outbox (or held overnight) is not reaching the client
    assert _facts(db, full_cfg, D + timedelta(days=1))["C002"]["activation_step"] == 0
    _sent(db)
    assert _facts(db, full_cfg, D + timedelta(days=1))["C002"]["activation_step"] == 1

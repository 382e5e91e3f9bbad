"""`steward report branch`: per-rule and per-advisor counts, callbacks, outcomes, weekly KPIs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from engine.supervision import report
from engine.config.base import Config
from engine.models import Contact, Trade
from tests import book
from tests.audit_helpers import run_book
from tests.test_cli import steward

D = book.AS_OF


def test_branch_report_on_the_tiny_book(db: Engine, cfg: Config) -> None:
    rs, _ = run_book(db, cfg)
    with db.begin() as c:
        c.execute(text("UPDATE firing SET status = 'sent' WHERE rule_id = 'dormant_activation'"))
        c.execute(text("UPDATE firing SET status = 'suppressed' WHERE rule_id = 'concentrated_position' AND client_id = 'C003'"))
        c.execute(text("UPDATE firing SET status = 'done' WHERE rule_id = 'new_account_callback'"))
        c.execute(Contact.__table__.insert().values(id="K9", client_id="C001", contacted_on=D + timedelta(days=2),  # type: ignore[attr-defined]
                                                    kind="callback", outcome="reached", by_user="A01"))
        c.execute(Trade.__table__.insert().values(id="T9", client_id="C002", trade_date=D + timedelta(days=5), symbol="600036",  # type: ignore[attr-defined]
                                                  side="buy", quantity=100, price=40.0, amount=4000.0))
    with db.connect() as c:
        rep = report.build(c, cfg, D - timedelta(days=13), D, report.outcome_kinds(rs.rules))
    assert rep.per_rule["dormant_activation"]["sent"] == 1 and rep.per_rule["concentrated_position"]["suppressed"] == 1
    assert rep.per_advisor["A01"]["fired"] == sum(v["fired"] for v in rep.per_rule.values())
    assert rep.tasks >= 1 and rep.tasks_done == rep.per_rule["new_account_callback"]["fired"]
    assert 2 in rep.callback_days and rep.callback_median_days is not None
    assert rep.outcomes["activation"] == {"firings": 1, "success": 1}
    kpi = {(k["week"], k["segment"]): k for k in rep.kpis}
    last = kpi[(book.date(2026, 11, 16), "maintenance")]
    assert last["retained_assets"] == 500000 and last["new_assets"] == 50000
    assert kpi[(book.date(2026, 11, 16), "dormant")]["retained_assets"] == 100000
    assert kpi[(book.date(2026, 11, 2), "dormant")]["new_clients"] == 1  # C004 opened 2026-11-08
    assert kpi[(book.date(2026, 11, 9), "dormant")]["new_clients"] == 1  # C001 opened 2026-11-10


def test_churn_rate_counts_clients_whose_assets_went(sqlite_engine: Engine, cfg: Config) -> None:
    book.build(sqlite_engine)
    with sqlite_engine.begin() as c:  # C002 sold everything and moved the cash out in the week after
        c.execute(text("INSERT INTO cash_balance (as_of, client_id, amount) VALUES ('2026-11-27', 'C002', 0), ('2026-11-27', 'C003', 1)"))
        c.execute(text("INSERT INTO holding (as_of, client_id, symbol, quantity, cost, close_price) "
                       "VALUES ('2026-11-27', 'C003', '600519', 200, 1500, 1500)"))
    with sqlite_engine.connect() as c:
        rep = report.build(c, cfg, D + timedelta(days=3), D + timedelta(days=7), {})
    rows = {k["segment"]: k for k in rep.kpis if k["week"] == book.date(2026, 11, 23)}
    # churn counts by the segment before the week (C002 was dormant with 100,000), assets by the segment after
    assert rows["dormant"]["churn_rate"] == 1.0 and rows["maintenance"]["churn_rate"] == 0.0
    assert rows["dead"]["retained_assets"] == 0 and rows["dead"]["churn_rate"] is None


def test_report_command(sqlite_engine: Engine, cfg: Config) -> None:
    run_book(sqlite_engine, cfg)
    url = str(sqlite_engine.url)
    r = steward("--database", url, "report", "branch", "--to", D.isoformat())
    assert r.returncode == 0, r.stderr
    assert "Per rule" in r.stdout and "dormant_activation" in r.stdout and "KPIs by week and segment" in r.stdout
    r = steward("--database", url, "report", "branch", "--from", "2026-12-01", "--to", D.isoformat())
    assert r.returncode == 2 and "--from 2026-12-01 is after --to 2026-11-20" in r.stderr

"""Facts of the shape of a portfolio and margin distances: stakes, tiny positions, cash share, 1/(1+n)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from engine.config.base import Config
from engine.facts import positions
from engine.facts.base import iter_batches
from engine.facts.tables import Product
from engine.models import Holding, MarginSnapshot
from tests import book

D = book.AS_OF


def _facts(eng: Engine, cfg: Config) -> dict[str, dict[str, Any]]:
    with eng.connect() as c:
        return {f["client_id"]: f for b in iter_batches(c, cfg, D, batch_size=10) for f in b}


def test_stake_small_positions_and_cash_share(db: Engine, cfg: Config) -> None:
    book.build(db)
    with db.begin() as c:
        c.execute(Product.__table__.insert(), [  # type: ignore[attr-defined]
            {"symbol": "600519", "name": "贵州茅台", "risk": "R3", "type": "stock", "shares_outstanding": 4_000.0},
            {"symbol": "000001", "name": "平安银行", "risk": "R3", "type": "stock", "shares_outstanding": None}])
        c.execute(Holding.__table__.insert(), [  # type: ignore[attr-defined]
            {"as_of": D, "client_id": "C003", "symbol": f"T{k:02d}", "quantity": 10, "cost": 1.0, "close_price": 100.0}
            for k in range(11)])  # eleven positions of 1,000 each in an account of about 511,000
    f = _facts(db, cfg)
    c3, c2 = f["C003"], f["C002"]
    assert (c3["max_stake"], c3["stake_symbol"]) == (200 / 4_000, "600519")
    assert c2["max_stake"] is None  # no share count known for its holdings
    assert c3["small_positions"] == 11 and c3["holdings_count"] == 13
    assert c3["cash_share"] == pytest.approx(100_000 / c3["market_value"])
    assert c2["cash_share"] == pytest.approx(10_000 / 100_000)
    assert f["C001"]["cash_share"] is None  # no assets


@pytest.mark.parametrize(("ratio", "n", "wipeout", "closeout"), [
    (1.42, 1 / 0.42, 0.42 / 1.42, 1 - 1.3 / 1.42),  # 1:2.38 financing: a 29.6% fall wipes out own funds
    (2.0, 1.0, 0.5, 0.35),  # 1:1, the seed's example: a 50% fall wipes out own funds
    (1.25, 4.0, 0.2, 0.0),  # already below the close-out line
])
def test_margin_distances_follow_one_over_one_plus_n(db: Engine, cfg: Config, ratio: float, n: float,
                                                      wipeout: float, closeout: float) -> None:
    book.build(db)
    with db.begin() as c:
        c.execute(MarginSnapshot.__table__.delete())  # type: ignore[attr-defined]
        c.execute(MarginSnapshot.__table__.insert(), [  # type: ignore[attr-defined]
            {"as_of": D, "client_id": "C003", "maintenance_ratio": ratio, "contract_expiry": D + timedelta(days=90)}])
    f = _facts(db, cfg)["C003"]
    assert f["margin_financing_n"] == pytest.approx(n)
    assert f["margin_wipeout_drop"] == pytest.approx(wipeout) == pytest.approx(1 / (1 + n))
    assert f["margin_closeout_drop"] == pytest.approx(closeout)
    assert positions.CLOSEOUT_LINE == 1.3
    assert _facts(db, cfg)["C002"]["margin_wipeout_drop"] is None  # no margin account

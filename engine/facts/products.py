"""Product master: which symbols are which product, how risky (R1..R5), in which risk bucket."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.facts.tables import Product
from engine.config.servicing import RiskConfig

PRODUCT = Product.__table__  # type: ignore[attr-defined]


def risks_in_bucket(cfg: RiskConfig, bucket: str) -> list[str]:
    """Product risk levels counted as `bucket` (low, medium or high) in the allocation facts."""
    return sorted(r for r, b in cfg.product_buckets.items() if b == bucket)


def upsert(conn: Connection, rows: list[dict[str, str]]) -> int:
    """Replace the given products (symbol, name, risk, type); returns how many were written."""
    symbols = [r["symbol"] for r in rows]
    for i in range(0, len(symbols), 500):
        conn.execute(PRODUCT.delete().where(PRODUCT.c.symbol.in_(symbols[i:i + 500])))
    if rows:
        conn.execute(PRODUCT.insert(), rows)
    return len(rows)


def risk_of(conn: Connection, symbol: str) -> str | None:
    return conn.execute(select(PRODUCT.c.risk).where(PRODUCT.c.symbol == symbol)).scalar()

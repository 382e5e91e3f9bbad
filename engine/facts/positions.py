"""Fact providers: stakes in listed companies, the shape of a portfolio, margin distances, margin eligibility.

Each provider computes a whole batch with a few SQL queries (engine.facts.base rules).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.facts.base import BOOL, NUMBER, STRING, FactContext, FactField, Facts, Params, ProviderSet, holding_rows
from engine.facts.tables import ClientProfile

CP = ClientProfile.__table__  # type: ignore[attr-defined]
CLOSEOUT_LINE = 1.3
"""The close-out line of the maintenance ratio (130%), as in margin_closeout_line."""
SMALL_POSITION = 0.02
"""A position under 2% of the account counts as a small position (over-diversification)."""

PROVIDERS = ProviderSet()
"""The providers this module declares; engine.composition registers them."""


@PROVIDERS.provider(
    "positions",
    FactField("max_stake", NUMBER, "holdings", "Largest share of a listed company's total shares held (quantity / shares_outstanding in the product master), as a fraction (0.048 = 4.8%); null when no holding has a known share count."),
    FactField("stake_symbol", STRING, "holdings", "Symbol of the holding with max_stake."),
    FactField("small_positions", NUMBER, "holdings", "Number of positions each under 2% of market_value (many tiny holdings: over-diversified)."),
    FactField("cash_share", NUMBER, "assets", "cash / market_value (0.6 = 60% in cash: cash drag); null when market_value is 0 or no cash balance is recorded."),
)
def _positions(ctx: FactContext, batch: dict[str, Facts]) -> None:
    stakes: dict[str, tuple[float, str]] = {}
    values: dict[str, list[float]] = {}
    for cid, symbol, qty, _close, value, _cost, _risk, shares in holding_rows(ctx):
        values.setdefault(cid, []).append(float(value or 0))
        if shares:
            stake = float(qty) / float(shares)
            if cid not in stakes or (stake, symbol) > stakes[cid]:
                stakes[cid] = (stake, symbol)
    for cid, f in batch.items():
        mv = f.get("market_value") or 0.0
        s = stakes.get(cid)
        f["max_stake"], f["stake_symbol"] = (s[0], s[1]) if s else (None, None)
        f["small_positions"] = sum(1 for v in values.get(cid, []) if mv and v < SMALL_POSITION * mv)
        cash = f.get("cash")
        f["cash_share"] = cash / mv if mv and cash is not None else None


@PROVIDERS.provider(
    "margin_distance",
    FactField("margin_financing_n", NUMBER, "margin", "n of the financing ratio 1:n (debt per unit of the client's own funds), from the maintenance ratio r: n = 1 / (r - 1); null without a margin account or when r <= 1."),
    FactField("margin_wipeout_drop", NUMBER, "margin", "1 / (1 + n): the fall in the collateral's value that would wipe out the client's own funds, as a fraction (0.23 = 23%)."),
    FactField("margin_closeout_drop", NUMBER, "margin", "Fall in the collateral's value that would bring the maintenance ratio to the 130% close-out line: 1 - 1.3 / r; 0 when already at or below it."),
)
def _margin_distance(ctx: FactContext, batch: dict[str, Facts]) -> None:
    for f in batch.values():
        r = f.get("maintenance_ratio")
        if r is None or r <= 1:
            f["margin_financing_n"] = f["margin_wipeout_drop"] = None
            f["margin_closeout_drop"] = 0.0 if r is not None else None
            continue
        n = 1 / (r - 1)
        f["margin_financing_n"], f["margin_wipeout_drop"] = n, 1 / (1 + n)
        f["margin_closeout_drop"] = max(0.0, 1 - CLOSEOUT_LINE / r)


@PROVIDERS.provider(
    "margin_eligibility",
    FactField("third_party_custody", BOOL, "profile", "True when the client's trading funds are under third-party bank custody (client profile); null when not recorded."),
    FactField("experience_years", NUMBER, "profile", "Years of securities investment experience (client profile); null when not recorded."),
    FactField("serious_default", BOOL, "profile", "True when a serious default is on record (client profile); null when not recorded."),
)
def _margin_eligibility(ctx: FactContext, batch: dict[str, Facts]) -> None:
    rows = {r[0]: r[1:] for r in ctx.run(_margin_profiles)}
    for cid, f in batch.items():
        custody, years, default = rows.get(cid, (None, None, None))
        f["third_party_custody"] = None if custody is None else bool(custody)
        f["experience_years"] = None if years is None else float(years)
        f["serious_default"] = None if default is None else bool(default)


def _margin_profiles(p: Params) -> Any:
    return select(CP.c.client_id, CP.c.third_party_custody, CP.c.experience_years, CP.c.serious_default).where(
        p.in_batch(CP.c.client_id))

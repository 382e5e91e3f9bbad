"""Fact providers: product risk of holdings, price moves, trades off the market, outflows, profile.

Each provider computes a whole batch with a few SQL queries (engine.facts.base rules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, literal, select

from engine.facts.base import BOOL, NUMBER, STRING, FactContext, FactField, Facts, Params, ProviderSet, holding_rows
from engine.models import Advisor, CashBalance, CashMovement, Holding, Trade
from engine.facts.tables import AmlReview, ClientProfile, Product
from engine.facts.products import risks_in_bucket

H, P, T, M = (m.__table__ for m in (Holding, Product, Trade, CashMovement))  # type: ignore[union-attr]
CB, CP, AML, ADV = (m.__table__ for m in (CashBalance, ClientProfile, AmlReview, Advisor))  # type: ignore[union-attr]

PROVIDERS = ProviderSet()
"""The providers this module declares; engine.composition registers them."""


def _day(ctx: FactContext, key: str, query: Callable[[], Any]) -> Any:
    """A per-run value: the query is built and run only on the run's first batch."""
    if key not in ctx.extra:
        ctx.extra[key] = ctx.conn.execute(query()).scalar()
    return ctx.extra[key]


@PROVIDERS.provider(
    "holdings_risk",
    FactField("top_product_risk", STRING, "holdings", "Product risk R1..R5 of the largest position (product master); null when unknown."),
    FactField("top_move_1d", NUMBER, "holdings", "Close-to-close change of the largest position since the previous holdings snapshot, as a fraction (-0.08 = down 8%); null without a previous close."),
    FactField("high_risk_share", NUMBER, "holdings", "Holdings in high-risk products (servicing.risk.product_buckets) / market_value; null when market_value is 0."),
    FactField("days_since_high_risk_buy", NUMBER, "holdings", "Days since the latest buy of a high-risk product; null if none."),
)
def _holdings_risk(ctx: FactContext, batch: dict[str, Facts]) -> None:
    hday = _day(ctx, "holding_day", lambda: select(func.max(H.c.as_of)).where(H.c.as_of <= ctx.as_of))
    high = risks_in_bucket(ctx.cfg.servicing.risk, "high")
    # Only the largest position's close and risk are asked for: kept per client, not per position.
    tops = {cid: f.get("top_symbol") for cid, f in batch.items()}
    prev: dict[str, float] = {}
    if hday is not None:
        pday = _day(ctx, "holding_prev_day", lambda: select(func.max(H.c.as_of)).where(H.c.as_of < hday))
        if pday is not None:
            prev = {cid: float(close) for cid, symbol, close in ctx.run(_closes_on, day=pday) if tops.get(cid) == symbol}
    high_value: dict[str, float] = {}
    info: dict[str, tuple[float, str | None]] = {}
    for cid, symbol, _qty, close, value, _cost, risk, _shares in holding_rows(ctx):
        if tops.get(cid) == symbol:
            info[cid] = (float(close), risk)
        if risk in high:
            high_value[cid] = high_value.get(cid, 0.0) + float(value or 0)
    buys = {cid: day for cid, day in ctx.run(_high_risk_buys, risks=list(high))}
    for cid, f in batch.items():
        top = info.get(cid)
        before = prev.get(cid)
        mv = f.get("market_value") or 0.0
        f["top_product_risk"] = top[1] if top else None
        f["top_move_1d"] = top[0] / before - 1 if top and before else None
        f["high_risk_share"] = high_value.get(cid, 0.0) / mv if mv else None
        last_buy = buys.get(cid)
        f["days_since_high_risk_buy"] = (ctx.as_of - last_buy).days if last_buy else None


def _closes_on(p: Params) -> Any:
    return select(H.c.client_id, H.c.symbol, H.c.close_price).where(H.c.as_of == p.day, p.in_batch(H.c.client_id))


def _high_risk_buys(p: Params) -> Any:
    return (select(T.c.client_id, func.max(T.c.trade_date)).select_from(T.join(P, P.c.symbol == T.c.symbol))
            .where(T.c.side == "buy", P.c.risk.in_(p.many("risks")), T.c.trade_date <= p.as_of, p.in_batch(T.c.client_id))
            .group_by(T.c.client_id))


def _closes(ctx: FactContext) -> dict[str, float]:
    """Symbol -> its close on the evaluation date (the largest in the day's holdings), read once per run:
    joined per batch, the grouping scanned the whole day's holdings for every batch."""
    if "closes_on_as_of" not in ctx.extra:
        ctx.extra["closes_on_as_of"] = dict(ctx.conn.execute(
            select(H.c.symbol, func.max(H.c.close_price)).where(H.c.as_of == ctx.as_of).group_by(H.c.symbol)).all())
    return ctx.extra["closes_on_as_of"]  # type: ignore[no-any-return]


@PROVIDERS.provider(
    "flows_and_trades",
    FactField("trade_price_gap", NUMBER, "activity", "Largest gap between a trade's price on the evaluation date and that symbol's close, as a fraction of the close (0.99 = a 100-yuan bond traded at 1); null without such trades."),
    FactField("trade_gap_symbol", STRING, "activity", "Symbol of the trade with the largest trade_price_gap."),
    FactField("days_since_first_trade", NUMBER, "activity", "Days since the client's first trade at the firm; null if never traded."),
    FactField("outflow_20d", NUMBER, "activity", "Withdrawals and transfers out over the activity window, CNY (positive)."),
    FactField("transfer_out_20d", NUMBER, "activity", "Transfers out (to another firm) over the activity window, CNY."),
    FactField("outflow_ratio_20d", NUMBER, "activity", "outflow_20d / (market_value + outflow_20d): the share of assets that left; null when both are 0."),
    FactField("avg_assets_20d", NUMBER, "assets", "Average of daily holdings plus cash over the snapshot days in the activity window, CNY (margin eligibility uses it)."),
)
def _flows(ctx: FactContext, batch: dict[str, Facts]) -> None:
    closes = _closes(ctx)
    gaps: dict[str, tuple[float, str]] = {}
    for cid, symbol, price in ctx.run(_trades_today).all() if closes else ():
        close = closes.get(symbol)
        if close:
            gap = abs(float(price) / float(close) - 1)
            if gap > gaps.get(cid, (-1.0, ""))[0]:
                gaps[cid] = (gap, symbol)
    first = {cid: day for cid, day in ctx.run(_first_trades)}
    flows = {cid: (float(o or 0), float(x or 0)) for cid, o, x in ctx.run(_outflows)}
    avg = _avg_assets(ctx)
    for cid, f in batch.items():
        g = gaps.get(cid)
        f["trade_price_gap"], f["trade_gap_symbol"] = (g[0], g[1]) if g else (None, None)
        d = first.get(cid)
        f["days_since_first_trade"] = (ctx.as_of - d).days if d else None
        o, x = flows.get(cid, (0.0, 0.0))
        mv = f.get("market_value") or 0.0
        f["outflow_20d"], f["transfer_out_20d"] = o, x
        f["outflow_ratio_20d"] = o / (mv + o) if mv + o else None
        f["avg_assets_20d"] = avg.get(cid, 0.0)


def _trades_today(p: Params) -> Any:
    return select(T.c.client_id, T.c.symbol, T.c.price).where(T.c.trade_date == p.as_of, p.in_batch(T.c.client_id))


def _first_trades(p: Params) -> Any:
    return (select(T.c.client_id, func.min(T.c.trade_date)).where(T.c.trade_date <= p.as_of, p.in_batch(T.c.client_id))
            .group_by(T.c.client_id))


def _outflows(p: Params) -> Any:
    out = case((M.c.kind == "deposit", literal(0.0)), else_=func.abs(M.c.amount))
    xfer = case((M.c.kind == "transfer_out", func.abs(M.c.amount)), else_=literal(0.0))
    return (select(M.c.client_id, func.sum(out), func.sum(xfer))
            .where(M.c.moved_on >= p.window_start, M.c.moved_on <= p.as_of, p.in_batch(M.c.client_id))
            .group_by(M.c.client_id))


def _holding_totals(p: Params) -> Any:
    # as_of IN (the days), not a range: the (as_of, client_id) key then reads the batch's rows only
    return (select(H.c.client_id, func.sum(H.c.quantity * H.c.close_price))
            .where(H.c.as_of.in_(p.many("days")), p.in_batch(H.c.client_id)).group_by(H.c.client_id))


def _cash_totals(p: Params) -> Any:
    return (select(CB.c.client_id, func.sum(CB.c.amount))
            .where(CB.c.as_of.in_(p.many("days")), p.in_batch(CB.c.client_id)).group_by(CB.c.client_id))


def _avg_assets(ctx: FactContext) -> dict[str, float]:
    out: dict[str, float] = {}
    for table, totals, key in ((H, _holding_totals, "h"), (CB, _cash_totals, "c")):
        if f"avg_days_{key}" not in ctx.extra:  # the snapshot days in the window, once per run
            ctx.extra[f"avg_days_{key}"] = [r[0] for r in ctx.conn.execute(
                select(table.c.as_of).where(table.c.as_of >= ctx.window_start, table.c.as_of <= ctx.as_of)
                .distinct().order_by(table.c.as_of))]
        days = ctx.extra[f"avg_days_{key}"]
        if not days:
            continue
        for cid, total in ctx.run(totals, days=days):
            out[cid] = out.get(cid, 0.0) + float(total or 0) / len(days)
    return out


@PROVIDERS.provider(
    "client_profile",
    FactField("investor_class", STRING, "profile", "ordinary or professional investor (client profile); null when not recorded."),
    FactField("related_party", BOOL, "profile", "True for shareholders and related parties of the firm (no margin offers)."),
    FactField("annual_income", NUMBER, "profile", "Declared annual income, CNY; null when not recorded."),
    FactField("supervisor_id", STRING, "profile", "Id of the advisor's supervisor (escalations); null when none."),
    FactField("aml_review_open", BOOL, "profile", "True while an anti-money-laundering review of the client is open. Never mention it in a message."),
)
def _profile(ctx: FactContext, batch: dict[str, Facts]) -> None:
    prof = {cid: (cls, bool(related), income) for cid, cls, related, income in ctx.run(_profiles)}
    aml = {r[0] for r in ctx.run(_open_aml_reviews)}
    if "supervisors" not in ctx.extra:
        ctx.extra["supervisors"] = {r[0]: r[1] for r in ctx.conn.execute(select(ADV.c.id, ADV.c.supervisor_id))}
    sup: dict[str, str | None] = ctx.extra["supervisors"]
    for cid, f in batch.items():
        p = prof.get(cid)
        f["investor_class"], f["related_party"], f["annual_income"] = p if p else (None, False, None)
        f["supervisor_id"] = sup.get(f.get("advisor_id") or "")
        f["aml_review_open"] = cid in aml


def _profiles(p: Params) -> Any:
    return select(CP.c.client_id, CP.c.investor_class, CP.c.related_party, CP.c.annual_income).where(
        p.in_batch(CP.c.client_id))


def _open_aml_reviews(p: Params) -> Any:
    return select(AML.c.client_id).where(p.in_batch(AML.c.client_id), AML.c.opened_on <= p.as_of,
                                         (AML.c.closed_on.is_(None)) | (AML.c.closed_on > p.as_of))

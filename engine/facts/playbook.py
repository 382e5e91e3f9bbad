"""Fact providers: risk profile and allocation, segment models with previous_segment, calendar days.

previous_segment is the value x activity segment recomputed from the data as of
the previous evaluation (the latest completed `run` before the evaluation date,
else the previous trading day) by the same bulk code as `segment`: no state to
keep in step, right in dry runs and re-runs, and a threshold change in config
never shows as a downgrade.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.facts import client_time, festivals
from engine.facts import segments
from engine.facts import trading_calendar
from engine.facts.base import (BOOL, NUMBER, STRING, FactContext, FactField, Facts, Params, ProviderSet, asset_sums, segment_of,
                               trade_stats)
from engine.models import EvaluationRun, TradingDay
from engine.facts.tables import RiskAssessment

RA = RiskAssessment.__table__  # type: ignore[attr-defined]
RUN = EvaluationRun.__table__  # type: ignore[attr-defined]
TD = TradingDay.__table__  # type: ignore[attr-defined]

PROVIDERS = ProviderSet()
"""The providers this module declares; engine.composition registers them."""


@PROVIDERS.provider(
    "risk_profile",
    FactField("risk_capacity_score", NUMBER, "risk", "Risk capacity 0-100 from the latest scored questionnaire (steward risk score); null if none."),
    FactField("risk_capacity_level", STRING, "risk", "low, medium-low, medium, medium-high or high (servicing.risk.bands)."),
    FactField("risk_tolerance_score", NUMBER, "risk", "Risk tolerance 0-100 from the latest scored questionnaire; null if none."),
    FactField("risk_tolerance_level", STRING, "risk", "low, medium-low, medium, medium-high or high."),
    FactField("recommended_high_share", NUMBER, "risk", "Recommended share of high-risk products (servicing.risk.allocation), as a fraction; null without a questionnaire."),
    FactField("recommended_low_share", NUMBER, "risk", "Recommended share of low-risk products, as a fraction."),
    FactField("allocation_drift", NUMBER, "risk", "high_risk_share minus recommended_high_share (0.2 = 20 points more high-risk than recommended); null when either is null."),
)
def _risk_profile(ctx: FactContext, batch: dict[str, Facts]) -> None:
    latest = {r[0]: r[1:] for r in ctx.run(_latest_assessments)}
    for cid, f in batch.items():
        r = latest.get(cid)
        if r is None:
            f.update(risk_capacity_score=None, risk_capacity_level=None, risk_tolerance_score=None,
                     risk_tolerance_level=None, recommended_high_share=None, recommended_low_share=None,
                     allocation_drift=None)
            continue
        cap, cap_level, tol, tol_level, low, high = r
        f.update(risk_capacity_score=cap, risk_capacity_level=cap_level, risk_tolerance_score=tol,
                 risk_tolerance_level=tol_level, recommended_high_share=high / 100, recommended_low_share=low / 100)
        share = f.get("high_risk_share")
        f["allocation_drift"] = share - high / 100 if share is not None else None


def _latest_assessments(p: Params) -> Any:
    ranked = (select(RA.c.client_id, RA.c.capacity_score, RA.c.capacity_level, RA.c.tolerance_score,
                     RA.c.tolerance_level, RA.c.alloc_low, RA.c.alloc_high,
                     func.row_number().over(partition_by=RA.c.client_id,
                                            order_by=(RA.c.assessed_on.desc(), RA.c.id.desc())).label("rn"))
              .where(RA.c.assessed_on <= p.as_of, p.in_batch(RA.c.client_id)).subquery())
    return select(*[c for c in ranked.c if c.name != "rn"]).where(ranked.c.rn == 1)


@PROVIDERS.provider(
    "segment_models",
    FactField("capital_turnover", STRING, "segments", "Capital size x turnover cell: large/medium/small + _short_term/_stable/_static, e.g. large_short_term (servicing.capital_turnover)."),
    FactField("important_cell", BOOL, "segments", "True in the important capital x turnover cells (servicing.important_cells; by default every large and medium cell and small_short_term)."),
    FactField("value_quadrant", STRING, "segments", "Current x future value: gold, rising_star, maintain or give_up (servicing.value_quadrant)."),
    FactField("life_stage", STRING, "segments", "growth, youth, adult, mature, stable or retired by age (servicing.life_stage_ages); null without a birth date."),
    FactField("previous_segment", STRING, "segments", "Value x activity segment as of the previous evaluation (latest completed run, else the previous trading day); null if the account was not open then."),
    FactField("segment_downgraded", BOOL, "segments", "True when segment ranks below previous_segment (core > maintenance > dormant > settled > dead)."),
)
def _segment_models(ctx: FactContext, batch: dict[str, Facts]) -> None:
    sv = ctx.cfg.servicing
    previous = _previous_segments(ctx, batch)
    for cid, f in batch.items():
        mv, vol = f.get("market_value") or 0.0, f.get("volume_20d") or 0.0
        cell = segments.capital_turnover(mv, vol, sv.capital_turnover)
        f["capital_turnover"] = cell
        f["important_cell"] = cell in sv.important_cells
        f["value_quadrant"] = segments.value_quadrant(mv, vol, f.get("annual_income"), f.get("net_flow_20d") or 0.0,
                                                      f.get("age"), sv.value_quadrant)
        f["life_stage"] = segments.life_stage(f.get("age"), sv.life_stage_ages)
        f["previous_segment"] = previous.get(cid)
        f["segment_downgraded"] = segments.downgraded(f["previous_segment"], f.get("segment"))


def previous_evaluation_day(ctx: FactContext) -> date | None:
    if "previous_day" not in ctx.extra:
        day = ctx.conn.execute(select(func.max(RUN.c.as_of)).where(
            RUN.c.as_of < ctx.as_of, RUN.c.mode == "run", RUN.c.finished_at.is_not(None))).scalar()
        if day is None:
            day = ctx.conn.execute(select(func.max(TD.c.day)).where(
                TD.c.exchange == ctx.cfg.calendar.exchange, TD.c.is_open.is_(True), TD.c.day < ctx.as_of)).scalar()
        ctx.extra["previous_day"] = day
    return ctx.extra["previous_day"]  # type: ignore[no-any-return]


def _previous_segments(ctx: FactContext, batch: dict[str, Facts]) -> dict[str, str]:
    prev = previous_evaluation_day(ctx)
    if prev is None:
        return {}
    extra: dict[str, Any] = ctx.extra.setdefault("previous_extra", {})
    if "window_start" not in extra:
        n = ctx.cfg.evaluation.activity_days
        extra["window_start"] = trading_calendar.trading_days_back(ctx.conn, ctx.cfg.calendar.exchange, prev, n)[0]
    pctx = FactContext(ctx.conn, ctx.cfg, prev, ctx.lo, ctx.hi, extra["window_start"], extra, ctx.ids)
    # market_value and volume_20d as of `prev`, by the queries the assets and activity providers run
    holdings, cash = asset_sums(pctx)
    trades = trade_stats(pctx)
    out: dict[str, str] = {}
    for cid, f in batch.items():
        opened = f.get("opened_on")
        if not opened or opened > prev:
            continue
        mv = holdings.get(cid, (0.0, 0.0, 0))[0] + (cash.get(cid) or 0.0)
        out[cid] = segment_of(mv, trades.get(cid, (0.0, 0, None))[0], (prev - opened).days, ctx.cfg)
    return out


@PROVIDERS.provider(
    "calendar_days",
    FactField("days_to_birthday", NUMBER, "calendar", "Days until the next birthday (0 on the day); null without a birth date."),
    FactField("birthday_due", BOOL, "calendar", "True when the birthday falls today or before the next trading day (weekend birthdays are greeted on the last trading day before)."),
    FactField("festival_due", STRING, "calendar", "spring_festival or mid_autumn when that festival falls today or before the next trading day; null otherwise. Dates from the lunar calendar."),
    FactField("next_festival", STRING, "calendar", "The next festival on or after the evaluation date: spring_festival or mid_autumn."),
    FactField("days_to_festival", NUMBER, "calendar", "Days until next_festival (0 on the day)."),
    FactField("eval_year", NUMBER, "calendar", "Year of the evaluation date (for yearly rules such as the annual sample callback)."),
    FactField("eval_month", NUMBER, "calendar", "Month (1-12) of the evaluation date."),
)
def _calendar_days(ctx: FactContext, batch: dict[str, Facts]) -> None:
    nxt = next_session(ctx)
    if "festival" not in ctx.extra:  # lunar calendar arithmetic: once per run, not per batch
        ctx.extra["festival"] = festivals.next_festival(ctx.as_of), festivals.due_before(ctx.as_of, nxt)
    (name, fday), due = ctx.extra["festival"]
    for f in batch.values():
        born = f.get("birth_date")
        if born:
            today = client_time.client_today(ctx.cfg, ctx.as_of, f.get("timezone"))  # the client's own date
            b = festivals.next_birthday(born, today)
            f["days_to_birthday"], f["birthday_due"] = (b - today).days, b < nxt or b == today
        else:
            f["days_to_birthday"], f["birthday_due"] = None, False
        f["festival_due"], f["next_festival"] = due, name
        f["days_to_festival"] = (fday - ctx.as_of).days
        f["eval_year"], f["eval_month"] = ctx.as_of.year, ctx.as_of.month


def next_session(ctx: FactContext) -> date:
    """Next trading day after as_of: the trading_day table, else exchange-calendars, else the next weekday."""
    if "next_session" not in ctx.extra:
        ex = ctx.cfg.calendar.exchange
        day = ctx.conn.execute(select(func.min(TD.c.day)).where(
            TD.c.exchange == ex, TD.c.is_open.is_(True), TD.c.day > ctx.as_of)).scalar()
        if day is None:
            sessions = [d for d in trading_calendar.exchange_sessions(ex, ctx.as_of + timedelta(days=1),
                                                                      ctx.as_of + timedelta(days=30))]
            day = sessions[0] if sessions else festivals.weekday_after(ctx.as_of)
        ctx.extra["next_session"] = day
    return ctx.extra["next_session"]  # type: ignore[no-any-return]

"""Client facts: one snapshot per client as of a date, computed in bulk.

Facts come from fact providers: each declares the fields it fills (name, type,
documentation) and computes them for a whole batch of clients with a few SQL
aggregates, never one query per client. Built-in providers register through the
same `register_provider` door as a firm's own, from engine.composition. Only this module (and providers
registered here) query client data.

A field the data lacks is None, never a made-up default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable, Select

from engine.facts import trading_calendar
from engine.config.base import Config
from engine.models import (
    CashBalance,
    CashMovement,
    Client,
    Contact,
    Holding,
    MarginSnapshot,
    Trade,
)
from engine.facts.tables import Product

Facts = dict[str, Any]
NUMBER, STRING, BOOL, DATE = "number", "string", "bool", "date"


@dataclass(frozen=True)
class FactField:
    name: str
    type: str
    group: str
    doc: str


@dataclass
class FactContext:
    conn: Connection
    cfg: Config
    as_of: date
    lo: str
    hi: str
    window_start: date
    """First day of the activity window (the Nth trading day back)."""
    extra: dict[str, Any]
    """Per-evaluation values providers compute once and share (e.g. snapshot dates). Only values
    whose size does not grow with the book: it lives as long as the run."""
    ids: tuple[str, ...] | None = None
    """When set, the batch is these client ids (within [lo, hi]) instead of every id in [lo, hi]."""
    batch_cache: dict[str, Any] = field(default_factory=dict)
    """Per-batch values providers share (e.g. the batch's holding rows), dropped with the batch."""

    def in_batch(self, column: Any) -> Any:
        """The batch as a condition with its values in it (for statements built per batch; see `run`)."""
        if self.ids is not None:
            return column.in_(self.ids)
        return and_(column >= self.lo, column <= self.hi)

    def run(self, build: Build, **values: Any) -> Any:  # a CursorResult (rows of any shape)
        """Execute the statement `build` makes, with this batch's values and `values` as its parameters.

        The statement is built once per process (per `build` and batch form, range or id list) from
        named parameters (`Params`) and reused: SQLAlchemy then also finds its compiled form at once.
        Built per batch, statement construction was most of the facts' CPU for small batches (the
        event engine's few firing clients), and its cache key alone was rebuilt on every execution.
        `build` must be a module-level function (it is the cache key). Every statement may use
        `as_of`, `window_start` and the batch; anything else is passed in `values`.
        """
        key = (build, self.ids is not None)
        stmt = _STATEMENTS.get(key)
        if stmt is None:
            stmt = _STATEMENTS[key] = build(Params(self.ids is not None))
        params = {"as_of": self.as_of, "window_start": self.window_start, **values}
        if self.ids is not None:
            params["batch_ids"] = self.ids
        else:
            params["batch_lo"], params["batch_hi"] = self.lo, self.hi
        return self.conn.execute(stmt, params)


class Params:
    """Named bound parameters for a statement built once (`FactContext.run`): `p.as_of`,
    `p.window_start`, `p.NAME` for a value passed to `run` as NAME=..., `p.many("NAME")` for a
    list (an expanding IN), and `p.in_batch(column)` for the batch (range or id list)."""

    def __init__(self, by_ids: bool) -> None:
        self.by_ids = by_ids

    def in_batch(self, column: Any) -> Any:
        if self.by_ids:
            return column.in_(bindparam("batch_ids", expanding=True))
        return and_(column >= bindparam("batch_lo"), column <= bindparam("batch_hi"))

    def many(self, name: str) -> Any:
        return bindparam(name, expanding=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return bindparam(name)


Build = Callable[[Params], Executable]
_STATEMENTS: dict[tuple[Build, bool], Any] = {}
"""Statements built by `FactContext.run`, per builder function and batch form (a few dozen in all)."""

Compute = Callable[[FactContext, dict[str, Facts]], None]


@dataclass(frozen=True)
class FactProvider:
    name: str
    fields: tuple[FactField, ...]
    compute: Compute


_PROVIDERS: list[FactProvider] = []


def register_provider(provider: FactProvider) -> FactProvider:
    taken = {f.name for p in _PROVIDERS for f in p.fields}
    clash = taken & {f.name for f in provider.fields}
    if clash:
        raise ValueError(f"fact provider {provider.name!r} redefines fields {sorted(clash)}")
    _PROVIDERS.append(provider)
    return provider


class ProviderSet:
    """The providers one module declares. Declaring registers nothing:
    engine.composition.install() registers each module's set, in a fixed order."""

    def __init__(self) -> None:
        self.providers: list[FactProvider] = []

    def provider(self, name: str, *fields: FactField) -> Callable[[Compute], Compute]:
        def deco(fn: Compute) -> Compute:
            self.providers.append(FactProvider(name, tuple(fields), fn))
            return fn

        return deco


PROVIDERS = ProviderSet()
"""The built-in providers of this module."""


def providers() -> list[FactProvider]:
    return list(_PROVIDERS)


def all_fields() -> dict[str, FactField]:
    if not _PROVIDERS:
        raise RuntimeError("no fact providers are registered: call engine.composition.install() first "
                           "(the steward command, the scheduler and the test suite do)")
    return {f.name: f for p in _PROVIDERS for f in p.fields}


def field_types() -> dict[str, str]:
    """Types usable in `when:` expressions (dates are exposed as day counts instead)."""
    return {n: f.type for n, f in all_fields().items() if f.type != DATE}


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    STRING: lambda v: isinstance(v, str),
    BOOL: lambda v: isinstance(v, bool),
    DATE: lambda v: isinstance(v, date),
}


def type_ok(type_: str, value: Any) -> bool:
    """Whether a non-null value fits a fact field type (facts from files are checked with this)."""
    return _TYPE_CHECKS[type_](value)


def _t(model: Any) -> Any:
    return model.__table__


# ------------------------------------------------------------------ identity


@PROVIDERS.provider(
    "identity",
    FactField("client_id", STRING, "identity", "The client's id."),
    FactField("name", STRING, "identity", "The client's name (for greetings in templates)."),
    FactField("advisor_id", STRING, "identity", "Id of the client's advisor; null when unassigned."),
    FactField("locale", STRING, "identity", "Language of the client's messages: zh-CN, zh-TW, en or es."),
    FactField("timezone", STRING, "identity", "The client's IANA time zone (config `timezone` when the client has none)."),
    FactField("age", NUMBER, "identity", "Age in whole years on the evaluation date; null without a birth date."),
    FactField("birth_date", DATE, "identity", "Birth date (templates only)."),
    FactField("opened_on", DATE, "identity", "Account opening date (templates only)."),
    FactField("days_since_open", NUMBER, "identity", "Calendar days from account opening to the evaluation date."),
    FactField("risk_level", STRING, "service", "Risk level C1..C5 from the latest assessment; null if never assessed."),
    FactField("lowest_category", BOOL, "service", "True for clients in the lowest risk category (no product above R1)."),
    FactField("risk_assessed_days", NUMBER, "service", "Days since the latest risk assessment; null if never assessed."),
)
def _identity(ctx: FactContext, batch: dict[str, Facts]) -> None:
    # Rows were created by iter_batches from the client table; nothing to add.
    return None


def _client_rows(p: Params) -> Select[Any]:
    c = _t(Client)
    return (
        select(
            c.c.id, c.c.name, c.c.advisor_id, c.c.locale, c.c.timezone, c.c.birth_date, c.c.opened_on,
            c.c.risk_level, c.c.lowest_category, c.c.risk_assessed_on,
        )
        .where(p.in_batch(c.c.id), c.c.opened_on <= p.as_of)
        .order_by(c.c.id)
    )


def _age(born: date | None, on: date) -> int | None:
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _identity_facts(row: Any, as_of: date, default_locale: str, default_zone: str) -> Facts:
    cid, name, advisor_id, locale, zone, born, opened, risk_level, lowest, assessed = row
    return {
        "client_id": cid,
        "name": name,
        "advisor_id": advisor_id,
        "locale": locale or default_locale,
        "timezone": zone or default_zone,
        "age": _age(born, as_of),
        "birth_date": born,
        "opened_on": opened,
        "days_since_open": (as_of - opened).days,
        "risk_level": risk_level,
        "lowest_category": bool(lowest),
        "risk_assessed_days": (as_of - assessed).days if assessed else None,
    }


# ------------------------------------------------------------------ assets


def _latest_date(ctx: FactContext, table: Any, key: str) -> date | None:
    if key not in ctx.extra:
        ctx.extra[key] = ctx.conn.execute(select(func.max(table.c.as_of)).where(table.c.as_of <= ctx.as_of)).scalar()
    return ctx.extra[key]  # type: ignore[no-any-return]


@PROVIDERS.provider(
    "assets",
    FactField("market_value", NUMBER, "assets", "Holdings at the close plus cash, CNY, on the latest snapshot on or before the evaluation date."),
    FactField("cash", NUMBER, "assets", "Cash balance, CNY; null when no cash balance is recorded."),
    FactField("holdings_count", NUMBER, "assets", "Number of distinct positions held."),
    FactField("top_symbol", STRING, "assets", "Symbol of the largest position by market value; null with no holdings."),
    FactField("top_weight", NUMBER, "assets", "Largest position / market_value (0 with no holdings; null when market_value is 0)."),
    FactField("unrealized_pnl_pct", NUMBER, "assets", "Unrealised gain or loss of all positions over their cost, as a fraction (-0.25 = down 25%); null with no holdings."),
)
def _assets(ctx: FactContext, batch: dict[str, Facts]) -> None:
    holdings, cash = asset_sums(ctx)
    top: dict[str, tuple[str, float]] = {}
    for cid, symbol, _qty, _close, value, *_ in holding_rows(ctx):  # largest value first, then the lower symbol
        v = float(value or 0)
        t = top.get(cid)
        if t is None or v > t[1] or (v == t[1] and symbol < t[0]):
            top[cid] = (symbol, v)
    for cid, f in batch.items():
        hv, hc, n = holdings.get(cid, (0.0, 0.0, 0))
        c = cash.get(cid)
        mv = hv + (c or 0.0)
        f["cash"] = c
        f["market_value"] = mv
        f["holdings_count"] = n
        t = top.get(cid)
        f["top_symbol"] = t[0] if t else None
        f["top_weight"] = (t[1] / mv if mv else None) if t else 0.0
        f["unrealized_pnl_pct"] = (hv - hc) / hc if n and hc else None


def asset_sums(ctx: FactContext) -> tuple[dict[str, tuple[float, float, int]], dict[str, float]]:
    """Per client of the batch: (holdings value, holdings cost, positions) on the latest holdings
    snapshot, and the cash balance on the latest cash snapshot (both on or before ctx.as_of)."""
    hday = _latest_date(ctx, _t(Holding), "holding_day")
    cday = _latest_date(ctx, _t(CashBalance), "cash_day")
    holdings: dict[str, tuple[float, float, int]] = {}
    if hday is not None:
        holdings = {cid: (float(v or 0), float(c or 0), int(n)) for cid, v, c, n in ctx.run(_holding_sums, day=hday)}
    cash: dict[str, float] = {}
    if cday is not None:
        cash = {cid: float(a) for cid, a in ctx.run(_cash_rows, day=cday)}
    return holdings, cash


def _holding_sums(p: Params) -> Select[Any]:
    h = _t(Holding)
    return (select(h.c.client_id, func.sum(h.c.quantity * h.c.close_price), func.sum(h.c.quantity * h.c.cost), func.count())
            .where(h.c.as_of == p.day, p.in_batch(h.c.client_id))
            .group_by(h.c.client_id))


def _cash_rows(p: Params) -> Select[Any]:
    cb = _t(CashBalance)
    return select(cb.c.client_id, cb.c.amount).where(cb.c.as_of == p.day, p.in_batch(cb.c.client_id))


HoldingRow = tuple[str, str, float, float, float, float, "str | None", "float | None"]
"""client_id, symbol, quantity, close_price, value (quantity x close), cost, product risk, shares outstanding."""


def holding_rows(ctx: FactContext) -> list[HoldingRow]:
    """The batch's positions on the latest holdings snapshot, with their product, by client and symbol.

    Read once per batch and shared by the providers that look at single positions
    (top position, product risk, stakes), instead of one query over the same rows each.
    """
    if "holding_rows" not in ctx.batch_cache:
        hday = _latest_date(ctx, _t(Holding), "holding_day")
        ctx.batch_cache["holding_rows"] = ctx.run(_holding_rows, day=hday).all() if hday is not None else []
    return ctx.batch_cache["holding_rows"]  # type: ignore[no-any-return]


def _holding_rows(p: Params) -> Select[Any]:
    h, pr = _t(Holding), _t(Product)
    return (select(h.c.client_id, h.c.symbol, h.c.quantity, h.c.close_price, h.c.quantity * h.c.close_price,
                   h.c.cost, pr.c.risk, pr.c.shares_outstanding)
            .select_from(h.outerjoin(pr, pr.c.symbol == h.c.symbol))
            .where(h.c.as_of == p.day, p.in_batch(h.c.client_id))
            .order_by(h.c.client_id, h.c.symbol))


# ------------------------------------------------------------------ activity


@PROVIDERS.provider(
    "activity",
    FactField("volume_20d", NUMBER, "activity", "Traded amount (buys and sells, CNY) over the last 20 trading days (evaluation.activity_days)."),
    FactField("trades_20d", NUMBER, "activity", "Number of trades over the last 20 trading days."),
    FactField("days_since_last_trade", NUMBER, "activity", "Calendar days since the latest trade; null if the client never traded."),
    FactField("net_flow_20d", NUMBER, "activity", "Deposits minus withdrawals and transfers out over the last 20 trading days, CNY."),
)
def _activity(ctx: FactContext, batch: dict[str, Facts]) -> None:
    trades = trade_stats(ctx)
    flows = {cid: float(v or 0) for cid, v in ctx.run(_net_flows)}
    for cid, f in batch.items():
        vol, n, last = trades.get(cid, (0.0, 0, None))
        f["volume_20d"] = vol
        f["trades_20d"] = n
        f["days_since_last_trade"] = (ctx.as_of - last).days if last else None
        f["net_flow_20d"] = flows.get(cid, 0.0)


def _net_flows(p: Params) -> Select[Any]:
    m = _t(CashMovement)
    signed = case((m.c.kind == "deposit", m.c.amount), else_=-func.abs(m.c.amount))
    return (select(m.c.client_id, func.sum(signed))
            .where(m.c.moved_on >= p.window_start, m.c.moved_on <= p.as_of, p.in_batch(m.c.client_id))
            .group_by(m.c.client_id))


def trade_stats(ctx: FactContext) -> dict[str, tuple[float, int, date | None]]:
    """Per client of the batch: (traded amount and trades in the activity window, latest trade date)."""
    return {cid: (float(v or 0), int(n or 0), last) for cid, v, n, last in ctx.run(_trade_stats)}


def _trade_stats(p: Params) -> Select[Any]:
    t = _t(Trade)
    in_window = t.c.trade_date >= p.window_start
    return (
        select(
            t.c.client_id,
            func.sum(case((in_window, func.abs(t.c.amount)), else_=literal(0.0))),
            func.sum(case((in_window, 1), else_=0)),
            func.max(t.c.trade_date),
        )
        .where(t.c.trade_date <= p.as_of, p.in_batch(t.c.client_id))
        .group_by(t.c.client_id)
    )


# ------------------------------------------------------------------ service


SEGMENTS = ("core", "maintenance", "dormant", "settled", "dead")


def segment_of(market_value: float, volume: float, days_since_open: int, cfg: Config) -> str:
    """Value x activity grid of DOMAIN.md; a new account with little trading starts dormant."""
    s = cfg.segments
    if market_value >= s.value_high and volume >= s.volume_high:
        return "core"
    if market_value >= s.value_low and volume >= s.volume_low:
        return "maintenance"
    if volume < s.volume_low and (market_value >= s.value_low or days_since_open <= s.new_account_days):
        return "dormant"
    if volume >= s.volume_low:
        return "settled"
    return "dead"


@PROVIDERS.provider(
    "service",
    FactField("segment", STRING, "service", "Value x activity segment: core, maintenance, dormant, settled or dead (thresholds under segments: in config)."),
    FactField("callback_done", BOOL, "service", "True once a callback with a recorded outcome exists since the account opened."),
    FactField("days_since_contact", NUMBER, "service", "Calendar days since the latest recorded contact of any kind; null if never contacted."),
)
def _service(ctx: FactContext, batch: dict[str, Facts]) -> None:
    rows = {cid: (last, bool(cb)) for cid, last, cb in ctx.run(_contacts)}
    for cid, f in batch.items():
        last, callback = rows.get(cid, (None, False))
        f["callback_done"] = callback
        f["days_since_contact"] = (ctx.as_of - last).days if last else None
        f["segment"] = segment_of(f.get("market_value") or 0.0, f.get("volume_20d") or 0.0, f["days_since_open"], ctx.cfg)


def _contacts(p: Params) -> Select[Any]:
    c = _t(Contact)
    is_callback = and_(c.c.kind == "callback", c.c.outcome.is_not(None))
    return (select(c.c.client_id, func.max(c.c.contacted_on), func.max(case((is_callback, 1), else_=0)))
            .where(c.c.contacted_on <= p.as_of, p.in_batch(c.c.client_id))
            .group_by(c.c.client_id))


# ------------------------------------------------------------------ margin


@PROVIDERS.provider(
    "margin",
    FactField("margin_enabled", BOOL, "margin", "True when the client has a margin account snapshot on the latest snapshot date."),
    FactField("maintenance_ratio", NUMBER, "margin", "Margin maintenance ratio as a fraction (1.5 = 150%); null without a margin account."),
    FactField("margin_contract_expiry", DATE, "margin", "Expiry of the margin contract (templates only)."),
    FactField("margin_contract_days_left", NUMBER, "margin", "Days until the margin contract expires; null without one."),
)
def _margin(ctx: FactContext, batch: dict[str, Facts]) -> None:
    ms = _t(MarginSnapshot)
    mday = _latest_date(ctx, ms, "margin_day")
    rows: dict[str, tuple[float | None, date | None]] = {}
    if mday is not None:
        rows = {cid: (ratio, expiry) for cid, ratio, expiry in ctx.run(_margin_rows, day=mday)}
    for cid, f in batch.items():
        row = rows.get(cid)
        f["margin_enabled"] = row is not None
        f["maintenance_ratio"] = row[0] if row else None
        f["margin_contract_expiry"] = row[1] if row else None
        f["margin_contract_days_left"] = (row[1] - ctx.as_of).days if row and row[1] else None


def _margin_rows(p: Params) -> Select[Any]:
    ms = _t(MarginSnapshot)
    return select(ms.c.client_id, ms.c.maintenance_ratio, ms.c.contract_expiry).where(
        ms.c.as_of == p.day, p.in_batch(ms.c.client_id))


# ------------------------------------------------------------------ batches


def client_ids(conn: Connection, as_of: date, lo: str | None = None, hi: str | None = None) -> list[str]:
    """Ids of the clients opened on or before as_of (within [lo, hi] when given), in order."""
    c = _t(Client)
    q = select(c.c.id).where(c.c.opened_on <= as_of).order_by(c.c.id)
    if lo is not None:
        q = q.where(c.c.id >= lo)
    if hi is not None:
        q = q.where(c.c.id <= hi)
    return [r[0] for r in conn.execute(q)]


def split(ids: list[str], size: int) -> list[tuple[str, str]]:
    """Contiguous (first id, last id) ranges of at most `size` of the given sorted ids."""
    return [(ids[i], ids[min(i + size, len(ids)) - 1]) for i in range(0, len(ids), size)]


def batch_ranges(conn: Connection, as_of: date, size: int, lo: str | None = None,
                 hi: str | None = None) -> Iterator[tuple[str, str]]:
    """The (first id, last id) ranges `split(client_ids(...), size)` gives, read one range at a time.

    Keyset pages of `size` ids: memory holds one batch's ids, never the book's (a million ids
    are ~65 MB of Python strings). Clients are read as the iteration reaches them.
    """
    c = _t(Client)
    after: str | None = None
    while True:
        q = select(c.c.id).where(c.c.opened_on <= as_of).order_by(c.c.id).limit(size)
        if after is not None:
            q = q.where(c.c.id > after)
        elif lo is not None:
            q = q.where(c.c.id >= lo)
        if hi is not None:
            q = q.where(c.c.id <= hi)
        page = conn.execute(q).scalars().all()
        if not page:
            return
        yield page[0], page[-1]
        if len(page) < size:
            return
        after = page[-1]


def client_id_at(conn: Connection, as_of: date, position: int) -> str:
    """The id at `position` (from 0) of `client_ids(conn, as_of)`, read without loading the others."""
    c = _t(Client)
    return str(conn.execute(select(c.c.id).where(c.c.opened_on <= as_of).order_by(c.c.id)
                            .limit(1).offset(position)).scalar_one())


def count_clients(conn: Connection, as_of: date) -> int:
    c = _t(Client)
    return int(conn.execute(select(func.count()).where(c.c.opened_on <= as_of)).scalar() or 0)


def _compute(conn: Connection, cfg: Config, as_of: date, lo: str, hi: str, window_start: date,
             extra: dict[str, Any], ids: tuple[str, ...] | None = None) -> dict[str, Facts]:
    """Facts of the clients with ids in [lo, hi] (only those in `ids` when given): identity rows,
    then every provider in bulk."""
    ctx = FactContext(conn, cfg, as_of, lo, hi, window_start, extra, ids)
    locale, zone = cfg.default_locale, cfg.timezone
    batch = {r[0]: _identity_facts(r, as_of, locale, zone) for r in ctx.run(_client_rows)}
    for p in _PROVIDERS:
        p.compute(ctx, batch)
    return batch


def _window_start(conn: Connection, cfg: Config, as_of: date) -> date:
    return trading_calendar.trading_days_back(conn, cfg.calendar.exchange, as_of, cfg.evaluation.activity_days)[0]


def iter_batches(conn: Connection, cfg: Config, as_of: date, batch_size: int | None = None,
                 lo: str | None = None, hi: str | None = None) -> Iterator[list[Facts]]:
    """Facts of every client opened on or before as_of (ids in [lo, hi] when given), in batches by id."""
    start = _window_start(conn, cfg, as_of)
    extra: dict[str, Any] = {}
    for first, last in batch_ranges(conn, as_of, batch_size or cfg.evaluation.batch_size, lo, hi):
        yield list(_compute(conn, cfg, as_of, first, last, start, extra).values())


def facts_for(conn: Connection, cfg: Config, as_of: date, client_id: str,
              extra: dict[str, Any] | None = None) -> Facts | None:
    """Facts of one client (for explanations, previews and events), by the same bulk code path.

    `extra`: a per-evaluation cache to share between calls on the same as_of (snapshot dates,
    the activity window: what a nightly run reads once per run); None reads them afresh.
    """
    if extra is None:
        extra = {}
    if "_window_start" not in extra:
        extra["_window_start"] = _window_start(conn, cfg, as_of)
    return _compute(conn, cfg, as_of, client_id, client_id, extra["_window_start"], extra).get(client_id)



def facts_of(conn: Connection, cfg: Config, as_of: date, client_ids: Iterable[str],
             extra: dict[str, Any] | None = None) -> dict[str, Facts]:
    """Facts of several clients in one bulk computation (the event engine's batch of firing clients).

    The same providers and queries as `facts_for`, filtered on the id list instead of an id range,
    so scattered ids cost the same as adjacent ones. Clients unknown (or opened after `as_of`) are
    absent from the result. `extra` as for `facts_for`.
    """
    ids = tuple(sorted(set(client_ids)))
    if not ids:
        return {}
    if extra is None:
        extra = {}
    if "_window_start" not in extra:
        extra["_window_start"] = _window_start(conn, cfg, as_of)
    # One id: the range form, which is what facts_for sends (cheaper to build than an IN list).
    return _compute(conn, cfg, as_of, ids[0], ids[-1], extra["_window_start"], extra, ids if len(ids) > 1 else None)

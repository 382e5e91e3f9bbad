"""The synthetic clients of the demo book: archetypes, traits, names, a market, one client's rows.

engine.demo.book deals the shares, seeds the calendar and writes the rows; this module
makes them. Same seed, same clients.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from faker import Faker

from engine.demo import history as demo_history
from engine.demo import playbook as demo_playbook
from engine.config.servicing import RiskConfig

Rows = dict[str, list[dict[str, Any]]]
T = TypeVar("T")
Progress = Callable[[int], None]
CLIENTS_PER_CHUNK = 2_000
INSERT_CHUNK = 10_000
WINDOW_DAYS = 120
"""Calendar days of trade and cash-movement history."""

# A-share codes (Shanghai 6xxxxx/688xxx, Shenzhen 000xxx/002xxx/300xxx) with a plausible close, CNY.
SYMBOLS: tuple[tuple[str, str, float], ...] = (
    ("600519", "贵州茅台", 1520.0), ("601318", "中国平安", 52.3), ("600036", "招商银行", 41.2),
    ("000858", "五粮液", 132.5), ("000333", "美的集团", 74.8), ("601398", "工商银行", 7.12),
    ("601288", "农业银行", 5.31), ("601988", "中国银行", 5.58), ("601939", "建设银行", 8.46),
    ("600900", "长江电力", 28.9), ("300750", "宁德时代", 262.0), ("002594", "比亚迪", 305.6),
    ("600276", "恒瑞医药", 55.4), ("000001", "平安银行", 11.9), ("601166", "兴业银行", 20.7),
    ("600030", "中信证券", 28.1), ("601012", "隆基绿能", 18.2), ("600309", "万华化学", 75.3),
    ("000651", "格力电器", 42.6), ("600887", "伊利股份", 28.4), ("601888", "中国中免", 66.0),
    ("603288", "海天味业", 40.1), ("600028", "中国石化", 6.21), ("601857", "中国石油", 8.63),
    ("600104", "上汽集团", 15.2), ("601668", "中国建筑", 5.62), ("600050", "中国联通", 5.12),
    ("601728", "中国电信", 6.58), ("600941", "中国移动", 104.3), ("000002", "万科A", 7.05),
    ("600048", "保利发展", 9.12), ("601899", "紫金矿业", 17.4), ("600019", "宝钢股份", 6.63),
    ("002415", "海康威视", 30.2), ("000725", "京东方A", 4.21), ("002475", "立讯精密", 38.7),
    ("300059", "东方财富", 22.4), ("300760", "迈瑞医疗", 251.0), ("600585", "海螺水泥", 24.3),
    ("601601", "中国太保", 32.6), ("601628", "中国人寿", 38.4), ("600000", "浦发银行", 10.2),
    ("601328", "交通银行", 7.04), ("600016", "民生银行", 4.02), ("000568", "泸州老窖", 151.0),
    ("600809", "山西汾酒", 198.0), ("002304", "洋河股份", 81.5), ("600690", "海尔智家", 28.7),
    ("000063", "中兴通讯", 35.3), ("688981", "中芯国际", 91.2), ("688111", "金山办公", 281.0),
    ("601919", "中远海控", 14.3), ("600031", "三一重工", 18.6), ("601766", "中国中车", 7.52),
    ("600438", "通威股份", 20.1), ("002714", "牧原股份", 40.3), ("000100", "TCL科技", 4.55),
    ("601138", "工业富联", 25.2), ("600406", "国电南瑞", 24.1), ("601633", "长城汽车", 26.4),
)

# First key of each mapping is the filler that takes what the other shares leave.
ARCHETYPES = {"regular": 0.0, "new": 0.04, "onboarding": 0.02, "dormant": 0.28, "dead": 0.14, "settled": 0.06,
              "active": 0.14, "core": 0.03, "hnw": 0.003}
LOCALE_SHARES = {"zh-CN": 0.0, "zh-TW": 0.08, "en": 0.05, "es": 0.02}
AGE_BANDS = {"mid": 0.0, "young": 0.25, "senior": 0.17}
RISK_STATES = {"fresh": 0.0, "stale": 0.15, "missing": 0.06}
AGE_RANGES = {"young": (22, 35), "mid": (36, 64), "senior": (65, 88)}
RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
_RISK_CUM = [0.12, 0.37, 0.72, 0.92, 1.0]
POSITIONS = (1, 2, 3, 4, 5, 6, 7, 8)
_POSITIONS_CUM = [6.0, 20.0, 44.0, 64.0, 78.0, 88.0, 94.0, 100.0]
_FAKER_LOCALES = {"zh-CN": "zh_CN", "zh-TW": "zh_TW", "en": "en_US", "es": "es_ES"}
_MARGIN_KINDS = ("regular", "active", "core", "hnw")
_NEW_KINDS = ("new", "onboarding")
_RICH_KINDS = ("active", "core", "hnw")
R4_SYMBOLS = tuple(s for s, _, _ in SYMBOLS if demo_playbook.product_risk(s) == "R4")
_OLDER_KINDS = ("regular", "dormant", "dead", "settled", "active", "core", "hnw")



# ------------------------------------------------------------------ plan


# random.Random's randint/choice/choices are several times slower than random(); these
# helpers keep generation fast and are just as deterministic.
def _int(rng: random.Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def _one(rng: random.Random, seq: Sequence[T]) -> T:
    return seq[int(rng.random() * len(seq))]


def _some(rng: random.Random, seq: list[date], k: int) -> list[date]:
    n = len(seq)
    return [seq[int(rng.random() * n)] for _ in range(k)] if n else []


def _weighted(rng: random.Random, values: Sequence[T], cum: Sequence[float]) -> T:
    return values[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _deal(rng: random.Random, n: int, shares: dict[str, float], minimum: int) -> list[str]:
    """A shuffled list of n labels in the given shares, each at least `minimum` times."""
    filler, *others = shares
    out = [k for k in others for _ in range(max(minimum, round(shares[k] * n)))][:n]
    out += [filler] * (n - len(out))
    rng.shuffle(out)
    return out


def _pick(rng: random.Random, eligible: list[int], share: float, minimum: int) -> dict[int, int]:
    """A sample of `eligible`, mapped to its rank (so traits can be spread over the sample)."""
    k = min(len(eligible), max(minimum, round(share * len(eligible))))
    return {i: r for r, i in enumerate(sorted(rng.sample(eligible, k)))}


@dataclass(frozen=True)
class _Plan:
    kind: list[str]
    locale: list[str]
    age: list[str]
    risk: list[str]
    traits: dict[str, dict[int, int]]
    """Trait name -> {client index: rank among the clients with that trait}."""

    @classmethod
    def deal(cls, rng: random.Random, n: int) -> _Plan:
        m = 2 if n >= 50 else 0
        kind = _deal(rng, n, ARCHETYPES, m)
        locale, age = _deal(rng, n, LOCALE_SHARES, m), _deal(rng, n, AGE_BANDS, m)
        older = [i for i in range(n) if kind[i] in _OLDER_KINDS]
        risk = ["fresh"] * n
        for i, state in zip(older, _deal(rng, len(older), RISK_STATES, m)):
            risk[i] = state
        rich = [i for i in older if kind[i] in _RICH_KINDS]
        traits = {
            "new": {i: r for r, i in enumerate(i for i in range(n) if kind[i] in _NEW_KINDS)},
            "losing": _pick(rng, older, 0.08, m),
            "concentrated": _pick(rng, older, 0.06, m),
            "margin": _pick(rng, [i for i in range(n) if kind[i] in _MARGIN_KINDS], 0.08, 3 * m),
            "outflow": _pick(rng, [i for i in older if kind[i] != "dead"], 0.03, m),
            "birthday": _pick(rng, list(range(n)), 0.01, m),
            "mispriced": _pick(rng, rich, 0.01, m),
            "drift": _pick(rng, [i for i in older if risk[i] == "fresh" and kind[i] != "dead"], 0.03, m),
            "downgrade": _pick(rng, [i for i in older if kind[i] == "regular"], 0.03, m),
            "related": _pick(rng, older, 0.01, m),
        }
        margin = traits["margin"]
        traits["margin_ready"] = _pick(rng, [i for i in rich if i not in margin and risk[i] == "fresh"
                                             and i not in traits["related"]], 0.08, m)
        return cls(kind, locale, age, risk, traits)


# ------------------------------------------------------------------ names and market


class _Names:
    """Name pools per locale, drawn from seeded Faker instances, combined with the book's rng."""

    def __init__(self, seed: int) -> None:
        self.pools: dict[str, tuple[list[str], list[str]]] = {}
        for loc, fl in _FAKER_LOCALES.items():
            fake = Faker(fl)
            fake.seed_instance(seed)
            size = 400 if loc.startswith("zh") else 150
            self.pools[loc] = ([fake.last_name() for _ in range(size)], [fake.first_name() for _ in range(size)])

    def name(self, rng: random.Random, locale: str) -> str:
        last, first = self.pools[locale]
        if locale.startswith("zh"):
            return _one(rng, last) + _one(rng, first)
        return f"{_one(rng, first)} {_one(rng, last)}"


@dataclass
class Market:
    as_of: date
    days: list[date]
    """Trading days within WINDOW_DAYS before as_of, oldest first; the last is the snapshot day."""
    close: dict[str, float] = field(default_factory=dict)
    prev: dict[str, float] = field(default_factory=dict)
    by_price: list[str] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    old: list[date] = field(default_factory=list)
    """Trading days 61 to WINDOW_DAYS calendar days back (the last trades of dormant clients)."""
    mid: list[date] = field(default_factory=list)
    """Trading days 21 to 59 calendar days back."""
    recent: list[date] = field(default_factory=list)
    """Trading days 1 to 29 calendar days back (new accounts open on them)."""

    @classmethod
    def make(cls, rng: random.Random, as_of: date, days: list[date]) -> Market:
        m = cls(as_of, days)
        movers = set(rng.sample(range(len(SYMBOLS)), 3))
        for k, (sym, _name, base) in enumerate(SYMBOLS):
            close = round(base * math.exp(rng.gauss(0, 0.08)), 2)
            move = rng.choice((-1, 1)) * rng.uniform(0.07, 0.10) if k in movers else rng.gauss(0, 0.015)
            m.close[sym], m.prev[sym] = close, round(close / (1 + move), 2)
        m.by_price = sorted(m.close, key=lambda s: (m.close[s], s))
        m.prices = [m.close[s] for s in m.by_price]
        m.old, m.mid, m.recent = m.days_between(61, WINDOW_DAYS), m.days_between(21, 59), m.days_between(1, 29)
        return m

    @property
    def d0(self) -> date:
        return self.days[-1]

    @property
    def d1(self) -> date:
        return self.days[-2]

    def affordable(self, rng: random.Random, amount: float) -> str | None:
        """A symbol of which one lot (100 shares) costs at most `amount`."""
        k = bisect.bisect_right(self.prices, amount / 100)
        return self.by_price[int(rng.random() * k)] if k else None

    def affordable_high_risk(self, rng: random.Random, amount: float) -> str | None:
        """An R4 symbol (ChiNext, STAR) of which one lot costs at most `amount`."""
        fits = [s for s in R4_SYMBOLS if self.close[s] * 100 <= amount]
        return _one(rng, fits) if fits else self.affordable(rng, amount)

    def days_between(self, lo: int, hi: int) -> list[date]:
        """Trading days from `hi` to `lo` calendar days before as_of."""
        return [d for d in self.days if lo <= (self.as_of - d).days <= hi]


# ------------------------------------------------------------------ one client


def _same_day(day: date, year: int) -> date:
    try:
        return date(year, day.month, day.day)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _lognormal(rng: random.Random, mu: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, math.exp(rng.gauss(mu, sigma))))


def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


_VALUE: dict[str, Callable[[random.Random], float]] = {
    "new": lambda r: _lognormal(r, 10.6, 1.0, 3_000, 2_000_000),
    "onboarding": lambda r: _lognormal(r, 10.6, 1.0, 3_000, 2_000_000),
    "dormant": lambda r: _lognormal(r, 11.8, 0.9, 55_000, 5_000_000),
    "dead": lambda r: _loguniform(r, 300, 45_000),
    "settled": lambda r: _loguniform(r, 8_000, 45_000),
    "regular": lambda r: _lognormal(r, 11.2, 1.1, 2_000, 5_500_000),
    "active": lambda r: _lognormal(r, 12.2, 0.9, 60_000, 5_500_000),
    "core": lambda r: _loguniform(r, 600_000, 5_500_000),
    "hnw": lambda r: _loguniform(r, 6_500_000, 40_000_000),
}


class ClientMaker:
    """Builds the rows of one client at a time from the shared seeded rng."""

    def __init__(self, rng: random.Random, seed: int, n: int, market: Market, risk_cfg: RiskConfig,
                 weeks: int = 0) -> None:
        self.rng, self.n, self.m, self.risk_cfg = rng, n, market, risk_cfg
        self.week_ends = sorted({max(d for d in market.days if d <= market.as_of - timedelta(days=7 * k))
                                 for k in range(1, weeks + 1)} - {market.d0, market.d1})
        """Earlier week ends with a snapshot of holdings and cash (weekly reviews)."""
        self.plan = _Plan.deal(rng, n)
        self.names = _Names(seed)
        self.width = max(6, len(str(n)))
        self.n_adv = max(3, round(n / 200))
        self.n_sup = max(1, self.n_adv // 8)
        self.adv_width = max(3, len(str(self.n_adv)))
        t = self.plan.traits
        self.margin, self.losing, self.concentrated = t["margin"], t["losing"], t["concentrated"]
        self.outflow, self.birthday, self.new = t["outflow"], t["birthday"], t["new"]
        self.mispriced, self.drift, self.downgrade = t["mispriced"], t["drift"], t["downgrade"]
        self.margin_ready, self.related = t["margin_ready"], t["related"]
        # Traits added later draw from their own rng, so books of earlier seeds stay as they were.
        self.rng2 = random.Random(seed * 7919 + 15)
        n2 = 2 if n >= 50 else 0
        kinds = self.plan.kind
        self.anniversary = _pick(self.rng2, [i for i in range(n) if kinds[i] == "active"], 0.03, n2)
        self.activation = _pick(self.rng2, [i for i in range(n) if kinds[i] == "dormant"], 0.04, 2 * n2)
        self.large_holder = _pick(self.rng2, [i for i in range(n) if kinds[i] == "hnw"], 0.5, n2)
        regular = [i for i in range(n) if kinds[i] == "regular" and i not in self.plan.traits["drift"]
                   and i not in self.plan.traits["concentrated"] and i not in self.downgrade]
        self.scattered = _pick(self.rng2, regular, 0.02, n2)
        self.cash_heavy = _pick(self.rng2, [i for i in regular if i not in self.scattered], 0.02, n2)
        self.left = _pick(self.rng2, [i for i in range(n) if kinds[i] == "dead"], 0.05, n2)
        self.pleased = _pick(self.rng2, [i for i in range(n) if kinds[i] == "core"], 0.3, n2)
        self.follow_up = _pick(self.rng2, [i for i in range(n) if kinds[i] in ("regular", "active", "core")], 0.02, n2)

    def advisors(self) -> list[dict[str, Any]]:
        out = []
        w = self.adv_width
        for k in range(self.n_adv):
            aid = f"A{k + 1:0{w}d}"
            sup = None if k < self.n_sup else f"A{k % self.n_sup + 1:0{w}d}"
            out.append({"id": aid, "name": self.names.name(self.rng, "zh-CN"), "email": f"{aid.lower()}@example.com",
                        "supervisor_id": sup, "daily_capacity": 10 if sup is None else 20})
        return out

    def client(self, i: int, out: Rows) -> None:
        rng, kind = self.rng, self.plan.kind[i]
        cid = f"C{i + 1:0{self.width}d}"
        adv = f"A{int(rng.random() * self.n_adv) + 1:0{self.adv_width}d}"
        row = self._identity(i, cid, kind, adv)
        out["client"].append(row)
        opened: date = row["opened_on"]
        value = self._value(i, kind)
        held = self._holdings(i, cid, kind, value, opened, out)
        self._trades(i, cid, kind, value, opened, held, out)
        self._movements(i, cid, kind, value, opened, out)
        self._margin(i, cid, out)
        self._contacts(i, cid, opened, adv, out)
        self._consents(cid, opened, row["email"] is not None, out)
        self._playbook(i, cid, kind, row, out)

    def _value(self, i: int, kind: str) -> float:
        rng, value = self.rng, _VALUE[kind](self.rng)
        if i in self.margin:
            value = max(value, rng.uniform(100_000, 300_000))
        if i in self.downgrade or i in self.drift:
            value = max(value, rng.uniform(100_000, 400_000))
        if i in self.margin_ready:
            value = max(value, rng.uniform(650_000, 3_000_000))
        if i in self.scattered or i in self.cash_heavy:
            value = max(value, self.rng2.uniform(400_000, 900_000))
        step = self.activation.get(i)
        if step is not None and step % 2 == 1:  # high current value: the advisor's visit is not self-service
            value = max(value, self.rng2.uniform(550_000, 2_000_000))
        return value

    def _playbook(self, i: int, cid: str, kind: str, row: dict[str, Any], out: Rows) -> None:
        """Risk assessment (scored answers), client profile and AML review rows."""
        rng, as_of = self.rng, self.m.as_of
        if row["risk_assessed_on"] is not None:
            out["risk_assessment"].append(demo_playbook.assessment_row(
                rng, i + 1, cid, row["risk_assessed_on"], row["birth_date"], i in self.drift, self.risk_cfg))
        if i in self.related or rng.random() < 0.6 or i in self.margin_ready:
            prof = demo_playbook.profile_row(rng, cid, kind, i in self.related)
            prof.update(demo_playbook.margin_fields(self.rng2, i in self.margin_ready))
            out["client_profile"].append(prof)
        rank = self.outflow.get(i)
        if rank is not None and rank % 4 == 1:
            out["aml_review"].append(demo_playbook.aml_row(rng, cid, as_of, still_open=True))
        elif rank is None and rng.random() < 0.003:
            out["aml_review"].append(demo_playbook.aml_row(rng, cid, as_of, still_open=False))

    def _identity(self, i: int, cid: str, kind: str, adv: str) -> dict[str, Any]:
        rng, p, locale = self.rng, self.plan, self.plan.locale[i]
        opened = self._opened(kind, p.risk[i])
        if i in self.margin_ready:
            opened = min(opened, self.m.as_of - timedelta(days=_int(rng, 250, 900)))
        if i in self.anniversary:  # the account's anniversary falls on the evaluation date
            years = max(2, round((self.m.as_of - opened).days / 365))
            opened = _same_day(self.m.as_of, self.m.as_of.year - years)
        level = _weighted(rng, RISK_LEVELS, _RISK_CUM) if i not in self.margin_ready else _one(rng, ("C4", "C5"))
        assessed = self._assessed(opened, p.risk[i])
        zh = locale.startswith("zh")
        return {
            "id": cid, "name": self.names.name(rng, locale), "birth_date": self._birth(i),
            "locale": locale, "phone": f"1{_one(rng, '3589')}{int(rng.random() * 1e9):09d}" if rng.random() < 0.95 else None,
            "email": f"{cid.lower()}@example.com" if rng.random() < (0.3 if zh else 0.8) else None,
            "opened_on": opened, "advisor_id": adv,
            "risk_level": level if assessed else None,
            "lowest_category": bool(assessed) and level == "C1" and rng.random() < 0.4,  # C4/C5 never lowest
            "risk_assessed_on": assessed,
        }

    def _opened(self, kind: str, risk: str) -> date:
        if kind == "new":
            return _one(self.rng, self.m.recent)
        if kind == "onboarding":
            return _one(self.rng, self.m.days_between(31, 40))
        days = int(_loguniform(self.rng, 130, 6_000))
        return self.m.as_of - timedelta(days=max(days, 800) if risk == "stale" else days)

    def _assessed(self, opened: date, risk: str) -> date | None:
        as_of = self.m.as_of
        if risk == "missing":
            return None
        if risk == "stale":
            return as_of - timedelta(days=_int(self.rng, 731, (as_of - opened).days))
        since = max(opened, as_of - timedelta(days=700))
        return since + timedelta(days=_int(self.rng, 0, (as_of - since).days))

    def _birth(self, i: int) -> date:
        rng, as_of = self.rng, self.m.as_of
        lo, hi = AGE_RANGES["senior" if self._senior_buyer(i) else self.plan.age[i]]
        year = as_of.year - _int(rng, lo, hi)
        rank = self.birthday.get(i)
        if rank is None:
            return date(year, 1, 1) + timedelta(days=int(rng.random() * 365))
        near = as_of + timedelta(days=rank % 9 - 2)  # from two days before to six after
        try:
            return date(year, near.month, near.day)
        except ValueError:  # 29 February in a common year
            return date(year, 2, 28)

    def _positions(self, i: int, kind: str) -> tuple[list[float], float]:
        """Weights of the positions and the cash share of the client's value."""
        weights, cash = self._drawn_positions(i, kind)
        if i in self.cash_heavy:  # most of the account idle in cash
            return weights, 0.65 + 0.25 * self.rng2.random()
        return weights, cash

    def _drawn_positions(self, i: int, kind: str) -> tuple[list[float], float]:
        rng = self.rng
        if i in self.concentrated:
            return ([1.0] if rng.random() < 0.5 else [0.8, 0.2]), rng.uniform(0.02, 0.15)
        if i in self.drift:  # one large high-risk position (placed first by _holdings)
            return [3.0, 0.5, 0.5], rng.uniform(0.03, 0.1)
        if (kind == "dead" and rng.random() < 0.5) or (kind in _NEW_KINDS and rng.random() < 0.3):
            return [], 1.0
        n = _weighted(rng, POSITIONS, _POSITIONS_CUM)
        weights = [0.6 + 0.8 * rng.random() for _ in range(n)]
        cash = rng.uniform(0.3, 0.9) if kind in _NEW_KINDS else rng.uniform(0.03, 0.35)
        return weights, cash

    def _holdings(self, i: int, cid: str, kind: str, value: float, opened: date, out: Rows) -> list[str]:
        rng, m = self.rng, self.m
        weights, cash = self._positions(i, kind)
        total, losing = sum(weights), i in self.losing
        qty: dict[str, float] = {}
        for k, w in enumerate(weights):
            amount = value * (1 - cash) * w / total
            sym = m.affordable(rng, amount) if k or i not in self.drift else m.affordable_high_risk(rng, amount)
            if sym is None:
                continue
            qty[sym] = qty.get(sym, 0.0) + max(1, round(amount / m.close[sym] / 100)) * 100.0
        h = out["holding"]
        for sym, q in qty.items():
            r = -0.24 - 0.31 * rng.random() if losing else min(1.2, max(-0.17, rng.gauss(0.04, 0.16)))
            cost = round(m.close[sym] / (1 + r), 3)
            h.append({"as_of": m.d0, "client_id": cid, "symbol": sym, "quantity": q, "cost": cost,
                      "close_price": m.close[sym]})
            if opened <= m.d1:
                h.append({"as_of": m.d1, "client_id": cid, "symbol": sym, "quantity": q, "cost": cost,
                          "close_price": m.prev[sym]})
        demo_history.weekly(self, cid, opened, qty, value * cash, out)
        if i in self.scattered:  # many tiny holdings on top: over-diversified
            for sym in self.rng2.sample([x for x in m.by_price if x not in qty and m.close[x] * 100 <= value * 0.007], 12):
                q = 100.0 * max(1, round(value * self.rng2.uniform(0.002, 0.007) / m.close[sym] / 100))
                for day, close in ((m.d0, m.close[sym]), (m.d1, m.prev[sym])):
                    h.append({"as_of": day, "client_id": cid, "symbol": sym, "quantity": q, "cost": m.close[sym],
                              "close_price": close})
        if i in self.large_holder:  # close to 5% of a small listed company
            sym, _name, close = demo_playbook.SMALL_CAP
            q = round(demo_playbook.SMALL_CAP_SHARES * self.rng2.uniform(0.041, 0.049), -2)
            for day in (m.d0, m.d1):
                h.append({"as_of": day, "client_id": cid, "symbol": sym, "quantity": q, "cost": close, "close_price": close})
        out["cash_balance"].append({"as_of": m.d0, "client_id": cid, "amount": round(value * cash, 2)})
        return list(qty)

    def _trade_days(self, kind: str, opened: date) -> tuple[list[date], float, float]:
        """Trade dates and the range of one trade's amount as a share of the client's value."""
        rng, m = self.rng, self.m
        last20 = m.days[-20:]
        if kind in _NEW_KINDS:
            return _some(rng, m.days[bisect.bisect_left(m.days, opened):], _int(rng, 0, 3)), 0.05, 0.3
        if kind in ("dormant", "dead"):
            k = _int(rng, 1, 3) if rng.random() < (0.7 if kind == "dormant" else 0.2) else 0
            return _some(rng, m.old, k), 0.02, 0.2
        if kind == "settled":
            return _some(rng, last20, _int(rng, 4, 8)), 0.3, 1.0
        if kind == "regular":
            return _some(rng, m.mid, _int(rng, 1, 4)), 0.02, 0.15
        if kind == "active":
            return _some(rng, last20, _int(rng, 2, 5)) + _some(rng, m.days, _int(rng, 1, 4)), 0.05, 0.3
        if kind == "core":
            return _some(rng, last20, _int(rng, 8, 18)) + _some(rng, m.days, 2), 0.15, 0.45
        return _some(rng, m.days, _int(rng, 2, 8)), 0.02, 0.1

    def _trades(self, i: int, cid: str, kind: str, value: float, opened: date, held: list[str], out: Rows) -> None:
        rng, m = self.rng, self.m
        days, lo, hi = self._trade_days(kind, opened)
        floor = {}  # day -> smallest amount of that day's trade
        if i in self.downgrade:  # last trade on the first day of yesterday's activity window only
            days = [d for d in days if d < m.days[-21]] + [m.days[-21]]
            floor[m.days[-21]] = 15_000.0
        if i in self.margin_ready:  # trading at the firm for six months or more
            back = _int(rng, 190, min(400, (m.as_of - opened).days))
            days.append(demo_playbook.weekday_before(m.as_of - timedelta(days=back)))
        t = out["trade"]
        for k, d in enumerate(sorted(days)):
            target = max(3_000.0, floor.get(d, 0.0), value * (lo + (hi - lo) * rng.random()))
            sym = _one(rng, held) if held and rng.random() < 0.7 else m.affordable(rng, target) or m.by_price[0]
            price = round(m.close[sym] * (0.92 + 0.16 * rng.random()), 2)
            q = max(1, round(target / price / 100)) * 100.0
            side = "buy" if kind in _NEW_KINDS or rng.random() < 0.55 else "sell"
            t.append({"id": f"{cid}-T{k + 1:03d}", "client_id": cid, "trade_date": d, "symbol": sym,
                      "side": side, "quantity": q, "price": price, "amount": round(q * price, 2)})
        if i in self.mispriced and held:
            t.append(self._mispriced(cid, _one(rng, held), len(days) + 1))
        if self._senior_buyer(i) and held:
            d = m.days[-1 - _int(rng, 0, 2)]
            price = round(m.close[held[0]] * (0.98 + 0.04 * rng.random()), 2)
            t.append({"id": f"{cid}-T{len(days) + 2:03d}", "client_id": cid, "trade_date": d, "symbol": held[0],
                      "side": "buy", "quantity": 100.0, "price": price, "amount": round(100 * price, 2)})

    def _senior_buyer(self, i: int) -> bool:
        """A third of the drift population: aged 65+, bought their high-risk holding in the last days."""
        rank = self.drift.get(i)
        return rank is not None and rank % 3 == 0

    def _mispriced(self, cid: str, sym: str, k: int) -> dict[str, Any]:
        """A trade on the snapshot day priced far from the close (a 100-yuan bond sold at 1)."""
        rng, close = self.rng, self.m.close[sym]
        price = round(close * _one(rng, (0.01, rng.uniform(0.5, 0.75), rng.uniform(1.25, 1.5))), 2) or 0.01
        q = 100.0 * _int(rng, 1, 5)
        return {"id": f"{cid}-T{k:03d}", "client_id": cid, "trade_date": self.m.d0, "symbol": sym,
                "side": _one(rng, ("buy", "sell")), "quantity": q, "price": price, "amount": round(q * price, 2)}

    def _movements(self, i: int, cid: str, kind: str, value: float, opened: date, out: Rows) -> None:
        rng, as_of = self.rng, self.m.as_of
        rows: list[tuple[date, str, float]] = []
        if kind in _NEW_KINDS:
            rows.append((opened, "deposit", round(value, -2) or 1_000.0))
        if i in self.outflow:
            what = "transfer_out" if rng.random() < 0.6 else "withdrawal"
            rows.append((as_of - timedelta(days=_int(rng, 0, 19)), what, round(value * rng.uniform(0.3, 0.9), 2)))
        if kind not in _NEW_KINDS and rng.random() < 0.2:
            day = as_of - timedelta(days=_int(rng, 1, WINDOW_DAYS))
            rows.append((day, _one(rng, ("deposit", "withdrawal")), round(value * rng.uniform(0.02, 0.2), 2)))
        out["cash_movement"].extend(
            {"id": f"{cid}-M{k + 1:02d}", "client_id": cid, "moved_on": day, "kind": what, "amount": amount}
            for k, (day, what, amount) in enumerate(rows)
        )

    def _margin(self, i: int, cid: str, out: Rows) -> None:
        rank = self.margin.get(i)
        if rank is None:
            return
        rng, band = self.rng, rank % 8
        ratio = rng.uniform(1.05, 1.29) if band == 0 else rng.uniform(1.30, 1.49) if band < 3 else rng.uniform(1.5, 3.8)
        days = _int(rng, 1, 30) if rank % 4 == 1 else _int(rng, 31, 180)
        out["margin_snapshot"].append({"as_of": self.m.d0, "client_id": cid, "maintenance_ratio": round(ratio, 3),
                                       "contract_expiry": self.m.as_of + timedelta(days=days)})

    def _contacts(self, i: int, cid: str, opened: date, adv: str, out: Rows) -> None:
        rng, as_of = self.rng, self.m.as_of
        rank = self.new.get(i)
        row: dict[str, Any] | None = None
        if rank is not None and rank % 6 in (0, 1, 3):
            # a third reached, a sixth called without a recorded outcome, the rest not called yet
            # (new accounts and those at days 31-40 alike: the latter are overdue)
            day = min(as_of, opened + timedelta(days=_int(rng, 1, 3)))
            row = {"kind": "callback", "outcome": None if rank % 6 == 1 else "reached", "contacted_on": day}
        elif rank is None and rng.random() < 0.2:
            row = {"kind": _one(rng, ("call", "visit", "im", "review")),
                   "contacted_on": as_of - timedelta(days=_int(rng, 1, 180)),
                   "outcome": _one(rng, ("reached", "no_answer", "left_message"))}
        if row is not None:
            out["contact"].append({"id": f"{cid}-K01", "client_id": cid, "by_user": adv, **row})
        demo_history.records(self, i, cid, adv, out)
        step = self.activation.get(i)
        if step is not None:  # activation steps recorded in the firm's CRM before Steward ran
            done = (("dormant_activation", 20),) if step % 2 == 0 else (("dormant_activation", 45),
                                                                          ("dormant_research_share", 20))
            for k, (kind, back) in enumerate(done):
                out["contact"].append({"id": f"{cid}-A{k + 1:02d}", "client_id": cid, "by_user": adv, "kind": kind,
                                       "contacted_on": as_of - timedelta(days=back), "outcome": "sent"})

    def _consents(self, cid: str, opened: date, has_email: bool, out: Rows) -> None:
        rng, c = self.rng, out["consent"]
        at = datetime(opened.year, opened.month, opened.day, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
        later = at + timedelta(days=_int(rng, 0, max(0, (self.m.as_of - opened).days)))

        def add(channel: str, purpose: str, granted: bool, evidence: str) -> None:
            c.append({"client_id": cid, "channel": channel, "purpose": purpose,
                      "status": "granted" if granted else "opted_out", "recorded_at": at if granted else later,
                      "evidence": evidence if granted else "opt-out reply"})

        add("sms", "service", rng.random() >= 0.015, "account-opening form")
        x = rng.random()
        if x < 0.65:
            add("sms", "marketing", x < 0.6, "account-opening form")
        if has_email:
            add("email", "service", True, "account-opening form")
            if rng.random() < 0.5:
                add("email", "marketing", True, "app settings")
        if rng.random() < 0.25:
            add("im", "service", True, "app settings")

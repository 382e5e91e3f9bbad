"""Branch figures for a manager: what fired, what went out, what came of it, and the KPIs.

- firings, sends and suppressions per rule and per advisor over a period;
- call tasks: how many were completed and how many days the callback took
  (first recorded callback contact on or after the firing day);
- activation (a dormant client traded within `outcome_days` of an activation firing)
  and retention (no transfer-out within `outcome_days` of a retention firing);
- the KPIs of DOMAIN.md by week and segment: retained assets (market value at week end),
  churn rate (share of clients with assets at week start who have none at week end),
  new clients (accounts opened) and new assets (deposits). Segments come from the data as
  of each week: churn by the segment the client was in before the week, the other figures by
  the segment at the week's end (or the report's last day).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from engine.facts import base as facts_mod
from engine.config.base import Config
from engine.models import CashBalance, CashMovement, Client, Contact, Holding, Trade
from engine.pipeline.recording import FIRING

BLOCKED = ("suppressed", "held", "deferred", "dropped")
H, CB, MOV, CL, CON, TR = (getattr(m, "__table__") for m in (Holding, CashBalance, CashMovement, Client, Contact, Trade))


@dataclass
class Report:
    start: date
    end: date
    per_rule: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    per_advisor: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    tasks: int = 0
    tasks_done: int = 0
    callback_days: list[int] = field(default_factory=list)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """activation / retention -> firings, success."""
    kpis: list[dict[str, Any]] = field(default_factory=list)
    """One row per week and segment."""

    @property
    def callback_median_days(self) -> float | None:
        return median(self.callback_days) if self.callback_days else None


def _firings(conn: Connection, rep: Report, cfg: Config) -> list[Any]:
    rows = list(conn.execute(select(FIRING.c.id, FIRING.c.rule_id, FIRING.c.advisor_id, FIRING.c.client_id,
                                    FIRING.c.as_of, FIRING.c.action_type, FIRING.c.status)
                             .where(FIRING.c.as_of >= rep.start, FIRING.c.as_of <= rep.end)))
    sent = set(cfg.audit.supervision.sent_statuses)
    for r in rows:
        kind = "sent" if r.status in sent else "suppressed" if r.status in BLOCKED else None
        for bucket in (rep.per_rule[r.rule_id], rep.per_advisor[r.advisor_id or "-"]):
            bucket["fired"] += 1
            if kind:
                bucket[kind] += 1
    return rows


def _callbacks(conn: Connection, rep: Report, rows: list[Any], cfg: Config) -> None:
    tasks = [r for r in rows if r.action_type == "task"]
    rep.tasks = len(tasks)
    rep.tasks_done = sum(r.status in cfg.audit.supervision.done_statuses for r in tasks)
    if not tasks:
        return
    calls: dict[str, list[date]] = defaultdict(list)
    q = select(CON.c.client_id, CON.c.contacted_on).where(
        CON.c.kind == "callback", CON.c.outcome.is_not(None), CON.c.contacted_on >= rep.start,
        CON.c.client_id.in_({r.client_id for r in tasks}))
    for cid, day in conn.execute(q):
        calls[cid].append(day)
    for r in tasks:
        after = [d for d in calls.get(r.client_id, []) if d >= r.as_of]
        if after:
            rep.callback_days.append((min(after) - r.as_of).days)


def _outcomes(conn: Connection, rep: Report, rows: list[Any], kinds: dict[str, str], days: int) -> None:
    for kind in ("activation", "retention"):
        fired = [r for r in rows if kinds.get(r.rule_id) == kind and r.status not in BLOCKED]
        if not fired:
            continue
        ids = {r.client_id for r in fired}
        if kind == "activation":
            ev = conn.execute(select(TR.c.client_id, TR.c.trade_date).where(TR.c.client_id.in_(ids)))
        else:
            ev = conn.execute(select(MOV.c.client_id, MOV.c.moved_on).where(MOV.c.client_id.in_(ids), MOV.c.kind == "transfer_out"))
        seen: dict[str, list[date]] = defaultdict(list)
        for cid, d in ev:
            seen[cid].append(d)
        for r in fired:
            hit = any(r.as_of < d <= r.as_of + timedelta(days=days) for d in seen.get(r.client_id, []))
            rep.outcomes[kind]["firings"] += 1
            rep.outcomes[kind]["success"] += hit if kind == "activation" else not hit


def _assets_on(conn: Connection, day: date) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    hday = conn.execute(select(func.max(H.c.as_of)).where(H.c.as_of <= day)).scalar()
    cday = conn.execute(select(func.max(CB.c.as_of)).where(CB.c.as_of <= day)).scalar()
    if hday:
        for cid, v in conn.execute(select(H.c.client_id, func.sum(H.c.quantity * H.c.close_price))
                                   .where(H.c.as_of == hday).group_by(H.c.client_id)):
            out[cid] += float(v or 0)
    if cday:
        for cid, v in conn.execute(select(CB.c.client_id, CB.c.amount).where(CB.c.as_of == cday)):
            out[cid] += float(v or 0)
    return out


def _segments(conn: Connection, cfg: Config, day: date) -> dict[str, str]:
    return {f["client_id"]: f.get("segment") or "-" for batch in facts_mod.iter_batches(conn, cfg, day) for f in batch}


def _week_rows(conn: Connection, wk: date, end: date, seg: dict[str, str], seg_before: dict[str, str]
               ) -> list[dict[str, Any]]:
    before, after = _assets_on(conn, wk - timedelta(days=1)), _assets_on(conn, end)
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    values: dict[str, float] = defaultdict(float)
    for cid, v in after.items():
        values[seg.get(cid, "-")] += v
    for cid, v in before.items():
        if v > 0:
            rows[seg_before.get(cid, "-")]["with_assets"] += 1
            rows[seg_before.get(cid, "-")]["churned"] += after.get(cid, 0.0) <= 0
    for (cid,) in conn.execute(select(CL.c.id).where(CL.c.opened_on >= wk, CL.c.opened_on <= end)):
        rows[seg.get(cid, "-")]["new_clients"] += 1
    deposits = conn.execute(select(MOV.c.client_id, func.sum(MOV.c.amount)).where(
        and_(MOV.c.kind == "deposit", MOV.c.moved_on >= wk, MOV.c.moved_on <= end)).group_by(MOV.c.client_id))
    new_assets: dict[str, float] = defaultdict(float)
    for cid, amount in deposits:
        new_assets[seg.get(cid, "-")] += float(amount or 0)
    out = []
    for s in sorted(set(rows) | set(values) | set(new_assets)):
        c = rows[s]
        out.append({"week": wk, "segment": s, "retained_assets": round(values[s], 2),
                    "churn_rate": c["churned"] / c["with_assets"] if c["with_assets"] else None,
                    "new_clients": c["new_clients"], "new_assets": round(new_assets[s], 2)})
    return out


def build(conn: Connection, cfg: Config, start: date, end: date, kinds: dict[str, str], outcome_days: int = 30) -> Report:
    """`kinds` maps rule ids to "activation" or "retention" (from rule tags)."""
    rep = Report(start, end)
    rows = _firings(conn, rep, cfg)
    _callbacks(conn, rep, rows, cfg)
    _outcomes(conn, rep, rows, kinds, outcome_days)
    wk = start - timedelta(days=start.weekday())
    seg_before = _segments(conn, cfg, wk - timedelta(days=1))
    while wk <= end:
        last = min(end, wk + timedelta(days=6))
        seg = _segments(conn, cfg, last)
        rep.kpis += _week_rows(conn, wk, last, seg, seg_before)
        seg_before = seg
        wk += timedelta(days=7)
    return rep


def write_kpis_csv(rep: Report, path: Path) -> None:
    """The weekly KPI rows as CSV (week, segment, retained_assets, churn_rate, new_clients, new_assets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["week", "segment", "retained_assets", "churn_rate", "new_clients",
                                           "new_assets"], lineterminator="\n")
        w.writeheader()
        w.writerows({k: "" if v is None else v for k, v in row.items()} for row in rep.kpis)


def outcome_kinds(rules: Any) -> dict[str, str]:
    """Rule id -> activation / retention, from the rules' tags."""
    out = {}
    for r in rules:
        tags = set(r.spec.tags)
        if "activation" in tags:
            out[r.id] = "activation"
        elif "retention" in tags:
            out[r.id] = "retention"
    return out

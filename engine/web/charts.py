"""Supervisor charts (Apache ECharts, vendored): firings, sends, suppressions by reason, callback
completion and segment KPIs over time.

The page gets one JSON document (`chart_data`) and draws it in the browser; every figure is
counted in SQL over the last `DAYS` days of data (ending on the newest firing day, not today, so
a demo book or an archive shows its own period). Segment KPIs come from the branch report
(engine.supervision.report), weekly, over the last `KPI_WEEKS` weeks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine import clock as engine_clock
from engine.config.base import Config
from engine.dispatch.outbox import OUTBOX
from engine.pipeline.recording import FIRING
from engine.supervision import report
from engine.web.app import console, render

DAYS = 60
KPI_WEEKS = 8
SENT_STATES = ("sent", "delivered")


def _stacked(rows: Iterable[Any], days: list[str]) -> list[dict[str, Any]]:
    """(day, name, n) rows -> one stacked bar series per name over `days`."""
    by: dict[str, dict[str, int]] = defaultdict(dict)
    for d, name, n in rows:
        by[str(name)][str(d)] = int(n)
    return [{"name": k, "type": "bar", "stack": "all", "data": [v.get(d, 0) for d in days]} for k, v in sorted(by.items())]


def _days(lo: date, hi: date) -> list[str]:
    return [str(lo + timedelta(days=i)) for i in range((hi - lo).days + 1)]


def chart_data(conn: Connection, cfg: Config) -> dict[str, Any]:
    hi = conn.execute(select(func.max(FIRING.c.as_of))).scalar() or engine_clock.now().astimezone(cfg.tz).date()
    lo = hi - timedelta(days=DAYS - 1)
    days = _days(lo, hi)
    in_range = FIRING.c.as_of.between(lo, hi)
    by_status = conn.execute(select(FIRING.c.as_of, FIRING.c.status, func.count()).where(in_range)
                             .group_by(FIRING.c.as_of, FIRING.c.status))
    sends = conn.execute(select(FIRING.c.as_of, OUTBOX.c.state, func.count())
                         .join(OUTBOX, OUTBOX.c.firing_id == FIRING.c.id).where(in_range)
                         .group_by(FIRING.c.as_of, OUTBOX.c.state))
    blocked = conn.execute(select(FIRING.c.as_of, FIRING.c.reason, func.count())
                           .where(in_range, FIRING.c.status.in_(report.BLOCKED), FIRING.c.reason.is_not(None))
                           .group_by(FIRING.c.as_of, FIRING.c.reason))
    done = set(cfg.audit.supervision.done_statuses)
    tasks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d, status, n in conn.execute(select(FIRING.c.as_of, FIRING.c.status, func.count())
                                     .where(in_range, FIRING.c.action_type == "task")
                                     .group_by(FIRING.c.as_of, FIRING.c.status)):
        tasks[str(d)][0] += int(n)
        tasks[str(d)][1] += int(n) if status in done else 0
    return {"days": days, "zone": cfg.timezone,
            "firings": _stacked(by_status, days),
            "sends": _stacked(sends, days),
            "suppressions": _stacked(blocked, days),
            "callbacks": {"tasks": [tasks[d][0] if d in tasks else 0 for d in days],
                          "done_pct": [round(100 * tasks[d][1] / tasks[d][0], 1) if tasks.get(d, [0])[0] else None
                                       for d in days]},
            "kpis": _kpis(conn, cfg, hi)}


def _kpis(conn: Connection, cfg: Config, hi: date) -> dict[str, Any]:
    """Weekly retained assets and churn rate per segment (the branch report's KPI rows)."""
    start = hi - timedelta(days=7 * KPI_WEEKS - 1)
    rows = report.build(conn, cfg, start, hi, {}).kpis
    weeks = sorted({str(r["week"]) for r in rows})
    segs = sorted({str(r["segment"]) for r in rows})
    val = {(str(r["week"]), str(r["segment"])): r for r in rows}

    def series(key: str, scale: float) -> list[dict[str, Any]]:
        return [{"name": s, "type": "line", "data": [None if (v := val.get((w, s), {}).get(key)) is None
                                                     else round(float(v) * scale, 2) for w in weeks]} for s in segs]
    return {"weeks": weeks, "assets": series("retained_assets", 1.0), "churn": series("churn_rate", 100.0),
            "new_clients": series("new_clients", 1.0)}


def routes(app: FastAPI) -> None:
    @app.get("/charts", response_class=HTMLResponse)
    def charts(request: Request) -> Response:
        c = console(request)
        with c.engine.connect() as conn:
            data = chart_data(conn, c.cfg)
        return render(request, "charts.html", data=data)

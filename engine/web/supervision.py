"""Supervisor pages: firings with filters, totals, keyset paging and CSV export; one firing in full."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import func, select

from engine import clock as engine_clock
from engine.audit import log as auditlog
from engine.dispatch.outbox import OUTBOX
from engine.pipeline.recording import FIRING
from engine.web.app import console, render, user_of

PAGE = 50
FILTERS = ("rule", "status", "client", "advisor", "channel", "rule_class", "reason", "from", "to")
_COLUMNS = {"rule": FIRING.c.rule_id, "status": FIRING.c.status, "client": FIRING.c.client_id,
            "advisor": FIRING.c.advisor_id, "channel": FIRING.c.channel, "rule_class": FIRING.c.rule_class,
            "reason": FIRING.c.reason}
CSV_FIELDS = ("id", "as_of", "rule_id", "client_id", "advisor_id", "channel", "rule_class", "status", "reason",
              "locale", "subject", "message")


def neutralise(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (cells starting = + - @, tab or CR get a ')."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def _day(v: str | None) -> date | None:
    try:
        return date.fromisoformat(v) if v else None
    except ValueError:
        return None


def _query(params: dict[str, str]) -> Any:
    q = select(FIRING)
    for k, col in _COLUMNS.items():
        if params.get(k):
            q = q.where(col == params[k])
    if (lo := _day(params.get("from"))) is not None:
        q = q.where(FIRING.c.as_of >= lo)
    if (hi := _day(params.get("to"))) is not None:
        q = q.where(FIRING.c.as_of <= hi)
    return q


def routes(app: FastAPI) -> None:
    @app.get("/firings", response_class=HTMLResponse)
    def firings(request: Request) -> Response:
        params = {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}
        q = _query(params)
        before = request.query_params.get("before", "")
        with console(request).engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            page_q = q.order_by(FIRING.c.id.desc()).limit(PAGE + 1)
            if before.isdigit():
                page_q = page_q.where(FIRING.c.id < int(before))
            rows = list(conn.execute(page_q))
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        return render(request, "firings.html", rows=rows, total=total, params=params,
                      next_before=rows[-1].id if more else None, filters=FILTERS)

    @app.get("/firings.csv")
    def firings_csv(request: Request) -> Response:
        params = {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}
        eng = console(request).engine

        def lines() -> Iterator[str]:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(CSV_FIELDS)
            with eng.connect() as conn:
                for r in conn.execute(_query(params).order_by(FIRING.c.id.desc())):
                    w.writerow([neutralise(getattr(r, f)) for f in CSV_FIELDS])
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="firings.csv"'})

    @app.get("/charts", response_class=HTMLResponse)
    def charts(request: Request) -> Response:
        """Firings per day by status and held/suppressed firings by reason, over the last 60 days of data."""
        with console(request).engine.connect() as conn:
            last = conn.execute(select(func.max(FIRING.c.as_of))).scalar()
            lo = (last or engine_clock.now().date()) - timedelta(days=59)
            by_day = conn.execute(select(FIRING.c.as_of, FIRING.c.status, func.count()).where(FIRING.c.as_of >= lo)
                                  .group_by(FIRING.c.as_of, FIRING.c.status).order_by(FIRING.c.as_of)).all()
            by_reason = conn.execute(select(FIRING.c.reason, func.count()).where(
                FIRING.c.as_of >= lo, FIRING.c.reason.is_not(None)).group_by(FIRING.c.reason)
                .order_by(func.count().desc()).limit(15)).all()
        days = sorted({str(d) for d, _, _ in by_day})
        series: dict[str, dict[str, int]] = {}
        for d, status, n in by_day:
            series.setdefault(status, {})[str(d)] = int(n)
        data = {"days": days, "series": [{"name": s, "type": "bar", "stack": "all", "data": [v.get(d, 0) for d in days]}
                                         for s, v in sorted(series.items())],
                "reasons": [str(r) for r, _ in by_reason], "reason_counts": [int(n) for _, n in by_reason]}
        return render(request, "charts.html", data=data)

    @app.get("/clients/{cid}", response_class=HTMLResponse)
    def client(request: Request, cid: str) -> Response:
        """`steward why` in the browser: every rule for one client and day, with the failing condition."""
        from engine.compliance import review
        from engine.supervision import explain

        c = console(request)
        ruleset, _, approved = review.approved_ruleset(c.engine, c.cfg)
        with c.engine.begin() as conn:
            day = _day(request.query_params.get("day")) or conn.execute(select(func.max(FIRING.c.as_of))).scalar()
            if day is None:
                return render(request, "error.html", status=404, message="no evaluation has run yet: `steward run`")
            ex = explain.explain_client(conn, c.cfg, ruleset, cid, day)
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=user_of(request).name, client_id=cid, as_of=day,
                                                  data={"command": "console why", "facts": sorted(ex.facts)},
                                                  at=c.clock())])
        return render(request, "client.html", ex=ex, version=approved.version)

    @app.get("/firings/{fid}", response_class=HTMLResponse)
    def firing(request: Request, fid: int) -> Response:
        c = console(request)
        with c.engine.begin() as conn:
            row = conn.execute(select(FIRING).where(FIRING.c.id == fid)).first()
            if row is None:
                return render(request, "error.html", status=404, message=f"no firing {fid}")
            source = auditlog.get_blob(conn, row.rule_hash)
            sends = list(conn.execute(select(OUTBOX).where(OUTBOX.c.firing_id == fid).order_by(OUTBOX.c.id)))
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=user_of(request).name, client_id=row.client_id,
                                                  data={"command": "console firing", "firing": fid}, at=c.clock())])
        return render(request, "firing.html", f=row, source=source, sends=sends)

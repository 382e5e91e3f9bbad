"""Supervisor pages: firings with filters, totals, keyset paging, CSV and XLSX export; one firing in full.

Client ids, names, birth dates and phones pass through the signed-in role's masker (engine.web.masking)
on the pages and in both exports.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from sqlalchemy import func, select
from starlette.background import BackgroundTask

from engine import sheets
from engine.audit import facts_store
from engine.audit import log as auditlog
from engine.dispatch.outbox import OUTBOX
from engine.pipeline.recording import FIRING
from engine.errors import StewardError
from engine.web.app import console, render, user_of
from engine.web.masking import Masker, masker

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


XLSX_LIMIT = 1_048_575
"""Rows a worksheet holds under its header row."""


def _row_cells(r: Any, facts: dict[str, Any], m: Masker) -> list[Any]:
    """One export row: ids and names masked for the role, every text cell neutralised."""
    names = [facts.get("name")]
    shown = {"client_id": m.cid(r.client_id), "subject": m.text(r.subject, names), "message": m.text(r.message, names)}
    return [shown.get(f, getattr(r, f)) for f in CSV_FIELDS]


def _approved_rules(request: Request) -> tuple[Any, int]:
    """The approved rule set, loaded (and its snapshot verified) once per approved version, not per page."""
    from engine.compliance import review

    c = console(request)
    with c.engine.connect() as conn:
        now = review.current(conn)
    cached = getattr(request.app.state, "approved_rules", None)
    if now is not None and cached is not None and cached[0] == (now.version, now.content_hash):
        return cached[1], now.version
    ruleset, _, approved = review.approved_ruleset(c.engine, c.cfg)
    request.app.state.approved_rules = ((approved.version, approved.content_hash), ruleset)
    return ruleset, approved.version


def _params(request: Request) -> dict[str, str]:
    return {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}


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
        params = _params(request)
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
        return render(request, "firings.html", rows=rows, total=total, params=params, m=masker(user_of(request).roles),
                      next_before=rows[-1].id if more else None, filters=FILTERS)

    @app.get("/firings.csv")
    def firings_csv(request: Request) -> Response:
        params = _params(request)
        eng = console(request).engine
        m = masker(user_of(request).roles)

        def lines() -> Iterator[str]:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(CSV_FIELDS)
            with eng.connect() as conn:
                for r, facts in facts_store.pages(conn, conn.execute(_query(params).order_by(FIRING.c.id.desc()))):
                    w.writerow([neutralise(v) for v in _row_cells(r, facts, m)])
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="firings.csv"'})

    @app.get("/firings.xlsx")
    def firings_xlsx(request: Request) -> Response:
        """The same rows as the CSV in a workbook (openpyxl via engine.sheets: text cells neutralised)."""
        params = _params(request)
        eng = console(request).engine
        m = masker(user_of(request).roles)
        with eng.connect() as conn:
            n = conn.execute(select(func.count()).select_from(_query(params).subquery())).scalar_one()
            if n > XLSX_LIMIT:
                raise StewardError(f"{n:,} firings match: a worksheet holds {XLSX_LIMIT:,}; narrow the filter "
                                   "(days from/to, rule) or use Export CSV, which has no limit")
            fd, name = tempfile.mkstemp(suffix=".xlsx")
            os.close(fd)
            rows = (_row_cells(r, facts, m)
                    for r, facts in facts_store.pages(conn, conn.execute(_query(params).order_by(FIRING.c.id.desc()))))
            sheets.write_xlsx(Path(name), [("firings", CSV_FIELDS, rows)])
        return FileResponse(name, filename="firings.xlsx", background=BackgroundTask(os.unlink, name),
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @app.get("/clients/{cid}", response_class=HTMLResponse)
    def client(request: Request, cid: str) -> Response:
        """`steward why` in the browser: every rule for one client and day, with the failing condition."""
        from engine.supervision import explain

        c = console(request)
        ruleset, version = _approved_rules(request)
        with c.engine.begin() as conn:
            day = _day(request.query_params.get("day")) or conn.execute(select(func.max(FIRING.c.as_of))).scalar()
            if day is None:
                return render(request, "error.html", status=404, message="no evaluation has run yet: `steward run`")
            ex = explain.explain_client(conn, c.cfg, ruleset, cid, day)
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=user_of(request).name, client_id=cid, as_of=day,
                                                  data={"command": "console why", "facts": sorted(ex.facts)},
                                                  at=c.clock())])
        return render(request, "client.html", ex=ex, version=version, m=masker(user_of(request).roles))

    @app.get("/firings/{fid}", response_class=HTMLResponse)
    def firing(request: Request, fid: int) -> Response:
        c = console(request)
        with c.engine.begin() as conn:
            row = conn.execute(select(FIRING).where(FIRING.c.id == fid)).first()
            if row is None:
                return render(request, "error.html", status=404, message=f"no firing {fid}")
            source = auditlog.get_blob(conn, row.rule_hash)
            sends = list(conn.execute(select(OUTBOX).where(OUTBOX.c.firing_id == fid).order_by(OUTBOX.c.id)))
            snapshot = facts_store.one(conn, row)
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=user_of(request).name, client_id=row.client_id,
                                                  data={"command": "console firing", "firing": fid}, at=c.clock())])
        m = masker(user_of(request).roles)
        names = [snapshot.get("name")]
        return render(request, "firing.html", f=row, source=source, sends=sends, m=m, facts=m.facts(snapshot),
                      words=m.text(((row.subject + "\n") if row.subject else "") + (row.message or ""), names))

    # the other supervisor pages live in their own modules; registered here so app.py lists one module per role
    from engine.web import charts, oversight

    charts.routes(app)
    oversight.routes(app)

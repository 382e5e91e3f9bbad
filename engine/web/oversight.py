"""Supervisor pages: the supervision sample with decisions, and the audit chain's status.

The sample is engine.supervision.sampling's (drawn daily by `steward supervision sample`); a
decision goes through `sampling.decide`, which refuses the sender and anyone but the assigned
supervisor and writes `review.decided` in the same transaction. The chain page runs the same
checks as `steward audit verify` and shows the last published checkpoint (audit.checkpoint_file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from engine.audit import checkpoint, crosscheck, facts_store
from engine.audit import log as auditlog
from engine.errors import StewardError
from engine.pipeline.recording import FIRING
from engine.supervision import sampling
from engine.web.app import console, render, user_of
from engine.web.masking import masker

OPEN_LIMIT = 200
DECIDED_LIMIT = 50


def _sample_rows(request: Request, mine_only: bool) -> tuple[list[Any], list[Any], dict[int, str | None]]:
    """Open and decided reviews, and the client name of each open one (from its facts snapshot, to mask it)."""
    me = user_of(request).name
    cols = [sampling.REVIEW, FIRING.c.rule_id, FIRING.c.client_id, FIRING.c.channel, FIRING.c.subject,
            FIRING.c.message, FIRING.c.as_of, FIRING.c.facts, FIRING.c.facts_sha256]
    q = select(*cols).join(FIRING, FIRING.c.id == sampling.REVIEW.c.firing_id)
    if mine_only:
        q = q.where(sampling.REVIEW.c.supervisor_id == me)
    with console(request).engine.connect() as conn:
        open_ = list(conn.execute(q.where(sampling.REVIEW.c.decision.is_(None))
                                  .order_by(sampling.REVIEW.c.due_on, sampling.REVIEW.c.id).limit(OPEN_LIMIT)))
        decided = list(conn.execute(q.where(sampling.REVIEW.c.decision.is_not(None))
                                    .order_by(sampling.REVIEW.c.decided_at.desc(), sampling.REVIEW.c.id.desc())
                                    .limit(DECIDED_LIMIT)))
        names = {r.id: snap.get("name") for r, snap in zip(open_, facts_store.load(conn, open_))}
    return open_, decided, names


def _sample_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    c = console(request)
    me = user_of(request)
    mine_only = "supervisor" in me.roles and request.query_params.get("all") != "1"
    open_, decided, names = _sample_rows(request, mine_only)
    if open_ or decided:  # the sampled messages carry client names and words
        with c.engine.begin() as conn:
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=me.name, client_id=r.client_id,
                                                  data={"command": "console supervision", "review": r.id}, at=c.clock())
                                   for r in open_ + decided])
    return render(request, "supervision.html", status=status, error=error, open=open_, decided=decided, names=names,
                  mine_only=mine_only, decisions=sampling.DECISIONS, m=masker(me.roles),
                  today=c.clock().astimezone(c.cfg.tz).date())


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    broken: str | None
    mismatches: list[str]
    checkpoint: checkpoint.Checkpoint | None
    checkpoint_at: datetime | None
    checkpoint_error: str | None
    keyed: bool
    checkpoint_file: str


def chain_status(request: Request) -> ChainStatus:
    """`steward audit verify`, for the page: the walk, the cross-check and the latest checkpoint."""
    c = console(request)
    key = auditlog.audit_key()
    cp, cp_error = None, None
    try:
        cp = checkpoint.latest(c.cfg.path(c.cfg.audit.checkpoint_file), key)
    except StewardError as e:
        cp_error = str(e)
    with c.engine.connect() as conn:
        res = auditlog.verify(conn, [(cp.seq, cp.hash)] if cp else [], key)
        problems = crosscheck.cross_check(conn) if res.ok else []
    at = datetime.fromisoformat(cp.at) if cp else None
    return ChainStatus(res.ok and not problems and cp_error is None, res.events, res.head_seq, res.head_hash,
                       str(res.broken) if res.broken else None, problems[:crosscheck.LIMIT], cp, at, cp_error,
                       key is not None, c.cfg.audit.checkpoint_file)


def routes(app: FastAPI) -> None:
    @app.get("/supervision", response_class=HTMLResponse)
    def supervision(request: Request) -> Response:
        return _sample_page(request)

    @app.post("/supervision/decide", response_class=HTMLResponse)
    async def decide(request: Request) -> Response:
        c = console(request)
        form = await request.form()
        rid = str(form.get("review", ""))
        try:
            if not rid.isdigit():
                raise StewardError(f"review: expected a review number, got {rid!r}")
            with c.engine.begin() as conn:
                sampling.decide(conn, int(rid), user_of(request).name, str(form.get("decision", "")),
                                str(form.get("comment", "")).strip() or None)
        except StewardError as e:
            return _sample_page(request, status=400, error=str(e))
        return RedirectResponse("/supervision", status_code=303)

    @app.get("/audit/chain", response_class=HTMLResponse)
    def chain(request: Request) -> Response:
        return render(request, "chain.html", s=chain_status(request))

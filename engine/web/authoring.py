"""Author pages: edit a rule and its four templates in the browser, check as you type (htmx), preview the
message against a chosen client's real facts, save a draft and submit it as a proposal.

The draft lives in the proposal store (engine.compliance.drafts), never in the rules folders or an approved
snapshot: nothing edited here runs before a compliance reviewer approves it. Only YAML rules and sandboxed
templates are loaded in this process; Python rule files are not editable in the console.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from engine.audit import log as auditlog
from engine.compliance import drafts
from engine.errors import StewardError
from engine.facts import base as facts_mod
from engine.models import Client
from engine.pipeline.recording import RUN
from engine.pipeline.run import advisors_of
from engine.web.app import console, render, user_of

CLIENT = Client.__table__  # type: ignore[attr-defined]
PICK_CLIENTS = 50
"""How many client ids the preview's chooser suggests (any id may be typed)."""


def _edit_of(form: Any) -> drafts.Edit:
    rule = str(form.get("rule", ""))
    if not rule:
        raise StewardError("rule: choose a rule file to edit from the Author page")
    return drafts.Edit(rule, str(form.get("rule_text", "")).replace("\r\n", "\n"),
                       {loc: str(form.get(f"tpl_{loc}", "")).replace("\r\n", "\n") for loc in drafts.LOCALES})


def _base(request: Request) -> tuple[dict[str, bytes], int | None]:
    c = console(request)
    with c.engine.connect() as conn:
        return drafts.base_files(conn, c.cfg)


def _default_day(request: Request) -> date:
    c = console(request)
    with c.engine.connect() as conn:
        latest = conn.execute(select(func.max(RUN.c.as_of)).where(RUN.c.mode == "run")).scalar()
    return latest if latest is not None else c.clock().astimezone(c.cfg.tz).date()


def _check(request: Request, form: Any) -> Response:
    c = console(request)
    edit = _edit_of(form)
    _, problems = drafts.check(c.cfg, _base(request)[0], edit)
    return render(request, "author_check.html", problems=problems)


def _preview(request: Request, form: Any) -> Response:
    c = console(request)
    edit = _edit_of(form)
    ruleset, problems = drafts.check(c.cfg, _base(request)[0], edit)
    client_id = str(form.get("client", "")).strip()
    if ruleset is None or any(p.severity == "error" for p in problems):
        return render(request, "author_preview.html", status=400, message="fix the errors above first, then preview")
    if not client_id:
        return render(request, "author_preview.html", status=400, message="client: type a client id to preview for")
    try:
        day = date.fromisoformat(str(form.get("day", "")).strip())
    except ValueError:
        return render(request, "author_preview.html", status=400,
                      message=f"day: expected a date as YYYY-MM-DD, got {form.get('day', '')!r}")
    with c.engine.begin() as conn:
        facts = facts_mod.facts_for(conn, c.cfg, day, client_id)
        if facts is None:
            return render(request, "author_preview.html", status=404,
                          message=f"no client {client_id!r} with an account open on {day}")
        advisors = advisors_of(conn)
        auditlog.append(conn, [auditlog.Event("client.viewed", actor=user_of(request).name, client_id=client_id,
                                              as_of=day, data={"page": "author preview", "rule": edit.rule_path})])
    result = drafts.preview(ruleset, facts, advisors, day)
    return render(request, "author_preview.html", result=result, client_id=client_id, day=day, message=None)


def _edit_page(request: Request, rule: str, edit: drafts.Edit | None = None, error: str | None = None,
               status: int = 200) -> Response:
    c = console(request)
    base, version = _base(request)
    with c.engine.connect() as conn:
        row = drafts.open_draft(conn, user_of(request).name, rule)
        if edit is None:
            edit = drafts.draft_edit(conn, c.cfg, row) if row is not None else drafts.edit_of(c.cfg, base, rule)
        clients = [r[0] for r in conn.execute(select(CLIENT.c.id).order_by(CLIENT.c.id).limit(PICK_CLIENTS))]
    stale = row is not None and row.base_version != version
    return render(request, "author_edit.html", status=status, edit=edit, draft=row, version=version, stale=stale,
                  locales=drafts.LOCALES, clients=clients, day=_default_day(request),
                  saved=request.query_params.get("saved"), error=error)


def routes(app: FastAPI) -> None:
    @app.get("/author", response_class=HTMLResponse)
    def author_home(request: Request) -> Response:
        c = console(request)
        base, version = _base(request)
        with c.engine.connect() as conn:
            mine = drafts.drafts_of(conn, user_of(request).name)
        return render(request, "author.html", rules=drafts.rule_paths(c.cfg, base), version=version, drafts=mine)

    @app.get("/author/edit", response_class=HTMLResponse)
    def author_edit(request: Request) -> Response:
        return _edit_page(request, request.query_params.get("rule", ""))

    @app.post("/author/check", response_class=HTMLResponse)
    async def author_check(request: Request) -> Response:
        return _check(request, await request.form())

    @app.post("/author/preview", response_class=HTMLResponse)
    async def author_preview(request: Request) -> Response:
        return _preview(request, await request.form())

    @app.post("/author/save", response_class=HTMLResponse)
    async def author_save(request: Request) -> Response:
        c = console(request)
        edit = _edit_of(await request.form())
        drafts.save(c.engine, c.cfg, user_of(request).name, edit)
        return RedirectResponse(f"/author/edit?rule={edit.rule_path}&saved=1", status_code=303)

    @app.post("/author/submit", response_class=HTMLResponse)
    async def author_submit(request: Request) -> Response:
        c = console(request)
        form = await request.form()
        edit = _edit_of(form)
        note = str(form.get("note", ""))
        me = user_of(request).name
        try:
            if not note.strip():
                raise StewardError("note: say what changed and why; the reviewer reads it")
            did = drafts.save(c.engine, c.cfg, me, edit)
            sub = drafts.submit(c.engine, c.cfg, me, did, note)
        except StewardError as e:
            return _edit_page(request, edit.rule_path, edit, error=str(e), status=400)
        return RedirectResponse(f"/reviews/{sub.proposal_id}", status_code=303)

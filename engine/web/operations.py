"""Advisor call tasks, the operator's outbox and dead letters, and the admin's users and roles."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.audit import log as auditlog
from engine.compliance import auth, users
from engine.dispatch.outbox import OUTBOX, retry_dead
from engine.errors import StewardError
from engine.models import Client
from engine.pipeline.recording import FIRING
from engine.servicing.task_outcomes import OUTCOMES, record_outcome
from engine.web.app import console, render, user_of
from engine.web.masking import mask_phone, masker

CLIENT = Client.__table__  # type: ignore[attr-defined]


def _calls(request: Request, status: int = 200, error: str | None = None) -> Response:
    me = user_of(request)
    with console(request).engine.begin() as conn:
        rows = list(conn.execute(
            select(FIRING.c.id, FIRING.c.client_id, FIRING.c.rule_id, FIRING.c.message, FIRING.c.due_on,
                   FIRING.c.priority, CLIENT.c.name, CLIENT.c.phone)
            .join(CLIENT, CLIENT.c.id == FIRING.c.client_id)
            .where(FIRING.c.action_type == "task", FIRING.c.status == "open",
                   FIRING.c.advisor_id == (me.advisor_id or "\0"))
            .order_by(FIRING.c.priority.desc(), FIRING.c.due_on, FIRING.c.id)))
        if rows:  # names and (masked) phones of these clients were shown
            auditlog.append(conn, [auditlog.Event("client.viewed", actor=me.name, client_id=r.client_id,
                                                  data={"command": "console calls", "task": r.id},
                                                  at=console(request).clock()) for r in rows])
    return render(request, "calls.html", status=status, rows=rows, mask=mask_phone, outcomes=list(OUTCOMES),
                  error=error, advisor=me.advisor_id)


def _gateway_missing(request: Request) -> list[str]:
    cfg = console(request).cfg
    return [] if cfg.dispatch.gateway.url else ["sms"]


def routes(app: FastAPI) -> None:
    @app.get("/calls", response_class=HTMLResponse)
    def calls(request: Request) -> Response:
        return _calls(request)

    @app.post("/calls/{entry_id}/outcome", response_class=HTMLResponse)
    async def outcome(request: Request, entry_id: int) -> Response:
        c = console(request)
        form = await request.form()
        me = user_of(request)
        with c.engine.begin() as conn:
            owner = conn.execute(select(FIRING.c.advisor_id).where(FIRING.c.id == entry_id)).scalar()
            if owner is None or owner != me.advisor_id:
                return _calls(request, status=404, error=f"no task {entry_id} on your list")
            try:
                record_outcome(conn, entry_id, str(form.get("outcome", "")), me.name, c.clock().astimezone(c.cfg.tz).date(),
                               str(form.get("note", "")) or None)
            except StewardError as e:
                conn.rollback()
                return _calls(request, status=400, error=str(e))
        return RedirectResponse("/calls", status_code=303)

    @app.get("/outbox", response_class=HTMLResponse)
    def outbox(request: Request) -> Response:
        with console(request).engine.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state)).all())
            dead = list(conn.execute(select(OUTBOX).where(OUTBOX.c.state.in_(("dead", "uncertain")))
                                     .order_by(OUTBOX.c.id.desc()).limit(200)))
        return render(request, "outbox.html", counts=counts, dead=dead, missing=_gateway_missing(request),
                      m=masker(user_of(request).roles))

    @app.post("/outbox/retry")
    async def retry(request: Request) -> Response:
        c = console(request)
        form = await request.form()
        with c.engine.begin() as conn:
            for v in form.getlist("id"):
                if str(v).isdigit():
                    retry_dead(conn, int(str(v)), c.clock())
        return RedirectResponse("/outbox", status_code=303)

    @app.get("/admin/users", response_class=HTMLResponse)
    def admin_users(request: Request) -> Response:
        return _users(request)

    @app.post("/admin/users", response_class=HTMLResponse)
    async def add_user(request: Request) -> Response:
        form = await request.form()
        return _change(request, lambda conn, me: _add(conn, me, str(form.get("name", "")), form.getlist("role"),
                                                      str(form.get("advisor_id", "")) or None, request))

    @app.post("/admin/users/{name}/roles", response_class=HTMLResponse)
    async def set_roles(request: Request, name: str) -> Response:
        form = await request.form()
        wanted = {str(r) for r in form.getlist("role")}

        def go(conn: Connection, me: str) -> str | None:
            u = users.get(conn, name)
            if u is None:
                raise StewardError(f"no user {name!r}")
            for r in sorted(wanted - u.roles):
                users.grant(conn, me, name, r)
            for r in sorted(u.roles - wanted):
                users.revoke(conn, me, name, r)
            return None
        return _change(request, go)

    @app.post("/admin/users/{name}/active", response_class=HTMLResponse)
    async def set_active(request: Request, name: str) -> Response:
        form = await request.form()
        return _active(request, name, str(form.get("active", "")) == "1")

    from engine.web import scheduling  # the scheduler and calendar pages: one module of their own

    scheduling.routes(app)

    @app.post("/admin/users/{name}/password", response_class=HTMLResponse)
    async def reset(request: Request, name: str) -> Response:
        c = console(request)
        return _change(request, lambda conn, me: f"{users.canonical(name)}: "
                       + auth.reset_password(conn, me, name, c.clock()))


def _active(request: Request, name: str, active: bool) -> Response:
    def go(conn: Connection, me: str) -> str | None:
        users.set_active(conn, me, name, active)
        return None
    return _change(request, go)


def _add(conn: Connection, me: str, name: str, roles: Sequence[Any], advisor_id: str | None, request: Request) -> str:
    u = users.add(conn, me, name, [str(r) for r in roles], advisor_id=advisor_id)
    pw = auth.one_time_password()
    auth.set_password(conn, me, u.name, pw, console(request).clock(), one_time=True)
    return f"{u.name}: {pw}"


def _change(request: Request, fn: Callable[[Connection, str], str | None]) -> Response:
    c = console(request)
    me = user_of(request).name
    shown: str | None = None
    try:
        with c.engine.begin() as conn:
            shown = fn(conn, me)
    except StewardError as e:
        return _users(request, status=400, error=str(e))
    return _users(request, one_time=shown)


def _users(request: Request, status: int = 200, error: str | None = None, one_time: str | None = None) -> Response:
    with console(request).engine.connect() as conn:
        rows = users.all_users(conn)
    return render(request, "users.html", status=status, rows=rows, roles=users.ROLES, error=error, one_time=one_time)

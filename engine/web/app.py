"""The console application: sessions, the role check on every route, CSRF, sign-in and sign-out.

Every route is listed in engine.compliance.access.ROUTES; `guard` (an app-wide dependency) looks
the matched route up there, so a route missing from the matrix fails loudly instead of being open.
Sessions are database rows (engine.compliance.auth) behind an HttpOnly, Secure, SameSite=Strict
cookie; every POST carries the session's CSRF token. The clock is injected for expiry tests.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from engine import clock as engine_clock
from engine.compliance import access, auth, users
from engine.config.base import Config
from engine.errors import StewardError
from engine.web import i18n

HERE = Path(__file__).parent
COOKIE = "steward_session"
LOGIN_CSRF = "steward_login_csrf"
Clock = Callable[[], datetime]


class NeedSignIn(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Throttle:
    """Failed sign-ins per client address: beyond `limit` in `window` seconds, refuse before checking."""

    limit: int = 20
    window: float = 900.0
    seen: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def blocked(self, who: str) -> bool:
        q = self.seen[who]
        now = time.monotonic()
        while q and q[0] < now - self.window:
            q.popleft()
        return len(q) >= self.limit

    def failed(self, who: str) -> None:
        self.seen[who].append(time.monotonic())


@dataclass
class Console:
    engine: Engine
    cfg: Config
    clock: Clock
    policy: auth.Policy
    templates: Jinja2Templates
    throttle: Throttle
    secure_cookies: bool = True


def console(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


def fmt_time(c: Console, t: datetime | None) -> str:
    """A time in the firm's zone, labelled with it."""
    if t is None:
        return ""
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return f"{t.astimezone(c.cfg.tz):%Y-%m-%d %H:%M} {c.cfg.timezone}"


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    c = console(request)
    lang = getattr(request.state, "lang", "en")
    words = i18n.translator(lang)
    session: auth.Session | None = getattr(request.state, "session", None)
    base = {"_": lambda s: words.get(s, s), "lang": lang, "user": session.user if session else None,
            "csrf": session.csrf if session else "", "when": lambda t: fmt_time(c, t), "zone": c.cfg.timezone,
            "can": lambda action: session is not None and access.allowed(action, session.user.roles)}
    resp = c.templates.TemplateResponse(request, template, {**base, **ctx}, status_code=status)
    if request.query_params.get("lang") in i18n.LOCALES:
        resp.set_cookie("lang", request.query_params["lang"], samesite="strict", httponly=True)
    return resp


async def guard(request: Request) -> None:
    """Sign-in, role and CSRF check for the matched route (access.ROUTES)."""
    c = console(request)
    request.state.lang = i18n.pick(request.query_params.get("lang"), request.cookies.get("lang"),
                                   request.headers.get("accept-language"))
    request.state.session = None
    route = request.scope.get("route")
    action = access.ROUTES[(request.method, getattr(route, "path", ""))]
    if action == access.PUBLIC:
        if request.method == "POST":
            form = await request.form()
            sent, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF, "")
            if not expected or not secrets.compare_digest(sent, expected):
                raise Forbidden("CSRF check failed: reload the sign-in page and try again")
        return
    with c.engine.begin() as conn:
        session = auth.resolve(conn, request.cookies.get(COOKIE), c.clock(), kind="session", policy=c.policy)
        must_change = session is not None and auth.must_change(conn, session.user.name)
    if session is None:
        raise NeedSignIn()
    request.state.session = session
    if request.method == "POST":
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf_token", "")), session.csrf or ""):
            raise Forbidden("CSRF check failed: the form is stale or came from another site; reload the page")
    if must_change and request.url.path not in ("/password", "/logout"):
        raise NeedSignIn("password")
    if not access.allowed(action, session.user.roles):
        raise Forbidden(f"{session.user.name} ({', '.join(sorted(session.user.roles))}) may not open this page: "
                        f"it needs the {' or '.join(sorted(access.roles_for(action) or ()))} role")


def user_of(request: Request) -> users.User:
    session: auth.Session = request.state.session
    return session.user


def create_app(engine: Engine, cfg: Config, clock: Clock | None = None, policy: auth.Policy = auth.POLICY,
               secure_cookies: bool = True) -> FastAPI:
    from engine.web import operations, reviews, supervision
    from engine.web import authoring  # issue 11: the author's editor (i11a)

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(guard)])
    app.state.console = Console(engine, cfg, clock or engine_clock.now, policy,
                                Jinja2Templates(directory=HERE / "templates"), Throttle(), secure_cookies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(NeedSignIn)
    async def _need(request: Request, e: NeedSignIn) -> Response:
        target = "/password" if str(e) == "password" else "/login"
        if request.method == "GET":
            return RedirectResponse(target, status_code=303)
        return Response("sign in first", status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, e: Forbidden) -> Response:
        return render(request, "error.html", status=403, message=e.message)

    @app.exception_handler(StewardError)
    async def _bad(request: Request, e: StewardError) -> Response:
        return render(request, "error.html", status=404 if str(e).startswith("no ") else 400, message=str(e))

    for module in (sign_in_routes, reviews, supervision, operations):
        module.routes(app)
    authoring.routes(app)
    return app


# ------------------------------------------------------------------ sign-in pages


def _set_session(c: Console, resp: Response, raw: str) -> None:
    resp.set_cookie(COOKIE, raw, httponly=True, secure=c.secure_cookies, samesite="strict",
                    max_age=int(c.policy.session_max.total_seconds()))


class sign_in_routes:  # noqa: N801 - a namespace of route functions, registered like the page modules
    @staticmethod
    def routes(app: FastAPI) -> None:
        @app.get("/login", response_class=HTMLResponse)
        def login_page(request: Request) -> Response:
            token = secrets.token_urlsafe(24)
            resp = render(request, "login.html", login_csrf=token)
            resp.set_cookie(LOGIN_CSRF, token, httponly=True, secure=console(request).secure_cookies, samesite="strict")
            return resp

        @app.post("/login", response_class=HTMLResponse)
        async def login(request: Request) -> Response:
            c = console(request)
            form = await request.form()
            who = request.client.host if request.client else "?"
            name, password = str(form.get("name", "")), str(form.get("password", ""))
            try:
                if c.throttle.blocked(who):
                    raise auth.SignInRefused("throttled")
                raw, _ = auth.sign_in(c.engine, name, password, c.clock(), kind="session", policy=c.policy)
            except auth.SignInRefused:
                c.throttle.failed(who)
                token = request.cookies.get(LOGIN_CSRF, "")
                msg = "Sign-in refused: wrong user name or password, or the account is locked."
                return render(request, "login.html", status=401, login_csrf=token, error=msg, name=name)
            resp = RedirectResponse("/", status_code=303)
            _set_session(c, resp, raw)
            resp.delete_cookie(LOGIN_CSRF)
            return resp

        @app.post("/logout")
        def logout(request: Request) -> Response:
            c = console(request)
            with c.engine.begin() as conn:
                auth.sign_out(conn, request.cookies.get(COOKIE), c.clock())
            resp = RedirectResponse("/login", status_code=303)
            resp.delete_cookie(COOKIE)
            return resp

        @app.get("/", response_class=HTMLResponse)
        def home(request: Request) -> Response:
            return render(request, "home.html")

        @app.get("/password", response_class=HTMLResponse)
        def password_page(request: Request) -> Response:
            with console(request).engine.connect() as conn:
                must = auth.must_change(conn, user_of(request).name)
            return render(request, "password.html", must=must)

        @app.post("/password", response_class=HTMLResponse)
        async def password(request: Request) -> Response:
            c = console(request)
            form = await request.form()
            try:
                auth.change_password(c.engine, user_of(request).name, str(form.get("old", "")),
                                     str(form.get("new", "")), c.clock())
            except StewardError as e:
                return render(request, "password.html", status=400, error=str(e), must=True)
            return RedirectResponse("/", status_code=303)

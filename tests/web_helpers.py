"""A console on a test database, driven in-process (ASGI) with an injected clock."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from engine.config.base import Config
from engine.web.app import create_app
from tests.identity_helpers import NOW, PASSWORD


@dataclass
class Clock:
    now: datetime = field(default=NOW)

    def __call__(self) -> datetime:
        return self.now


def client(engine: Engine, cfg: Config, clock: Clock) -> TestClient:
    # https: the session cookie is Secure, so a plain-http client would never send it back
    return TestClient(create_app(engine, cfg, clock=clock), base_url="https://testserver", follow_redirects=False)


def sign_in(c: TestClient, name: str, password: str = PASSWORD) -> int:
    c.get("/login")
    r = c.post("/login", data={"name": name, "password": password, "csrf_token": c.cookies.get("steward_login_csrf", "")})
    return r.status_code


def csrf(c: TestClient) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/").text)
    assert m, "no CSRF token on the home page: not signed in?"
    return m.group(1)

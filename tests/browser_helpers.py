"""What the Chromium journeys share: Debian's browser, a real uvicorn server on a free loopback
port, and one Playwright browser per module."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yields the base URL, stops on exit."""
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(200):  # bounded wait for the socket
        if srv.started:
            break
        threading.Event().wait(0.05)
    assert srv.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(10)


def launched_browser() -> Iterator[object]:
    """Debian's Chromium through Playwright (no browser download); use as a module fixture body."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


SHOTS = Path(__file__).parent.parent / "docs" / "img"
"""Where STEWARD_SCREENSHOTS=1 writes the pictures docs/console.md shows."""


def signed_in_page(browser: Any, base: str, name: str, password: str, lang: str = "en", height: int = 800) -> Any:
    """A fresh context (own cookies) signed in as `name`; downloads allowed, 60 s per step
    (the proposal page waits for its rule tests from a child process on a shared machine)."""
    ctx = browser.new_context(base_url=base, locale=lang, viewport={"width": 1200, "height": height},
                              accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("#signin")
    page.wait_for_selector("#who")
    return page


def shot(page: Any, name: str, full: bool = False) -> None:
    """Screenshot into docs/img/ when STEWARD_SCREENSHOTS is set."""
    import os

    if os.environ.get("STEWARD_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def sign_out(page: Any) -> None:
    page.click("#signout")
    page.wait_for_selector("#signin")

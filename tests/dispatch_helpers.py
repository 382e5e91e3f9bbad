"""Real peers for dispatch tests: an HTTP gateway (http.server in a thread) that can fail
and stall, an SMTP server (aiosmtpd), and small builders for outbox rows."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import date
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.dispatch.tables import Outbox
from engine import clock
from engine.models import Client
from engine.dispatch.outbox import OUTBOX, idempotency_key

OUT = OUTBOX
CLIENTS = Client.__table__  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """An SMS/IM gateway that honours Idempotency-Key, as the dispatcher requires of one.

    `fail_next` requests answer 500; `delay` stalls each answer (after the message was
    accepted, like a slow provider); `deliveries` lists what reached the handsets.
    """

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.receipts: dict[str, str] = {}
        self.requests = 0
        self.fail_next = 0
        self.status = 500
        self.delay = 0.0
        self.lock = threading.Lock()
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with gw.lock:
                    gw.requests += 1
                    if gw.fail_next > 0:
                        gw.fail_next -= 1
                        self._answer(gw.status, {"error": "provider down"})
                        return
                    if key not in gw.receipts:
                        gw.receipts[key] = f"gw-{len(gw.receipts) + 1}"
                        gw.deliveries.append({**body, "key": key})
                    receipt = gw.receipts[key]
                    delay = gw.delay
                if delay:
                    time.sleep(delay)
                self._answer(200, {"id": receipt})

            def _answer(self, code: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd on 127.0.0.1 collecting every message it accepts; it refuses *@rejected.invalid."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        box = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
                if address.endswith("@rejected.invalid"):
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                box.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


def with_dispatch(cfg: Config, **kw: Any) -> Config:
    """cfg with dispatch sub-sections replaced, e.g. gateway={"url": ...}."""
    d = cfg.dispatch
    upd = {k: getattr(d, k).model_copy(update=v) if isinstance(v, dict) else v for k, v in kw.items()}
    return cfg.model_copy(update={"dispatch": d.model_copy(update=upd)})


def add_client(eng: Engine, cid: str, phone: str | None = "13800000001", email: str | None = "c@example.com") -> None:
    with eng.begin() as c:
        c.execute(CLIENTS.insert(), [{"id": cid, "name": f"客户{cid}", "birth_date": None, "locale": "zh-CN", "phone": phone,
                                      "email": email, "opened_on": date(2020, 1, 1), "advisor_id": None, "risk_level": "C3",
                                      "lowest_category": False, "risk_assessed_on": None}])


def add_message(eng: Engine, cid: str, channel: str = "sms", rule_class: str = "service", bypass: bool = True,
                state: str = "queued", body: str = "您好", **kw: Any) -> int:
    now = clock.now()
    row = {"idempotency_key": idempotency_key(kw.pop("rule_id", "r1"), "h1", cid, kw.pop("window", "2026-11-20")),
           "kind": "client", "firing_id": None, "rule_id": "r1", "rule_hash": "h1", "client_id": cid,
           "rule_class": rule_class, "channel": channel, "locale": "zh-CN", "subject": "主题", "body": body,
           "bypass_window": bypass, "outside_window": "hold", "state": state, "attempts": 0,
           "next_attempt_at": now, "trail": [], "created_at": now, "updated_at": now, **kw}
    with eng.begin() as c:
        return int(c.execute(OUT.insert().returning(OUT.c.id), [row]).scalar_one())


def outbox_row(eng: Engine, row_id: int) -> Any:
    with eng.connect() as c:
        return c.execute(select(OUT).where(OUT.c.id == row_id)).one()


__all__ = ["Gateway", "Mailbox", "Outbox", "add_client", "add_message", "free_port", "outbox_row", "with_dispatch"]

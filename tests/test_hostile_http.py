"""Hostile and careless HTTP input to the event intake and the gateway webhook (issue 13).

Real servers on 127.0.0.1, raw sockets for what urllib will not send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from engine.config.base import Config
from engine.dispatch import webhook
from engine.errors import StewardError
from engine.events.http import BACKLOG, IntakeServer
from engine.events.tables import StoredEvent
from tests import book
from tests.events_helpers import at, service

EVENT = StoredEvent.__table__  # type: ignore[attr-defined]


def line(eid: str, client: str = "C003", price: float = 1.0) -> str:
    return json.dumps({"id": eid, "type": "trade", "client_id": client, "at": at("2026-11-20 10:01"),
                       "symbol": "019547", "side": "sell", "quantity": 10, "price": price, "market_price": 100})


def raw(port: int, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are; the status and JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode("latin-1") + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def post(port: int, body: bytes, headers: dict[str, str] | None = None, path: str = "/events") -> tuple[int, dict[str, Any]]:
    hs = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs.items())
    return raw(port, head, body)


def stored(db: Engine) -> int:
    with db.connect() as c:
        return int(c.execute(select(func.count()).select_from(EVENT)).scalar_one())


def with_events(cfg: Config, **update: Any) -> Config:
    return cfg.model_copy(update={"events": cfg.events.model_copy(update=update)})


def _serve(db: Engine, cfg: Config) -> Iterator[int]:
    book.build(db)
    with IntakeServer(service(db, with_events(cfg, max_body_bytes=100_000, read_timeout_seconds=0.5)), port=0) as srv:
        yield srv.port


@pytest.fixture
def intake(sqlite_engine: Engine, cfg: Config) -> Iterator[int]:
    """Protocol-level cases: the database does not matter, SQLite only (suite time)."""
    yield from _serve(sqlite_engine, cfg)


@pytest.fixture
def intake_db(db: Engine, cfg: Config) -> Iterator[int]:
    yield from _serve(db, cfg)


def test_content_length_must_be_a_number(sqlite_engine: Engine, intake: int) -> None:
    db = sqlite_engine
    body = (line("a1") + "\n").encode() * 3
    for value in ("-1", "abc", "1e3", ""):
        head = f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\nConnection: close\r\n"
        code, answer = raw(intake, head, body)
        assert code in (400, 411) and "Content-Length" in answer["error"], (value, code, answer)
    assert stored(db) == 0


def test_a_chunked_body_is_read_and_bounded(sqlite_engine: Engine, intake: int) -> None:
    db = sqlite_engine
    body = (line("c1") + "\n" + line("c2") + "\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:50], body[50:])) + b"0\r\n\r\n"
    head = "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    assert raw(intake, head, chunks) == (202, {"stored": 2, "duplicates": 0, "conflicts": []})
    huge = b"".join(b"%x\r\n%s\r\n" % (60_000, b" " * 60_000) for _ in range(2)) + b"0\r\n\r\n"
    assert raw(intake, head, huge)[0] == 413
    assert stored(db) == 2


def test_deep_json_gets_an_answer(intake: int) -> None:
    code, answer = post(intake, b"[" * 50_000 + b"]" * 50_000)
    assert code == 400 and "(limit" in answer["problems"][0]


def test_unknown_client_and_changed_repost_are_refused_whole(db: Engine, intake_db: int) -> None:
    intake = intake_db
    code, answer = post(intake, (line("u1") + "\n" + line("u2", client="NOBODY") + "\n").encode())
    assert code == 422 and answer["problems"] == [
        "request:2: client_id: unknown client 'NOBODY': import the client first (steward import), then post again"]
    assert stored(db) == 0
    assert post(intake, line("r1").encode())[0] == 202
    code, answer = post(intake, (line("r2") + "\n" + line("r1", price=2.0)).encode())
    assert code == 409 and "'r1' was stored before with other content" in answer["problems"][0]
    assert stored(db) == 1
    assert post(intake, line("r1").encode()) == (202, {"stored": 0, "duplicates": 1, "conflicts": []})


def test_a_stalled_connection_is_closed_and_holds_nothing(intake: int) -> None:
    with socket.create_connection(("127.0.0.1", intake), timeout=10) as stalled:
        stalled.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
        assert post(intake, line("s1").encode())[0] == 202  # others are served meanwhile
        t0 = time.monotonic()
        assert stalled.recv(100) == b""  # closed by the server's read timeout
        assert time.monotonic() - t0 < 5


def test_senders_must_authenticate(sqlite_engine: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite_engine
    book.build(db)
    monkeypatch.setenv("OMS_SECRET", "s3cret")
    monkeypatch.setenv("CRM_TOKEN", "t0ken")
    senders = {"oms": {"secret_env": "OMS_SECRET"}, "crm": {"secret_env": "CRM_TOKEN", "scheme": "bearer"}}
    cfg = with_events(cfg, senders=type(cfg.events).model_validate({"senders": senders}).senders)
    with IntakeServer(service(db, cfg), port=0) as srv:
        body = line("a1").encode()
        assert post(srv.port, body)[0] == 401
        assert post(srv.port, body, {"X-Steward-Sender": "oms", "X-Steward-Signature": "sha256=00"})[0] == 401
        assert post(srv.port, body, {"Authorization": "Bearer wrong"})[0] == 401
        sig = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert post(srv.port, body, {"X-Steward-Sender": "oms", "X-Steward-Signature": f"sha256={sig}"})[0] == 202
        assert post(srv.port, line("a2").encode(), {"Authorization": "Bearer t0ken"})[0] == 202
    assert stored(db) == 2


def test_open_intake_only_on_loopback(sqlite_engine: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StewardError, match="no events.senders are configured"):
        IntakeServer(service(sqlite_engine, with_events(cfg, host="0.0.0.0")), port=0)
    bad = type(cfg.events).model_validate({"senders": {"oms": {"secret_env": "STEWARD_UNSET_SECRET"}}}).senders
    monkeypatch.delenv("STEWARD_UNSET_SECRET", raising=False)
    with pytest.raises(StewardError, match="STEWARD_UNSET_SECRET is not set"):
        IntakeServer(service(sqlite_engine, with_events(cfg, senders=bad)), port=0)


def test_fifty_concurrent_clients_lose_nothing(sqlite_engine: Engine, intake: int) -> None:
    db = sqlite_engine
    assert BACKLOG >= 128

    def one(n: int) -> int:
        return post(intake, (line(f"L{n:04d}") + "\n").encode())[0]

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(one, range(1000)))
    assert codes == [202] * 1000
    assert stored(db) == 1000
    assert time.monotonic() - t0 < 60


# ------------------------------------------------------------------ webhook


@pytest.fixture
def hook_port(sqlite_engine: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("GATEWAY_SIGNING", "k3y")
    cfg = cfg.model_copy(update={"dispatch": cfg.dispatch.model_copy(update={
        "webhook": cfg.dispatch.webhook.model_copy(update={"signature_env": "GATEWAY_SIGNING"})})})
    srv = webhook.server(sqlite_engine, cfg, port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_port
    srv.shutdown()
    srv.server_close()


def signed(body: bytes) -> dict[str, str]:
    return {"X-Signature": webhook.signature(b"k3y", body)}


def test_webhook_verifies_the_signature(hook_port: int) -> None:
    body = json.dumps({"from": "13800000000", "text": "hello"}).encode()
    assert post(hook_port, body, path="/inbound")[0] == 401
    assert post(hook_port, body, {"X-Signature": "sha256=00"}, path="/inbound")[0] == 401
    assert post(hook_port, body, signed(body), path="/inbound") == (200, {"opt_out": False, "clients": []})


def test_webhook_bad_bodies_get_clear_answers(hook_port: int) -> None:
    for value in ("-1", "abc"):
        head = f"POST /inbound HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\nConnection: close\r\n"
        assert raw(hook_port, head, b"{}")[0] == 411
    deep = b"[" * 30_000 + b"]" * 30_000
    code, answer = post(hook_port, deep, signed(deep), path="/inbound")
    assert code == 400 and "(limit" in answer["error"]
    big = b" " * (webhook.MAX_BODY_BYTES + 1)
    assert post(hook_port, big, signed(big), path="/inbound")[0] == 413


def test_webhook_refuses_an_open_public_listener(sqlite_engine: Engine, cfg: Config) -> None:
    cfg = cfg.model_copy(update={"dispatch": cfg.dispatch.model_copy(update={
        "webhook": cfg.dispatch.webhook.model_copy(update={"host": "0.0.0.0"})})})
    with pytest.raises(StewardError, match="without authentication"):
        webhook.make_app(sqlite_engine, cfg)

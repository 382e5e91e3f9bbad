"""The HTTP intake endpoint: POST events, stored durably before the answer.

    POST /events   body: JSON lines, a JSON array of events, or one JSON object
                   (Content-Length or chunked transfer encoding)
                   202 {"stored": n, "duplicates": d, "conflicts": []}
                   400 {"problems": ["request:3: side: ..."]}  (nothing stored)
                   401 missing or wrong authentication (events.senders)
                   409 an id re-posted with other content (nothing stored)
                   411 no Content-Length and not chunked
                   413 when the body exceeds events.max_body_bytes
                   422 an event names an unknown client (nothing stored)
    GET  /health   200 {"queued": n, "processed": n, "failed": n, ...}

Handlers run in their own threads and only store and queue (EventService.post);
the engine thread processes. Listens on events.host (127.0.0.1 by default). With
`events.senders` configured every post authenticates (a bearer secret or an HMAC-SHA256
signature of the body); without, only a loopback host is allowed. A connection silent for
events.read_timeout_seconds is closed; the listen backlog is `BACKLOG`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.config.events import EventsConfig
from engine.errors import SourceErrors, StewardError
from engine.language.event_schema import AnyEvent, decode_json, parse_event, parse_jsonl
from engine.events.service import EventService, Rejected

BACKLOG = 256
"""Listen backlog: connections the kernel queues before the server accepts them."""
_DIGITS = re.compile(rb"[0-9]{1,12}")


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_body(body: bytes) -> list[AnyEvent]:
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = decode_json(text)
        except ValueError as e:
            raise SourceErrors([_problem(str(e)[:300])]) from e
        out, problems = [], []
        for i, item in enumerate(items, 1):
            try:
                out.append(parse_event(item, "request", i))
            except SourceErrors as e:
                problems += e.problems
        if problems:
            raise SourceErrors(problems)
        return out
    return parse_jsonl(text, "request")


def _problem(msg: str) -> Any:
    from engine.errors import Problem

    return Problem("request", None, "", msg)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sender_secrets(cfg: EventsConfig) -> dict[str, tuple[str, bytes]]:
    """Sender name -> (scheme, secret); StewardError naming what to set when a secret is missing."""
    out: dict[str, tuple[str, bytes]] = {}
    for name, sender in cfg.senders.items():
        secret = os.environ.get(sender.secret_env)
        if not secret:
            raise StewardError(f"events.senders.{name}: environment variable {sender.secret_env} is not set: "
                               "export the sender's shared secret before starting the endpoint")
        out[name] = (sender.scheme, secret.encode("utf-8"))
    if not out and not is_loopback(cfg.host):
        raise StewardError(f"events.host is {cfg.host!r} but no events.senders are configured: "
                           "configure senders (docs/config.md) or listen on 127.0.0.1")
    return out


def authenticate(headers: Any, body: bytes, secrets: dict[str, tuple[str, bytes]]) -> str | None:
    """The authenticated sender's name, '' when none are configured, or None (refuse)."""
    if not secrets:
        return ""
    auth = headers.get("Authorization") or ""
    for name, (scheme, secret) in secrets.items():
        if scheme == "bearer" and hmac.compare_digest(auth.encode("utf-8", "replace"), b"Bearer " + secret):
            return name
    name = headers.get("X-Steward-Sender") or ""
    sig = (headers.get("X-Steward-Signature") or "").removeprefix("sha256=")
    scheme, secret = secrets.get(name, ("", b""))
    if scheme == "hmac" and sig:
        want = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(want, sig.lower()):
            return name
    return None


def read_body(rfile: Any, headers: Any, limit: int) -> bytes:
    """The request body by Content-Length or chunked encoding, never more than `limit` bytes."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return _read_chunked(rfile, limit)
    raw = headers.get("Content-Length")
    if raw is None:
        raise BadRequest(411, "send a Content-Length header or a chunked body")
    if not _DIGITS.fullmatch(raw.strip().encode("ascii", "replace")):
        raise BadRequest(400, f"Content-Length must be a whole number of bytes, got {raw[:20]!r}")
    length = int(raw)
    if length > limit:
        raise BadRequest(413, f"body of {length} bytes exceeds events.max_body_bytes; send smaller batches")
    body = rfile.read(length)
    if len(body) != length:
        raise BadRequest(400, f"body ended after {len(body)} of {length} bytes")
    return bytes(body)


def _read_chunked(rfile: Any, limit: int) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline(66).split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", line):
            raise BadRequest(400, "malformed chunked body")
        size = int(line, 16)
        if size == 0:
            while rfile.readline(1026).strip():  # trailers
                pass
            return bytes(out)
        if len(out) + size > limit:
            raise BadRequest(413, f"body exceeds events.max_body_bytes ({limit}); send smaller batches")
        chunk = rfile.read(size)
        if len(chunk) != size:
            raise BadRequest(400, "chunked body ended early")
        out += chunk
        rfile.readline(3)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        return None

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/health":
            self._send(404, {"error": "not found: POST /events or GET /health"})
            return
        c = self.server.service.counters
        self._send(200, {"queued": self.server.service.queue.qsize(), "stored": c.stored, "processed": c.processed,
                         "failed": c.failed, "firings": c.firings, "duplicates": c.duplicates})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/events":
            self._send(404, {"error": "not found: POST /events"})
            return
        try:
            body = read_body(self.rfile, self.headers, self.server.service.cfg.events.max_body_bytes)
        except BadRequest as e:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self._send(e.status, {"error": str(e)})
            return
        if authenticate(self.headers, body, self.server.secrets) is None:
            self._send(401, {"error": "authenticate: Authorization: Bearer <secret>, or X-Steward-Sender and "
                                      "X-Steward-Signature: sha256=<HMAC-SHA256 of the body> (events.senders)"})
            return
        try:
            events = parse_body(body)
            res = self.server.service.post(events, strict=True)
        except SourceErrors as e:
            self._send(400, {"problems": [str(p) for p in e.problems[:100]]})
            return
        except UnicodeDecodeError:
            self._send(400, {"problems": ["request: body is not UTF-8"]})
            return
        except Rejected as e:
            self._send(e.status, {"problems": e.problems[:100]})
            return
        self._send(202, {"stored": len(res.new), "duplicates": res.duplicates, "conflicts": res.conflicts})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, addr: tuple[str, int], service: EventService):
        self.secrets = sender_secrets(service.cfg.events)
        handler = type("_TimedHandler", (_Handler,), {"timeout": service.cfg.events.read_timeout_seconds})
        super().__init__(addr, handler)
        self.service = service


class IntakeServer:
    """The endpoint in a background thread; `port` is the bound port (useful with port 0)."""

    def __init__(self, service: EventService, host: str | None = None, port: int | None = None):
        cfg = service.cfg.events
        self.httpd = _Server((host or cfg.host, cfg.port if port is None else port), service)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="events-http", daemon=True)

    def __enter__(self) -> IntakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

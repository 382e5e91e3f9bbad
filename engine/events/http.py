"""The HTTP intake endpoint: POST events, stored durably before the answer.

    POST /events   body: JSON lines, a JSON array of events, or one JSON object
                   202 {"stored": n, "duplicates": d, "conflicts": [ids]}
                   400 {"problems": ["request:3: side: ..."]}  (nothing stored)
                   413 when the body exceeds events.max_body_bytes
    GET  /health   200 {"queued": n, "processed": n, "failed": n, ...}

Handlers run in their own threads and only store and queue (EventService.post);
the engine thread processes. Listens on events.host (127.0.0.1 by default).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine.errors import SourceErrors
from engine.language.event_schema import AnyEvent, parse_event, parse_jsonl
from engine.events.service import EventService


def parse_body(body: bytes) -> list[AnyEvent]:
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise SourceErrors([_problem(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}")]) from e
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
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.service.cfg.events.max_body_bytes:
            self._send(413, {"error": f"body of {length} bytes exceeds events.max_body_bytes; send smaller batches"})
            return
        try:
            events = parse_body(self.rfile.read(length))
        except SourceErrors as e:
            self._send(400, {"problems": [str(p) for p in e.problems]})
            return
        except UnicodeDecodeError:
            self._send(400, {"problems": ["request: body is not UTF-8"]})
            return
        res = self.server.service.post(events)
        self._send(202, {"stored": len(res.new), "duplicates": res.duplicates, "conflicts": res.conflicts})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], service: EventService):
        super().__init__(addr, _Handler)
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

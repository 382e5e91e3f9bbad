"""A real append-only checkpoint notary on loopback, speaking docs/audit.md's protocol.

It stores every checkpoint in a JSON-lines file and never overwrites: a second checkpoint for a
`seq` it holds with another `hash` gets 409. Tests read `entries` to see what was stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "notary-test-token"


class Notary:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.url = ""

    @property
    def entries(self) -> list[dict[str, Any]]:
        if not self.store.is_file():
            return []
        return [json.loads(line) for line in self.store.read_text(encoding="utf-8").splitlines() if line]

    def add(self, cp: dict[str, Any]) -> int:
        with self.lock:
            same = [e for e in self.entries if e["seq"] == cp["seq"]]
            if same:
                return 200 if same[0]["hash"] == cp["hash"] else 409
            with self.store.open("a", encoding="utf-8") as f:
                f.write(json.dumps(cp, sort_keys=True) + "\n")
            return 201


def _handler(notary: Notary) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._send(401, {"error": "missing or wrong bearer token"})
            return False

        def _send(self, status: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if not self._authorised():
                return
            cp = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            status = notary.add(cp)
            self._send(status, {"stored": status == 201} if status != 409 else {"error": "seq already notarised"})

        def do_GET(self) -> None:  # noqa: N802
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/checkpoints/latest":
                self._send(404, {"error": "not found"})
                return
            entries = notary.entries
            if not entries:
                self._send(404, {"error": "no checkpoint yet"})
                return
            self._send(200, max(entries, key=lambda e: e["seq"]))

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_notary(store: Path) -> Iterator[Notary]:
    notary = Notary(store)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(notary))
    notary.url = f"http://127.0.0.1:{server.server_address[1]}/checkpoints"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield notary
    finally:
        server.shutdown()
        server.server_close()

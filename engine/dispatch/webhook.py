"""Inbound replies from the SMS/IM gateway: an opt-out word records an opt-out at once.

`POST /inbound` with JSON `{"from": "<phone or e-mail>", "text": "TD", "channel": "sms"}`.
A reply that is one of `dispatch.webhook.keywords` (退订, TD, T, R, STOP, BAJA, ...) records
a marketing opt-out for every client with that phone number (or e-mail), with the reply
as evidence, and drops their unsent marketing messages. Other replies are acknowledged
and ignored. A small WSGI app served by wsgiref; put a TLS proxy in front of it.

Authentication: a bearer token (`token_env`) and/or the provider's HMAC-SHA256 signature of
the body in `X-Signature: sha256=<hex>` (`signature_env`); one is required unless the
webhook listens on a loopback address. Bodies are bounded (`MAX_BODY_BYTES`), JSON depth
too, and a silent connection is closed after `READ_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import string
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine.config.base import Config
from engine import clock
from engine.errors import StewardError
from engine.models import Client, Consent
from engine.audit import log as auditlog
from engine.dispatch.outbox import drop_marketing
from engine.language.rendering import mask

auditlog.register_event_name("consent.changed", "a client's consent for a channel and purpose changed (opt-out reply, evidence)")
CONSENT = Consent.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]
_STRIP = string.whitespace + string.punctuation + "。！，．、：；"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAX_BODY_BYTES = 64 * 1024
"""Largest reply body accepted (413 beyond): a reply is a few words."""
MAX_JSON_DEPTH = 8
READ_TIMEOUT_SECONDS = 10.0


def is_opt_out(text: str, keywords: Iterable[str]) -> bool:
    word = text.strip(_STRIP).upper()
    return word in {k.upper() for k in keywords}


def record_opt_out(conn: Connection, sender: str, channel: str, text: str, now: datetime) -> list[str]:
    """Opt every client with this address out of marketing; returns their ids."""
    col = CLIENT.c.email if channel == "email" else CLIENT.c.phone
    ids = [r[0] for r in conn.execute(select(CLIENT.c.id).where(col == sender))]
    evidence = f"reply {text.strip()!r} from {mask(sender)} via {channel} at {now.isoformat()}"
    for cid in ids:
        conn.execute(CONSENT.delete().where(CONSENT.c.client_id == cid, CONSENT.c.channel == channel,
                                            CONSENT.c.purpose == "marketing"))
        conn.execute(CONSENT.insert(), [{"client_id": cid, "channel": channel, "purpose": "marketing",
                                         "status": "opted_out", "recorded_at": now, "evidence": evidence}])
        auditlog.append(conn, [auditlog.Event("consent.changed", actor="webhook", client_id=cid, channel=channel,
                                              status="opted_out", at=now, data={"purpose": "marketing", "evidence": evidence})])
    if ids:
        drop_marketing(conn, ids, "OPTED_OUT_MARKETING", now)
    return ids


def _answer(start: StartResponse, code: str, obj: dict[str, Any]) -> list[bytes]:
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    start(code, [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


class _BadBody(ValueError):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _read(environ: dict[str, Any]) -> bytes:
    raw = str(environ.get("CONTENT_LENGTH") or "")
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise _BadBody("411 Length Required", f"send a Content-Length header (a whole number), got {raw[:20]!r}")
    if int(raw) > MAX_BODY_BYTES:
        raise _BadBody("413 Content Too Large", f"body of {raw} bytes: a reply is at most {MAX_BODY_BYTES} bytes")
    return bytes(environ["wsgi.input"].read(int(raw)))


def _parse(data: bytes) -> dict[str, Any]:
    depth = 0
    for c in re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', data):
        depth += (c in b"[{") - (c in b"]}")
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested too deeply (limit {MAX_JSON_DEPTH})")
    body = json.loads(data or b"null")
    if not isinstance(body, dict) or not isinstance(body.get("from"), str) or not isinstance(body.get("text"), str):
        raise ValueError('expected a JSON object with string fields "from" and "text" (and "channel": sms, im or email)')
    if body.get("channel", "sms") not in ("sms", "im", "email"):
        raise ValueError(f'"channel" must be sms, im or email, got {body.get("channel")!r}')
    return body


def _secret(env: str | None, key: str) -> bytes | None:
    if not env:
        return None
    value = os.environ.get(env)
    if not value:
        raise StewardError(f"dispatch.webhook.{key}: environment variable {env} is not set: export it before starting")
    return value.encode("utf-8")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Signature` value the gateway sends: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def make_app(engine: Engine, cfg: Config) -> Callable[[dict[str, Any], StartResponse], list[bytes]]:
    wh = cfg.dispatch.webhook
    token = _secret(wh.token_env, "token_env")
    signing = _secret(wh.signature_env, "signature_env")
    if token is None and signing is None and not _loopback(wh.host):
        raise StewardError(f"dispatch.webhook.host is {wh.host!r} without authentication: set "
                           "dispatch.webhook.signature_env or token_env (docs/config.md), or listen on 127.0.0.1")

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") != "/inbound" or environ.get("REQUEST_METHOD") != "POST":
            return _answer(start, "404 Not Found", {"error": "POST /inbound"})
        given = str(environ.get("HTTP_AUTHORIZATION") or "").encode("utf-8", "replace")
        if token is not None and not hmac.compare_digest(given, b"Bearer " + token):
            return _answer(start, "401 Unauthorized", {"error": "missing or wrong bearer token"})
        try:
            data = _read(environ)
        except _BadBody as e:
            return _answer(start, e.status, {"error": str(e)})
        sig = str(environ.get("HTTP_X_SIGNATURE") or "")
        if signing is not None and not hmac.compare_digest(sig.lower(), signature(signing, data)):
            return _answer(start, "401 Unauthorized", {"error": "missing or wrong X-Signature (sha256=<HMAC of the body>)"})
        try:
            body = _parse(data)
        except (ValueError, RecursionError) as e:  # includes JSON decode errors
            return _answer(start, "400 Bad Request", {"error": str(e)[:300]})
        if not is_opt_out(body["text"], wh.keywords):
            return _answer(start, "200 OK", {"opt_out": False, "clients": []})
        with engine.begin() as conn:
            ids = record_opt_out(conn, body["from"], body.get("channel", "sms"), body["text"], clock.now())
        return _answer(start, "200 OK", {"opt_out": True, "clients": ids})

    return app


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        return None


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per connection, so a stalled sender holds only its own thread (until the timeout)."""

    daemon_threads = True
    request_queue_size = 128


def server(engine: Engine, cfg: Config, port: int | None = None) -> WSGIServer:
    wh = cfg.dispatch.webhook
    return make_server(wh.host, wh.port if port is None else port, make_app(engine, cfg),
                       server_class=_Server, handler_class=_Handler)

"""Inbound replies from the SMS/IM gateway: an opt-out word records an opt-out at once.

`POST /inbound` with JSON `{"from": "<phone or e-mail>", "text": "TD", "channel": "sms"}`.
A reply that is one of `dispatch.webhook.keywords` (退订, TD, T, R, STOP, BAJA, ...) records
a marketing opt-out for every client with that phone number (or e-mail), with the reply
as evidence, and drops their unsent marketing messages. Other replies are acknowledged
and ignored. A small WSGI app served by wsgiref; put a TLS proxy in front of it.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine.config.base import Config
from engine import clock
from engine.models import Client, Consent
from engine.audit import log as auditlog
from engine.dispatch.outbox import drop_marketing
from engine.language.rendering import mask

auditlog.register_event_name("consent.changed", "a client's consent for a channel and purpose changed (opt-out reply, evidence)")
CONSENT = Consent.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]
_STRIP = string.whitespace + string.punctuation + "。！，．、：；"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


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


def _parse(environ: dict[str, Any]) -> dict[str, Any]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(size) or b"null")
    if not isinstance(body, dict) or not isinstance(body.get("from"), str) or not isinstance(body.get("text"), str):
        raise ValueError('expected a JSON object with string fields "from" and "text" (and "channel": sms, im or email)')
    if body.get("channel", "sms") not in ("sms", "im", "email"):
        raise ValueError(f'"channel" must be sms, im or email, got {body.get("channel")!r}')
    return body


def make_app(engine: Engine, cfg: Config) -> Callable[[dict[str, Any], StartResponse], list[bytes]]:
    wh = cfg.dispatch.webhook
    token = os.environ.get(wh.token_env) if wh.token_env else None

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") != "/inbound" or environ.get("REQUEST_METHOD") != "POST":
            return _answer(start, "404 Not Found", {"error": "POST /inbound"})
        if token and environ.get("HTTP_AUTHORIZATION") != f"Bearer {token}":
            return _answer(start, "401 Unauthorized", {"error": "missing or wrong bearer token"})
        try:
            body = _parse(environ)
        except ValueError as e:  # includes JSON decode errors
            return _answer(start, "400 Bad Request", {"error": str(e)})
        if not is_opt_out(body["text"], wh.keywords):
            return _answer(start, "200 OK", {"opt_out": False, "clients": []})
        with engine.begin() as conn:
            ids = record_opt_out(conn, body["from"], body.get("channel", "sms"), body["text"], clock.now())
        return _answer(start, "200 OK", {"opt_out": True, "clients": ids})

    return app


def server(engine: Engine, cfg: Config, port: int | None = None) -> WSGIServer:
    wh = cfg.dispatch.webhook
    return make_server(wh.host, wh.port if port is None else port, make_app(engine, cfg))

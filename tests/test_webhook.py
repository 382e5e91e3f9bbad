"""The inbound webhook: an opt-out reply records an opt-out at once and stops queued marketing."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.dispatch.webhook import is_opt_out, server
from engine.models import Consent
from tests.dispatch_helpers import add_client, add_message, outbox_row

CONSENT = Consent.__table__  # type: ignore[attr-defined]


@pytest.fixture
def hook(db: Engine, cfg: Config) -> Iterator[str]:
    srv = server(db, cfg, port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/inbound"
    srv.shutdown()
    srv.server_close()


def _post(url: str, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


@pytest.mark.parametrize("text", ["退订", "TD", " td ", "R", "STOP", "Stop.", "BAJA", "baja！"])
def test_opt_out_words(cfg: Config, text: str) -> None:
    assert is_opt_out(text, cfg.dispatch.webhook.keywords)


@pytest.mark.parametrize("text", ["好的", "stop sending so many", "谢谢", ""])
def test_other_replies_are_not_opt_outs(cfg: Config, text: str) -> None:
    assert not is_opt_out(text, cfg.dispatch.webhook.keywords)


def test_reply_td_opts_out_and_drops_queued_marketing(db: Engine, hook: str) -> None:
    add_client(db, "C1", phone="13800000001")
    marketing = add_message(db, "C1", rule_class="marketing", rule_id="birthday")
    service = add_message(db, "C1", rule_class="service", rule_id="margin")
    code, body = _post(hook, {"from": "13800000001", "text": "TD", "channel": "sms"})
    assert code == 200 and body == {"opt_out": True, "clients": ["C1"]}
    with db.connect() as c:
        row = c.execute(select(CONSENT)).one()
    assert (row.client_id, row.channel, row.purpose, row.status) == ("C1", "sms", "marketing", "opted_out")
    assert "'TD'" in row.evidence and "13800000001" not in row.evidence  # the number is masked
    m = outbox_row(db, marketing)
    assert m.state == "dropped" and m.reason == "OPTED_OUT_MARKETING"
    assert outbox_row(db, service).state == "queued"


def test_ordinary_reply_changes_nothing(db: Engine, hook: str) -> None:
    add_client(db, "C1")
    assert _post(hook, {"from": "13800000001", "text": "谢谢"}) == (200, {"opt_out": False, "clients": []})
    with db.connect() as c:
        assert c.execute(select(CONSENT)).first() is None


def test_bad_requests_say_what_is_expected(sqlite_engine: Engine, cfg: Config) -> None:
    srv = server(sqlite_engine, cfg, port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{srv.server_port}/inbound"
    try:
        code, body = _post(url, None, raw=b"{not json")
        assert code == 400 and "Expecting property name" in body["error"]
        code, body = _post(url, {"text": "TD"})
        assert code == 400 and '"from" and "text"' in body["error"]
        code, body = _post(url, {"from": "1", "text": "TD", "channel": "fax"})
        assert code == 400 and "sms, im or email" in body["error"]
    finally:
        srv.shutdown()
        srv.server_close()

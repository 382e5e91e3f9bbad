"""Intake: the HTTP endpoint (a real server on 127.0.0.1) and `steward events post` (a real process)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.compliance import review
from engine.config.base import Config
from engine.events.http import IntakeServer
from tests import book, cli_process
from tests.conftest import shipped_config
from tests.databases import migrated_sqlite
from tests.events_helpers import at, firings, service, statuses

ROOT = Path(__file__).resolve().parent.parent


def _post(port: int, body: bytes, path: str = "/events") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _line(eid: str, price: float = 1.0) -> str:
    return json.dumps({"id": eid, "type": "trade", "client_id": "C003", "at": at("2026-11-20 10:01"),
                       "symbol": "019547", "side": "sell", "quantity": 10, "price": price, "market_price": 100})


def test_http_stores_before_answering_and_the_engine_thread_processes(db: Engine, cfg: Config) -> None:
    book.build(db)
    cfg = cfg.model_copy(update={"events": cfg.events.model_copy(update={"max_body_bytes": 2000})})
    s = service(db, cfg)
    s.start()
    with IntakeServer(s, port=0) as srv:
        code, body = _post(srv.port, (_line("h1") + "\n" + _line("h2", 99.0) + "\n").encode())
        assert (code, body) == (202, {"stored": 2, "duplicates": 0, "conflicts": []})
        assert statuses(db) == {"h1": "stored", "h2": "stored"}  # durable before the 202
        code, body = _post(srv.port, json.dumps([json.loads(_line("h1"))]).encode())
        assert (code, body) == (202, {"stored": 0, "duplicates": 1, "conflicts": []})
        code, body = _post(srv.port, b'{"id": "h3", "type": "trade"}\n')
        assert code == 400 and "request:1: client_id: required field is missing" in body["problems"]
        code, body = _post(srv.port, b"{}", path="/nope")
        assert code == 404
        code, body = _post(srv.port, b"x" * 2001)
        assert code == 413
    assert s.drain() == 2
    assert [f.rule_id for f in firings(db)] == ["trade_off_market_alert"]


def test_cli_post_stores_processes_and_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    eng = migrated_sqlite(tmp_path / "s.db")
    book.build(eng)
    review.demo_bootstrap(eng, shipped_config())  # the config the process reads; only approved event rules run
    f = tmp_path / "day.jsonl"
    f.write_text(_line("c1") + "\n" + _line("c1") + "\n", encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), "STEWARD_DATABASE_URL": url}
    run = ["events", "post", str(f)]
    r = cli_process.run(run, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert "stored 1, duplicates 1, processed 1, failed 0, firings 1" in r.stdout
    r = cli_process.run(run, cwd=ROOT, env=env)
    assert "stored 0, duplicates 2, processed 0, failed 0, firings 0" in r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "b", "type": "trade", "client_id": "C1", "at": "2026-11-20T10:00:00+08:00"}\n', encoding="utf-8")
    r = cli_process.run([*run[:-1], str(bad)], cwd=ROOT, env=env)
    assert r.returncode == 2 and f"{bad}:1: symbol: required field is missing" in r.stderr
    assert len(firings(eng)) == 1
    eng.dispose()

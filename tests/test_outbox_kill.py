"""Crash a real dispatcher process with SIGKILL between claim, send and record; after a
restart every message is delivered exactly once (the gateway honours idempotency keys)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine import clock
from tests.dispatch_helpers import Gateway, Mailbox, add_client, add_message, outbox_row

ROOT = Path(__file__).resolve().parent.parent


def _entry(url: str) -> list[str]:
    """The dispatcher process, on the test's clock."""
    return [sys.executable, "-m", "tests.dispatch_entry", "--db", url, "--now", clock.now().isoformat()]


def _dispatcher(eng: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    url = eng.url.render_as_string(hide_password=False)
    return subprocess.run([*_entry(url), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("step", ["claimed", "transmitting", "sent", "recorded"])
def test_gateway_send_killed_at_each_step_is_delivered_once(db: Engine, step: str) -> None:
    add_client(db, "K1")
    row_id = add_message(db, "K1", channel="sms")
    with Gateway() as gw:
        crashed = _dispatcher(db, "--gateway", gw.url, "--crash", step)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        assert outbox_row(db, row_id).state == ("sent" if step == "recorded" else "sending")
        again = _dispatcher(db, "--gateway", gw.url)  # lease still running: nothing is taken over
        assert again.returncode == 0, again.stderr
        assert outbox_row(db, row_id).state == ("sent" if step == "recorded" else "sending")
        later = _dispatcher(db, "--gateway", gw.url, "--later", "60")  # lease (30 s) has run out
        assert later.returncode == 0, later.stderr
        assert len(gw.deliveries) == 1 and gw.deliveries[0]["to"] == "13800000001"
        row = outbox_row(db, row_id)
        assert row.state == "sent" and row.receipt == "gw-1"
        assert [e["event"] for e in row.trail].count("sent") == 1


def test_smtp_killed_mid_send_resends_with_the_same_message_id(sqlite_engine: Engine) -> None:
    add_client(sqlite_engine, "K2")
    row_id = add_message(sqlite_engine, "K2", channel="email")
    with Mailbox() as box:
        port = str(box.port)
        assert _dispatcher(sqlite_engine, "--smtp-port", port, "--crash", "sent").returncode == -signal.SIGKILL
        assert _dispatcher(sqlite_engine, "--smtp-port", port, "--later", "60").returncode == 0
    # SMTP has no idempotency: the documented price of `on_uncertain: resend` is a duplicate
    # carrying the same Message-ID, which mailboxes that de-duplicate show once.
    assert len(box.messages) == 2 and box.messages[0]["Message-ID"] == box.messages[1]["Message-ID"]
    assert outbox_row(sqlite_engine, row_id).state == "sent"


def test_smtp_killed_mid_send_is_parked_for_review(sqlite_engine: Engine) -> None:
    add_client(sqlite_engine, "K3")
    row_id = add_message(sqlite_engine, "K3", channel="email")
    with Mailbox() as box:
        port = str(box.port)
        assert _dispatcher(sqlite_engine, "--smtp-port", port, "--crash", "sent", "--on-uncertain", "review").returncode == -signal.SIGKILL
        out = _dispatcher(sqlite_engine, "--smtp-port", port, "--later", "60", "--on-uncertain", "review")
        assert out.returncode == 0 and "uncertain=1" in out.stdout
    assert len(box.messages) == 1
    row = outbox_row(sqlite_engine, row_id)
    assert row.state == "uncertain" and row.reason == "SEND_UNCERTAIN"


def test_smtp_killed_before_transmitting_sends_once(sqlite_engine: Engine) -> None:
    add_client(sqlite_engine, "K4")
    add_message(sqlite_engine, "K4", channel="email")
    with Mailbox() as box:
        port = str(box.port)
        assert _dispatcher(sqlite_engine, "--smtp-port", port, "--crash", "claimed", "--on-uncertain", "review").returncode == -signal.SIGKILL
        assert _dispatcher(sqlite_engine, "--smtp-port", port, "--later", "60", "--on-uncertain", "review").returncode == 0
    assert len(box.messages) == 1


def test_an_uncertain_email_is_resolved_by_hand(sqlite_engine: Engine) -> None:
    from engine.dispatch.outbox import mark_sent_by_hand, retry_dead

    add_client(sqlite_engine, "K5")
    row_id = add_message(sqlite_engine, "K5", channel="email", state="uncertain")
    with sqlite_engine.begin() as conn:
        assert mark_sent_by_hand(conn, row_id, "found <key@steward.invalid> in the mail log", actor="ops")
        assert not mark_sent_by_hand(conn, row_id, "twice", actor="ops")  # only uncertain rows
        assert not retry_dead(conn, row_id, actor="ops")
    row = outbox_row(sqlite_engine, row_id)
    assert row.state == "sent" and row.receipt.startswith("found")


def test_two_dispatcher_processes_at_once_send_each_message_once(db: Engine) -> None:
    for n in range(30):
        add_client(db, f"P{n:02d}", phone=f"1380000{n:04d}")
        add_message(db, f"P{n:02d}")
    url = db.url.render_as_string(hide_password=False)
    with Gateway() as gw:
        gw.delay = 0.02  # keep both busy at the same time
        procs = [subprocess.Popen([*_entry(url), "--gateway", gw.url], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    sent = [int(o.split("sent=")[1].split()[0]) for o, _ in outs]
    assert sum(sent) == 30 and gw.requests == 30 and len(gw.deliveries) == 30

"""Outbox delivery against real peers: retries with backoff, dead letters, timeouts, claims."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.dispatch.outbox import OUTBOX, claim, dispatch_once, retry_dead
from tests.dispatch_helpers import Gateway, Mailbox, add_client, add_message, outbox_row, with_dispatch

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)  # 11:00 in Shanghai, inside the window


def test_sms_goes_through_the_gateway_with_its_idempotency_key(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    row_id = add_message(db, "C1", bypass=False)
    with Gateway() as gw:
        s = dispatch_once(db, with_dispatch(cfg, gateway={"url": gw.url}), now=NOW)
    row = outbox_row(db, row_id)
    assert s.sent == 1 and row.state == "sent" and row.receipt == "gw-1" and row.attempts == 1
    assert gw.deliveries == [{"channel": "sms", "to": "13800000001", "text": "您好", "subject": "主题",
                              "client_ref": "C1", "idempotency_key": row.idempotency_key, "key": row.idempotency_key}]


def test_email_goes_through_smtp_with_a_message_id_from_the_key(sqlite_engine: Engine, cfg: Config) -> None:
    add_client(sqlite_engine, "C1")
    row_id = add_message(sqlite_engine, "C1", channel="email", body="Dear client")
    with Mailbox() as box:
        dispatch_once(sqlite_engine, with_dispatch(cfg, email={"port": box.port}), now=NOW)
    row = outbox_row(sqlite_engine, row_id)
    assert row.state == "sent" and len(box.messages) == 1
    m = box.messages[0]
    assert m["To"] == "c@example.com" and m["Subject"] == "主题" and row.idempotency_key in m["Message-ID"]
    assert m.get_content().strip() == "Dear client"


def test_failures_back_off_then_land_in_dead_letter(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    row_id = add_message(db, "C1")
    with Gateway() as gw:
        gw.fail_next = 99
        c = with_dispatch(cfg, gateway={"url": gw.url}, retry={"max_attempts": 3, "backoff_seconds": 10})
        assert dispatch_once(db, c, now=NOW).retried == 1
        row = outbox_row(db, row_id)
        assert row.state == "queued" and row.reason == "GATEWAY_HTTP_500"
        assert row.next_attempt_at.replace(tzinfo=timezone.utc) == NOW + timedelta(seconds=10)
        assert dispatch_once(db, c, now=NOW + timedelta(seconds=9)).claimed == 0  # not due yet
        assert dispatch_once(db, c, now=NOW + timedelta(seconds=10)).retried == 1
        assert outbox_row(db, row_id).next_attempt_at.replace(tzinfo=timezone.utc) == NOW + timedelta(seconds=30)  # doubled
        assert dispatch_once(db, c, now=NOW + timedelta(seconds=30)).dead == 1
        row = outbox_row(db, row_id)
        assert row.state == "dead" and row.reason == "RETRIES_EXHAUSTED" and gw.requests == 3
        assert "500" in row.last_error and [e["event"] for e in row.trail if e["event"] != "transmitting"] == ["retry", "retry", "dead"]
        with db.begin() as conn:  # a supervisor puts it back once the provider is fixed
            assert retry_dead(conn, row_id, NOW + timedelta(minutes=5), actor="ops")
        gw.fail_next = 0
        assert dispatch_once(db, c, now=NOW + timedelta(minutes=5)).sent == 1
    assert len(gw.deliveries) == 1


def test_rejection_is_dead_at_once(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    row_id = add_message(db, "C1")
    with Gateway() as gw:
        gw.fail_next, gw.status = 1, 400
        s = dispatch_once(db, with_dispatch(cfg, gateway={"url": gw.url}), now=NOW)
    assert s.dead == 1 and outbox_row(db, row_id).reason == "GATEWAY_HTTP_400"


def test_timeout_is_retried_with_the_same_key_and_delivered_once(sqlite_engine: Engine, cfg: Config) -> None:
    add_client(sqlite_engine, "C1")
    row_id = add_message(sqlite_engine, "C1")
    with Gateway() as gw:
        gw.delay = 1.0
        c = with_dispatch(cfg, gateway={"url": gw.url, "timeout_seconds": 0.2}, retry={"backoff_seconds": 1})
        assert dispatch_once(sqlite_engine, c, now=NOW).retried == 1
        assert outbox_row(sqlite_engine, row_id).reason == "GATEWAY_UNREACHABLE"
        gw.delay = 0
        assert dispatch_once(sqlite_engine, c, now=NOW + timedelta(seconds=1)).sent == 1
    assert len(gw.deliveries) == 1 and gw.requests == 2


def test_missing_address_and_unconfigured_gateway_are_dead_with_a_reason(sqlite_engine: Engine, cfg: Config) -> None:
    add_client(sqlite_engine, "C1", phone=None)
    add_client(sqlite_engine, "C2")
    a = add_message(sqlite_engine, "C1")
    b = add_message(sqlite_engine, "C2")
    dispatch_once(sqlite_engine, cfg, now=NOW)
    assert outbox_row(sqlite_engine, a).reason == "NO_ADDRESS"
    b_row = outbox_row(sqlite_engine, b)
    assert b_row.state == "dead" and b_row.reason == "GATEWAY_NOT_CONFIGURED" and "dispatch.gateway.url" in b_row.last_error


def test_quiet_hours_hold_at_send_time_unless_urgent(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    night = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)  # 22:00 in Shanghai
    held = add_message(db, "C1", bypass=False)
    urgent = add_message(db, "C1", bypass=True, rule_id="margin")
    with Gateway() as gw:
        s = dispatch_once(db, with_dispatch(cfg, gateway={"url": gw.url}), now=night)
    assert s.held == 1 and s.sent == 1
    row = outbox_row(db, held)
    assert row.state == "held" and row.reason == "WINDOW_QUIET_HOURS" and row.attempts == 0
    assert row.not_before.replace(tzinfo=timezone.utc) == datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)  # 09:00 local
    assert outbox_row(db, urgent).state == "sent"


def test_two_workers_never_claim_the_same_row(db: Engine, cfg: Config) -> None:
    add_client(db, "C1")
    ids = {add_message(db, "C1", window=f"2026-11-{d:02d}") for d in range(1, 11)}
    a = claim(db, cfg, NOW, "worker-a", limit=6)
    b = claim(db, cfg, NOW, "worker-b", limit=6)
    assert len(a) == 6 and len(b) == 4 and {c.id for c in a} | {c.id for c in b} == ids
    assert not {c.id for c in a} & {c.id for c in b}
    with db.connect() as conn:
        owners = dict(conn.execute(select(OUTBOX.c.id, OUTBOX.c.claimed_by)).all())
    assert sorted(owners.values()).count("worker-a") == 6


def test_dispatch_commands_show_and_requeue_dead_letters(sqlite_engine: Engine) -> None:
    from typer.testing import CliRunner

    from engine.cli.app import app
    from tests.identity_helpers import cli_token

    add_client(sqlite_engine, "C1", phone=None)
    row_id = add_message(sqlite_engine, "C1")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    run = CliRunner().invoke(app, ["--database", url, "dispatch", "run"])
    assert run.exit_code == 2 and "nothing is approved yet" in run.output  # releases re-check approved rules only
    dispatch_once(sqlite_engine, Config(), now=NOW)
    out = CliRunner().invoke(app, ["--database", url, "dispatch", "list", "--state", "dead"])
    assert out.exit_code == 0 and "dead: 1" in out.output and "NO_ADDR" in out.output.replace("\n", "")
    assert "steward login" in CliRunner().invoke(app, ["--database", url, "dispatch", "retry", str(row_id)]).output
    env = {"STEWARD_TOKEN": cli_token(sqlite_engine, "op", ["operator"])}
    assert CliRunner(env=env).invoke(app, ["--database", url, "dispatch", "retry", str(row_id)]).exit_code == 0
    assert outbox_row(sqlite_engine, row_id).state == "queued"
    again = CliRunner(env=env).invoke(app, ["--database", url, "dispatch", "retry", str(row_id)])
    assert again.exit_code == 2 and "is not dead or uncertain" in again.output

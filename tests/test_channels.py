"""The channel registry and the built-in channels' error mapping, against real peers."""

from __future__ import annotations

import pytest

from engine.dispatch import channels
from engine.dispatch.channels import OutMessage, PermanentError, TransientError
from engine.dispatch.channels.email import EmailChannel
from engine.config.base import Config
from tests.dispatch_helpers import Gateway, Mailbox, free_port

MSG = OutMessage("k" * 64, "sms", "13800000001", None, "您好", "zh-CN", "C1")


def test_builtins_register_through_the_public_door() -> None:
    assert channels.names() == ["email", "im", "phone", "sms"]
    with pytest.raises(ValueError, match="already registered"):
        channels.register_channel("sms", lambda cfg: channels.get("sms", cfg))


def test_unknown_channel_is_a_permanent_error_listing_the_known(cfg: Config) -> None:
    with pytest.raises(PermanentError, match="no channel 'fax' is registered .known: email, im, phone, sms.") as e:
        channels.get("fax", cfg.dispatch)
    assert e.value.code == "CHANNEL_UNKNOWN"


def test_phone_contacts_are_tasks_not_sends(cfg: Config) -> None:
    with pytest.raises(PermanentError) as e:
        channels.get("phone", cfg.dispatch).send(MSG)
    assert e.value.code == "PHONE_IS_TASK"


def test_gateway_sends_the_key_and_a_bearer_token(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret")
    with Gateway() as gw:
        d = cfg.dispatch.model_copy(update={"gateway": cfg.dispatch.gateway.model_copy(update={"url": gw.url, "token_env": "GW_TOKEN"})})
        ch = channels.get("im", d)
        assert ch.send(MSG) == "gw-1" and ch.send(MSG) == "gw-1"  # the same key: one delivery
    assert len(gw.deliveries) == 1 and gw.deliveries[0]["channel"] == "im"


def test_gateway_unreachable_is_transient(cfg: Config) -> None:
    d = cfg.dispatch.model_copy(update={"gateway": cfg.dispatch.gateway.model_copy(update={"url": f"http://127.0.0.1:{free_port()}/send", "timeout_seconds": 1})})
    with pytest.raises(TransientError) as e:
        channels.get("sms", d).send(MSG)
    assert e.value.code == "GATEWAY_UNREACHABLE"


def test_gateway_429_is_transient_and_404_permanent(cfg: Config) -> None:
    with Gateway() as gw:
        d = cfg.dispatch.model_copy(update={"gateway": cfg.dispatch.gateway.model_copy(update={"url": gw.url})})
        gw.fail_next, gw.status = 1, 429
        with pytest.raises(TransientError):
            channels.get("sms", d).send(MSG)
        gw.fail_next, gw.status = 1, 404
        with pytest.raises(PermanentError):
            channels.get("sms", d).send(MSG)


def test_smtp_unreachable_is_transient(cfg: Config) -> None:
    ch = EmailChannel(cfg.dispatch.email.model_copy(update={"port": free_port(), "timeout_seconds": 1}))
    with pytest.raises(TransientError) as e:
        ch.send(OutMessage("k" * 64, "email", "a@example.com", "s", "b"))
    assert e.value.code == "SMTP_UNREACHABLE"


def test_smtp_rejected_recipient_is_permanent(cfg: Config) -> None:
    with Mailbox() as box:
        ch = EmailChannel(cfg.dispatch.email.model_copy(update={"port": box.port}))
        with pytest.raises(PermanentError) as e:
            ch.send(OutMessage("k" * 64, "email", "nobody@rejected.invalid", "s", "b"))
    assert e.value.code == "SMTP_RECIPIENT_REFUSED" and not box.messages

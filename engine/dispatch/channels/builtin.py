"""Registers the built-in channels."""

from __future__ import annotations

from engine.dispatch.channels import register_channel
from engine.dispatch.channels.email import EmailChannel
from engine.dispatch.channels.http_gateway import GatewayChannel
from engine.dispatch.channels.phone import PhoneChannel


def register() -> None:
    """Called once by engine.composition.install()."""
    register_channel("email", lambda cfg: EmailChannel(cfg.email))
    register_channel("sms", lambda cfg: GatewayChannel("sms", cfg.gateway))
    register_channel("im", lambda cfg: GatewayChannel("im", cfg.gateway))
    register_channel("phone", lambda cfg: PhoneChannel())

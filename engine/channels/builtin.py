"""Registers the built-in channels."""

from __future__ import annotations

from engine.channels import register_channel
from engine.channels.email import EmailChannel
from engine.channels.http_gateway import GatewayChannel
from engine.channels.phone import PhoneChannel

register_channel("email", lambda cfg: EmailChannel(cfg.email))
register_channel("sms", lambda cfg: GatewayChannel("sms", cfg.gateway))
register_channel("im", lambda cfg: GatewayChannel("im", cfg.gateway))
register_channel("phone", lambda cfg: PhoneChannel())

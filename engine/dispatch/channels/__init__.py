"""Delivery channels behind one registry: email (SMTP), sms and im (HTTP gateway), phone.

A channel turns an `OutMessage` into a provider receipt, or raises `TransientError`
(retry later with the same idempotency key) or `PermanentError` (dead letter).
Built-ins register through `register_channel`, the same door a firm's own channel uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from engine.config.dispatch import DispatchConfig


@dataclass(frozen=True)
class OutMessage:
    idempotency_key: str
    channel: str
    recipient: str
    subject: str | None
    body: str
    locale: str | None = None
    client_ref: str | None = None


class ChannelError(Exception):
    """A send failed; `code` is the reason code recorded on the outbox row."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class TransientError(ChannelError):
    """Worth retrying: timeouts, connection errors, 5xx, 429."""


class PermanentError(ChannelError):
    """Retrying cannot help: rejected recipient, 4xx, channel not configured."""


class Channel(Protocol):
    name: str
    idempotent: bool
    """True when the provider honours the idempotency key (a resend after a crash is safe)."""

    def send(self, msg: OutMessage) -> str:
        """Deliver and return the provider's receipt."""
        ...


ChannelFactory = Callable[[DispatchConfig], Channel]
_FACTORIES: dict[str, ChannelFactory] = {}


def register_channel(name: str, factory: ChannelFactory) -> ChannelFactory:
    if name in _FACTORIES:
        raise ValueError(f"channel {name!r} is already registered")
    _FACTORIES[name] = factory
    return factory


def names() -> list[str]:
    return sorted(_FACTORIES)


def get(name: str, cfg: DispatchConfig) -> Channel:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise PermanentError("CHANNEL_UNKNOWN", f"no channel {name!r} is registered (known: {', '.join(names())})")
    return factory(cfg)


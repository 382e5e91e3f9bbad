"""The `events:` section of config.yaml: event rules, intake endpoint, engine thread.

Kept in its own module (imported by engine.config.base) so the defaults live in one place.
Every key is documented in docs/config.md.
"""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Sender(BaseModel):
    """One system that posts events: its secret comes from an environment variable, never the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret_env: str = Field(min_length=1)
    """Environment variable holding the sender's shared secret."""
    scheme: Literal["bearer", "hmac"] = "hmac"
    """`bearer`: `Authorization: Bearer <secret>`; `hmac`: `X-Steward-Signature: sha256=<hex HMAC-SHA256 of the body>`."""


class EventsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules_dir: str = "rules/events"
    """Folder of event rules (`kind: event`); their tests are in its tests/ folder."""
    session_close: time = time(15, 0)
    """Local time a trading session closes: deadlines such as next_session_close end here."""
    host: str = "127.0.0.1"
    """Interface the HTTP intake endpoint listens on."""
    port: int = Field(8091, ge=0, le=65535)
    """Port of the HTTP intake endpoint (0 picks a free one)."""
    max_body_bytes: int = Field(5_000_000, ge=1000)
    """Largest request body the endpoint accepts (413 beyond)."""
    read_timeout_seconds: float = Field(10.0, gt=0, le=300)
    """A connection that sends nothing for this long is closed (a stalled client holds nothing)."""
    senders: dict[str, Sender] = Field(default_factory=dict)
    """Senders allowed to post, by name; each authenticates with its secret. Empty: only loopback, unauthenticated."""
    tick_seconds: float = Field(1.0, gt=0, le=60)
    """How often the engine thread checks absence deadlines when no event arrives."""

"""The `events:` section of config.yaml: event rules, intake endpoint, engine thread.

Kept in its own module (imported by engine.config.base) so the defaults live in one place.
Every key is documented in docs/config.md.
"""

from __future__ import annotations

from datetime import time

from pydantic import BaseModel, ConfigDict, Field


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
    tick_seconds: float = Field(1.0, gt=0, le=60)
    """How often the engine thread checks absence deadlines when no event arrives."""

"""The `dispatch:` section of config.yaml: contact policy, channels, retries, scheduler, webhook.

Kept in its own module (imported by engine.config.base) so the section's defaults live in one
place. Every key is documented in docs/config.md.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION_UNITS = {"d": "days", "w": "weeks", "h": "hours", "min": "minutes", "s": "seconds"}


def parse_period(text: str) -> timedelta:
    """`7d`, `2w`, `12h`, `45min`, `30s` -> timedelta."""
    s = str(text).strip()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        num = s[: -len(unit)].strip()
        if s.endswith(unit) and num.isdigit():
            return timedelta(**{_DURATION_UNITS[unit]: int(num)})
    raise ValueError(f"expected a duration such as 7d, 2w, 12h, 45min or 30s, got {text!r}")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_M):
    """A daily contact window in the client's local time; start inclusive, end exclusive."""

    start: time = time(9, 0)
    end: time = time(20, 0)

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.end <= self.start:
            raise ValueError("end must be later than start (windows do not cross midnight)")
        return self


class ContactWindows(_M):
    """Per regulator profile (COMPLIANCE.md section 5)."""

    cn: Window = Window(start=time(9, 0), end=time(20, 0))
    us: Window = Window(start=time(8, 0), end=time(21, 0))
    eu: Window = Window(start=time(8, 0), end=time(20, 0))


class FrequencyCap(_M):
    channel: Literal["sms", "email", "im", "phone"]
    max: int = Field(ge=1)
    period: str = "7d"

    @field_validator("period")
    @classmethod
    def _period(cls, v: str) -> str:
        parse_period(v)
        return v


class EmailConfig(_M):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "service@example.com"
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    """Name of the environment variable holding the SMTP password (never the password)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    on_uncertain: Literal["resend", "review"] = "resend"
    """After a crash mid-SMTP: resend (same Message-ID) or park the message for review."""


class GatewayConfig(_M):
    url: str | None = None
    """HTTP endpoint of the SMS/IM gateway (POST); unset means sms and im cannot be sent."""
    token_env: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class RetryConfig(_M):
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=60.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    lease_seconds: float = Field(default=300.0, gt=0)
    """A claim older than this is presumed crashed and may be taken over."""
    batch_size: int = Field(default=100, ge=1)


class SchedulerConfig(_M):
    nightly_at: str = "17:00"
    """Local time (config timezone) of the nightly evaluation on trading days: HH:MM or HH:MM:SS."""
    intraday_every_minutes: int = Field(default=15, ge=1, le=60)
    intraday_hours: str = "9-15"
    """Cron hour range (local time) in which urgent rules are evaluated on trading days."""
    dispatch_every_seconds: int = Field(default=60, ge=1)
    escalation_at: str = "09:00"
    misfire_grace_seconds: int = Field(default=82800, ge=1)
    """How late a missed run may still start (default 23 h: a machine down at 17:00 catches up next morning)."""
    calendar_horizon_days: int = Field(default=60, ge=1)
    """Alert (log, `steward scheduler --status`, `calendar show`) when the trading calendar ends within this many days."""
    lock_key: int = 0x53544557
    """PostgreSQL advisory lock key shared by all schedulers of one database."""
    lock_file: str = "var/scheduler.lock"
    """SQLite only: the file locked by the active scheduler."""
    standby_poll_seconds: float = Field(default=2.0, gt=0)
    job_stale_seconds: float = Field(default=300.0, ge=5)
    """A nightly slot left "running" with no heartbeat for this long belonged to a scheduler that died
    (killed, machine lost); the next leader takes it over and completes the day. The running
    scheduler stamps its heartbeat every fifth of this."""

    @field_validator("nightly_at", "escalation_at")
    @classmethod
    def _clock(cls, v: str) -> str:
        parse_clock(v)
        return v


def parse_clock(v: str) -> time:
    try:
        return time.fromisoformat(v)
    except ValueError as e:
        raise ValueError(f"expected a local time HH:MM or HH:MM:SS, got {v!r}") from e


class WebhookConfig(_M):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    token_env: str | None = None
    signature_env: str | None = None
    keywords: tuple[str, ...] = ("退订", "TD", "T", "R", "STOP", "UNSUBSCRIBE", "BAJA")


class DispatchConfig(_M):
    contact_windows: ContactWindows = ContactWindows()
    frequency_caps: tuple[FrequencyCap, ...] = (
        FrequencyCap(channel="sms", max=2, period="7d"),
        FrequencyCap(channel="email", max=2, period="7d"),
        FrequencyCap(channel="im", max=3, period="7d"),
    )
    max_marketing_per_day: int = Field(default=1, ge=1)
    require_marketing_consent: bool = False
    do_not_call_blocks_service: bool = False
    email: EmailConfig = EmailConfig()
    gateway: GatewayConfig = GatewayConfig()
    retry: RetryConfig = RetryConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    webhook: WebhookConfig = WebhookConfig()

"""Time as each client lives it: their zone, their contact window, their "today".

A client without a zone of their own lives in the branch's (`timezone` in config.yaml).
The day's messages are evaluated after the branch's close (`dispatch.scheduler.nightly_at`)
and reach a client when their own contact window next opens; a greeting is due on the
client's date at that moment, so a client in Auckland, whose evening it already is,
is greeted for tomorrow's birthday.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from engine.config.base import Config
from engine.config.dispatch import Window, parse_clock


def zone(cfg: Config, name: str | None) -> ZoneInfo:
    return ZoneInfo(name) if name else cfg.tz


def window_of(cfg: Config) -> Window:
    return getattr(cfg.dispatch.contact_windows, cfg.regulator_profile)  # type: ignore[no-any-return]


def in_window(cfg: Config, now: datetime, tz: ZoneInfo | None = None) -> bool:
    w, local = window_of(cfg), now.astimezone(tz or cfg.tz)
    return w.start <= local.time().replace(tzinfo=None) < w.end


def next_open(cfg: Config, now: datetime, days_later: int = 0, tz: ZoneInfo | None = None) -> datetime:
    """The next moment the window opens in `tz` (the branch's by default), as UTC, at least
    `days_later` local days after now. Local wall-clock times, so DST shifts the UTC moment."""
    zone_ = tz or cfg.tz
    w, local = window_of(cfg), now.astimezone(zone_)
    day = local.date() + timedelta(days=days_later)
    opening = datetime.combine(day, w.start, tzinfo=zone_)
    if days_later == 0 and local.time().replace(tzinfo=None) >= w.start:
        opening = datetime.combine(day + timedelta(days=1), w.start, tzinfo=zone_)
    return opening.astimezone(timezone.utc)  # stored as UTC: SQLite keeps no offset


def evaluation_moment(cfg: Config, as_of: date) -> datetime:
    """When the branch evaluates `as_of`: nightly_at on that date in the branch zone."""
    return datetime.combine(as_of, parse_clock(cfg.dispatch.scheduler.nightly_at), tzinfo=cfg.tz)


def client_today(cfg: Config, as_of: date, zone_name: str | None) -> date:
    """The client's own date when the messages of evaluation day `as_of` reach them."""
    tz = zone(cfg, zone_name)
    if tz == cfg.tz:
        return as_of
    at = evaluation_moment(cfg, as_of)
    reach = at if in_window(cfg, at, tz) else next_open(cfg, at, tz=tz)
    return reach.astimezone(tz).date()

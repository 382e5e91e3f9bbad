"""Each client's own time: contact windows, quiet hours and the day of greetings in the client's
zone (America/New_York, Europe/Madrid, Asia/Shanghai), across daylight-saving changes."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from engine.config.base import Config
from engine.dispatch.outbox import dispatch_once
from engine.errors import SourceErrors
from engine.facts import client_time, importer
from engine.models import Client
from tests.dispatch_helpers import Gateway, add_client, add_message, outbox_row, with_dispatch

NY, MADRID, SHANGHAI = ZoneInfo("America/New_York"), ZoneInfo("Europe/Madrid"), ZoneInfo("Asia/Shanghai")


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


@pytest.mark.parametrize("tz, moment, inside", [
    (NY, utc(2026, 3, 7, 13, 59), False),      # 08:59 EST, the day before US clocks spring forward
    (NY, utc(2026, 3, 7, 14, 0), True),        # 09:00 EST
    (NY, utc(2026, 3, 9, 13, 0), True),        # 09:00 EDT: one hour earlier in UTC after the change
    (NY, utc(2026, 3, 9, 12, 59), False),
    (MADRID, utc(2026, 10, 24, 7, 0), True),   # 09:00 CEST, the day before Europe falls back
    (MADRID, utc(2026, 10, 26, 7, 0), False),  # 08:00 CET
    (MADRID, utc(2026, 10, 26, 8, 0), True),   # 09:00 CET
    (SHANGHAI, utc(2026, 3, 9, 13, 0), False),  # 21:00 in Shanghai: quiet hours there, window open in New York
])
def test_window_is_the_clients_local_time(cfg: Config, tz: ZoneInfo, moment: datetime, inside: bool) -> None:
    assert client_time.in_window(cfg, moment, tz) is inside


@pytest.mark.parametrize("tz, after, opens", [
    (NY, utc(2026, 3, 8, 2, 0), utc(2026, 3, 8, 13, 0)),       # Sat 21:00 EST -> Sun 09:00 EDT (DST began 02:00)
    (NY, utc(2026, 10, 31, 23, 30), utc(2026, 11, 1, 14, 0)),  # 19:30 EDT is inside; after it: next day 09:00 EST
    (MADRID, utc(2026, 3, 28, 21, 0), utc(2026, 3, 29, 7, 0)),  # 22:00 CET -> 09:00 CEST
    (SHANGHAI, utc(2026, 3, 8, 13, 0), utc(2026, 3, 9, 1, 0)),  # no DST: always 01:00 UTC
])
def test_quiet_hours_end_at_the_clients_09_00_across_dst(cfg: Config, tz: ZoneInfo, after: datetime, opens: datetime) -> None:
    assert client_time.next_open(cfg, after, tz=tz) == opens


def test_greeting_day_is_the_clients_date_when_the_message_reaches_them(cfg: Config) -> None:
    as_of = date(2026, 6, 15)  # evaluated 17:00 Shanghai = 09:00 UTC
    assert client_time.client_today(cfg, as_of, None) == as_of
    assert client_time.client_today(cfg, as_of, "America/New_York") == as_of  # reaches them 09:00 the same day
    assert client_time.client_today(cfg, as_of, "Europe/Madrid") == as_of     # 11:00 there: inside the window
    assert client_time.client_today(cfg, as_of, "Pacific/Auckland") == date(2026, 6, 16)  # 21:00 there: tomorrow


def test_birthday_fact_uses_the_clients_day(cfg: Config) -> None:
    from engine.facts.playbook import _calendar_days
    from engine.facts.base import FactContext

    ctx = FactContext(None, cfg, date(2026, 6, 15), "", "~", date(2026, 5, 15), {"next_session": date(2026, 6, 16)})  # type: ignore[arg-type]
    batch = {"A": {"birth_date": date(1960, 6, 16), "timezone": "Pacific/Auckland"},
             "S": {"birth_date": date(1960, 6, 16), "timezone": "Asia/Shanghai"}}
    _calendar_days(ctx, batch)  # type: ignore[arg-type]
    assert batch["A"]["days_to_birthday"] == 0 and batch["A"]["birthday_due"] is True
    assert batch["S"]["days_to_birthday"] == 1


def test_a_new_york_client_is_held_until_0900_new_york_at_send_time(db: Engine, cfg: Config) -> None:
    add_client(db, "NY1")
    add_client(db, "SH1")
    with db.begin() as conn:
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == "NY1").values(timezone="America/New_York"))  # type: ignore[attr-defined]
    now = utc(2026, 11, 23, 3, 0)  # 11:00 Shanghai (open), 22:00 New York (quiet)
    ny = add_message(db, "NY1", bypass=False, next_attempt_at=now)
    sh = add_message(db, "SH1", bypass=False, rule_id="r2", next_attempt_at=now)
    with Gateway() as gw:
        s = dispatch_once(db, with_dispatch(cfg, gateway={"url": gw.url}), now=now)
    assert s.sent == 1 and outbox_row(db, sh).state == "sent"
    row = outbox_row(db, ny)
    assert row.state == "held" and row.reason == "WINDOW_QUIET_HOURS"
    held = row.not_before if row.not_before.tzinfo else row.not_before.replace(tzinfo=timezone.utc)
    assert held == utc(2026, 11, 23, 14, 0)  # 09:00 EST


def test_import_takes_a_time_zone_and_names_a_bad_one(sqlite_engine: Engine, tmp_path: Path) -> None:
    from sqlalchemy import select

    rows = "id,name,opened_on,locale,timezone\nC1,张伟,2020-01-01,zh-CN,Europe/Madrid\nC2,李四,2020-01-01,en,Mars/Olympus\n"
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "clients.csv").write_text(rows, encoding="utf-8")
    with pytest.raises(SourceErrors) as e:
        importer.import_dir(sqlite_engine, folder)
    msg = str(e.value.problems[0])
    assert "clients.csv:3" in msg and "timezone" in msg and "Mars/Olympus" in msg
    (folder / "clients.csv").write_text(rows.replace("Mars/Olympus", ""), encoding="utf-8")
    importer.import_dir(sqlite_engine, folder)
    with sqlite_engine.connect() as conn:
        zones = dict(conn.execute(select(Client.__table__.c.id, Client.__table__.c.timezone)).all())  # type: ignore[attr-defined]
    assert zones == {"C1": "Europe/Madrid", "C2": None}

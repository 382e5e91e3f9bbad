"""An exchange's published closures, read from CSV or iCalendar, and written as trading days.

Exchanges publish next year's holidays in December; exchange-calendars learns them only with
a new release. `steward calendar import FILE` reads such a list (docs/operations.md):

- CSV, UTF-8 (a BOM is fine), header `date` plus optional `status` (closed, the default, or
  open) and `name`; `#` lines are comments. One row per day.
- iCalendar (.ics): every VEVENT with an all-day DTSTART (`DTSTART;VALUE=DATE:20270101`) is a
  closure, through the day before DTEND when it has one; SUMMARY names it.

The file covers whole years (1 January of its first year through 31 December of its last)
unless the caller narrows it. Within the covered range Monday-Friday are open and weekends
closed, except the days the file names. Every problem is reported with file and line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.errors import Problem, SourceErrors, StewardError, rel
from engine.models import TradingDay

CSV_COLUMNS = ("date", "status", "name")
_T = TradingDay.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ClosureFile:
    path: str
    sha256: str
    first: date
    last: date
    closed: dict[date, str] = field(default_factory=dict)
    """Day -> holiday name ('' when the file gives none)."""
    opened: frozenset[date] = frozenset()
    """Days the file says are open (e.g. a weekend session)."""

    def is_open(self, day: date, weekends_closed: bool = True) -> bool:
        if day in self.closed:
            return False
        return day in self.opened or not (weekends_closed and day.weekday() >= 5)


def _iso(value: str, where: str, line: int, key: str, problems: list[Problem]) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        problems.append(Problem(where, line, key, f"expected a date YYYY-MM-DD, got {value!r}"))
        return None


def _parse_csv(text: str, where: str, problems: list[Problem]) -> tuple[dict[date, str], set[date]]:
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    closed: dict[date, str] = {}
    opened: set[date] = set()
    if not lines:
        problems.append(Problem(where, None, "", "no rows: expected a header 'date,status,name' and one row per day"))
        return closed, opened
    reader = csv.reader(io.StringIO("\n".join(ln for _, ln in lines)))
    header = [h.strip().lower() for h in next(reader)]
    hline = lines[0][0]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if "date" not in header or unknown:
        problems.append(Problem(where, hline, "header", f"expected columns date[,status][,name], got {','.join(header)!r}"))
        return closed, opened
    for (n, _), row in zip(lines[1:], reader):
        rec = dict(zip(header, (v.strip() for v in row)))
        if len(row) != len(header):
            problems.append(Problem(where, n, "", f"expected {len(header)} values, got {len(row)}"))
            continue
        day = _iso(rec["date"], where, n, "date", problems)
        status = rec.get("status", "closed").lower() or "closed"
        if status not in ("closed", "open"):
            problems.append(Problem(where, n, "status", f"expected closed or open, got {rec['status']!r}"))
            continue
        if day is None:
            continue
        if day in closed or day in opened:
            problems.append(Problem(where, n, "date", f"{day} is listed twice"))
        elif status == "open":
            opened.add(day)
        else:
            closed[day] = rec.get("name", "")
    return closed, opened


def _unfold(text: str) -> list[tuple[int, str]]:
    """RFC 5545 content lines: a line starting with a space or tab continues the one before."""
    out: list[tuple[int, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if raw[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + raw[1:])
        elif raw.strip():
            out.append((n, raw))
    return out


def _ics_date(value: str, where: str, line: int, key: str, problems: list[Problem]) -> date | None:
    v = value.strip()
    if len(v) != 8 or not v.isdigit():
        problems.append(Problem(where, line, key, f"expected an all-day date (VALUE=DATE:YYYYMMDD), got {v!r}"))
        return None
    try:
        return date(int(v[:4]), int(v[4:6]), int(v[6:]))
    except ValueError:
        problems.append(Problem(where, line, key, f"not a calendar date: {v!r}"))
        return None


def _parse_ics(text: str, where: str, problems: list[Problem]) -> dict[date, str]:
    closed: dict[date, str] = {}
    event: dict[str, tuple[int, str]] | None = None
    lines = _unfold(text)
    if not lines or lines[0][1].strip().upper() != "BEGIN:VCALENDAR":
        problems.append(Problem(where, 1, "", "an iCalendar file starts with BEGIN:VCALENDAR"))
        return closed
    for n, ln in lines:
        name, _, value = ln.partition(":")
        key = name.split(";")[0].strip().upper()
        if key == "BEGIN" and value.strip().upper() == "VEVENT":
            event = {"BEGIN": (n, "")}
        elif key == "END" and value.strip().upper() == "VEVENT" and event is not None:
            _ics_event(event, where, closed, problems)
            event = None
        elif event is not None and key in ("DTSTART", "DTEND", "SUMMARY"):
            event[key] = (n, value.replace("\\,", ",").replace("\\;", ";"))
    return closed


def _ics_event(event: dict[str, tuple[int, str]], where: str, closed: dict[date, str], problems: list[Problem]) -> None:
    if "DTSTART" not in event:
        problems.append(Problem(where, event["BEGIN"][0], "DTSTART", "VEVENT without DTSTART"))
        return
    start = _ics_date(event["DTSTART"][1], where, event["DTSTART"][0], "DTSTART", problems)
    end = _ics_date(event["DTEND"][1], where, event["DTEND"][0], "DTEND", problems) if "DTEND" in event else None
    if start is None or ("DTEND" in event and end is None):
        return
    stop = end or start + timedelta(days=1)  # DTEND is exclusive for all-day events
    if stop <= start:
        problems.append(Problem(where, event["DTEND"][0], "DTEND", f"ends ({stop}) before it starts ({start})"))
        return
    d = start
    while d < stop:
        closed[d] = event.get("SUMMARY", (0, ""))[1].strip()
        d += timedelta(days=1)


def read_closures(path: Path, first: date | None = None, last: date | None = None) -> ClosureFile:
    """Parse a CSV or iCalendar closure list; every problem at once, with file and line."""
    where = rel(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except OSError as e:
        raise StewardError(f"{where}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise StewardError(f"{where}: not UTF-8 (byte {e.start}): save the file as UTF-8") from e
    problems: list[Problem] = []
    opened: set[date] = set()
    if path.suffix.lower() in (".ics", ".ical", ".icalendar") or text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        closed = _parse_ics(text, where, problems)
    else:
        closed, opened = _parse_csv(text, where, problems)
    named = sorted({*closed, *opened})
    if not problems and not named and (first is None or last is None):
        problems.append(Problem(where, None, "", "lists no days: say which range it covers with --from and --through"))
    if problems:
        raise SourceErrors(problems)
    lo = first or date(named[0].year, 1, 1)
    hi = last or date(named[-1].year, 12, 31)
    if hi < lo:
        raise StewardError(f"--through {hi} is before --from {lo}")
    outside = [d for d in named if not lo <= d <= hi]
    if outside:
        raise StewardError(f"{where}: {len(outside)} day(s) outside {lo} .. {hi}, first {outside[0]}: widen --from/--through")
    return ClosureFile(where, hashlib.sha256(data).hexdigest(), lo, hi, closed, frozenset(opened))


def apply(conn: Connection, exchange: str, f: ClosureFile, weekends_closed: bool = True) -> tuple[int, int]:
    """Write every day of the file's range as source 'import'; days set by hand are kept.
    Returns (days written, days kept because an administrator set them)."""
    admin = {r.day for r in conn.execute(select(_T.c.day).where(
        _T.c.exchange == exchange, _T.c.source == "admin", _T.c.day.between(f.first, f.last)))}
    conn.execute(_T.delete().where(_T.c.exchange == exchange, _T.c.source != "admin", _T.c.day.between(f.first, f.last)))
    rows = []
    d = f.first
    while d <= f.last:
        if d not in admin:
            rows.append({"exchange": exchange, "day": d, "source": "import", "is_open": f.is_open(d, weekends_closed)})
        d += timedelta(days=1)
    if rows:
        conn.execute(_T.insert(), rows)
    return len(rows), len(admin)


def to_data(f: ClosureFile) -> dict[str, object]:
    """The file as JSON for an audit event (what a reviewer approves)."""
    return {"file": f.path, "sha256": f.sha256, "first": f.first.isoformat(), "last": f.last.isoformat(),
            "closed": {d.isoformat(): n for d, n in sorted(f.closed.items())},
            "opened": sorted(d.isoformat() for d in f.opened)}


def from_data(data: dict[str, object]) -> ClosureFile:
    closed = data["closed"]
    opened = data["opened"]
    assert isinstance(closed, dict) and isinstance(opened, list)
    return ClosureFile(str(data["file"]), str(data["sha256"]), date.fromisoformat(str(data["first"])),
                       date.fromisoformat(str(data["last"])),
                       {date.fromisoformat(k): str(v) for k, v in closed.items()},
                       frozenset(date.fromisoformat(str(v)) for v in opened))

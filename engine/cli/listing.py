"""What every list command shares: option values checked against what exists (case-insensitive,
with did-you-mean, naming the option as typed), pages with a total, and times with their zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import typer

from engine.errors import StewardError, did_you_mean

PAGE_HELP = "page number (pages of --limit rows, newest first)"
LIMIT_HELP = "rows per page (the total is always printed)"


def page_option() -> Any:
    return typer.Option(1, "--page", min=1, help=PAGE_HELP)


def limit_option(default: int = 50) -> Any:
    return typer.Option(default, "--limit", min=1, help=LIMIT_HELP)


def choice(option: str, value: str | None, known: Iterable[str], what: str) -> str | None:
    """`value` as stored (matched case-insensitively), or an error naming `option` and the nearest match."""
    if value is None:
        return None
    names = sorted({k for k in known if k is not None})
    if value in names:
        return value
    folded = {k.casefold(): k for k in names}
    if value.casefold() in folded:
        return folded[value.casefold()]
    hint = did_you_mean(value, names) or did_you_mean(value.casefold(), list(folded)) or _contains(value, names)
    listed = f"; known: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}" if names and not hint else ""
    raise StewardError(f"{option}: unknown {what} {value!r}{hint}{listed}" if names else
                       f"{option}: unknown {what} {value!r}: there are none recorded yet")


def _contains(value: str, names: list[str]) -> str:
    """A suggestion for a shortened or misspelt name: the names sharing its first four letters."""
    stem = value.casefold()[:4]
    hits = [n for n in names if len(stem) >= 3 and stem in n.casefold()]
    return f" (did you mean '{hits[0]}'?)" if len(hits) == 1 else (f" (did you mean one of {', '.join(hits[:5])}?)" if hits else "")


def page_caption(what: str, shown: int, total: int, page: int, limit: int) -> str:
    first = (page - 1) * limit + 1
    if not shown:
        return f"{what}: none of {total:,} on page {page}" if total else f"{what}: none match"
    more = f"; next: --page {page + 1}" if first + shown - 1 < total else ""
    return f"{what} {first:,}-{first + shown - 1:,} of {total:,}{more}"


def zoned(at: datetime | None, tz: Any) -> str:
    """A time in the branch zone with its UTC offset, e.g. 2026-06-15 17:00 +08:00."""
    if at is None:
        return ""
    if at.tzinfo is None:
        from datetime import timezone

        at = at.replace(tzinfo=timezone.utc)
    s = at.astimezone(tz).strftime("%Y-%m-%d %H:%M %z")
    return s[:-2] + ":" + s[-2:]

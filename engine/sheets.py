"""Every CSV and XLSX file Steward writes goes through here.

CSV is UTF-8 with a byte-order mark, so Excel opens Chinese text correctly. A cell whose text
starts with =, +, -, @, a tab or a carriage return would run as a formula when a spreadsheet
opens the file (CSV/formula injection: a client named `=HYPERLINK(...)`); such text is written
with a leading apostrophe, which spreadsheets show as plain text. Numbers stay numbers.
Only this module imports openpyxl for writing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(v: str) -> str:
    """Text a spreadsheet shows as text, never as a formula."""
    return "'" + v if v.startswith(FORMULA_START) else v


def safe_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return safe_text(str(v))


def refuse_existing(path: Path, option: str) -> None:
    """Never silently overwrite an earlier file: say so and what to do."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{option}: {path} already exists and is not empty; choose a new name "
                              "(an earlier export is never overwritten)")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """UTF-8 CSV with a BOM, cells neutralised; returns the number of rows."""
    n = 0
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([safe_text(h) for h in header])
        for row in rows:
            w.writerow([safe_cell(v) for v in row])
            n += 1
    return n


def write_xlsx(path: Path, sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]) -> None:
    """A workbook with one sheet per (title, header, rows); header bold, cells neutralised."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for title, header, rows in sheets:
        ws = wb.create_sheet(title[:31])
        ws.append([safe_text(h) for h in header])
        for row in rows:
            ws.append([safe_cell(v) for v in row])
    wb.save(path)

"""Files from a real back office: any encoding, Excel workbooks, Chinese headers, units and codes.

`steward import PATH [--encoding GB18030] [--mapping FILE]` turns what a back office exports
into Steward's import files (docs/import.md) and then imports those with the ordinary importer,
so every row check applies unchanged. Problems are reported against the source file and line
(for a workbook: file, sheet and row) and the source header, and nothing is written.

A mapping file (YAML, docs/import.md "Mapping a back office's export") says, per Steward file,
which source file to read, which source header feeds which column, the unit of money columns
(元 or 万元) and how code values translate (风险等级 保守型 -> C1, 语言 英文 -> en):

    files:
      clients.csv:
        source: 客户资料.xlsx
        sheet: 客户            # workbooks only; default the first sheet
        columns: {id: 客户号, name: 客户姓名, opened_on: 开户日期, risk_level: 风险等级}
        values:
          risk_level: {保守型: C1, 稳健型: C2, 平衡型: C3, 成长型: C4, 激进型: C5}
        constants: {locale: zh-CN}
      cash_balances.csv:
        source: 资产.csv
        columns: {client_id: 客户号, amount: 资产总值, as_of: 日期}
        units: {amount: 万元}
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import Problem, SourceErrors, StewardError, rel
from engine.yamlio import load_file

UNITS = {"元": Decimal(1), "yuan": Decimal(1), "万元": Decimal(10_000), "wan": Decimal(10_000)}


class FileMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    """Source file, relative to the folder being imported (.csv or .xlsx)."""
    sheet: str | None = None
    columns: dict[str, str]
    """Steward column -> source header."""
    units: dict[str, str] = {}
    """Steward money column -> 元 or 万元 (amounts in 万元 are multiplied by 10,000)."""
    values: dict[str, dict[str, str]] = {}
    """Steward column -> {source value: Steward value}; an unlisted value is an error."""
    constants: dict[str, str] = {}
    """Steward column -> the same value on every row (e.g. a snapshot date)."""


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: str | None = None
    """Encoding of the CSV sources (default: --encoding, else UTF-8)."""
    files: dict[str, FileMap] = Field(min_length=1)


@dataclass
class Converted:
    """Steward-shaped rows of one file and where each came from."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    """Per row: 'file:line' (CSV) or 'file[sheet]:row' (workbook)."""
    source_of: dict[str, str] = field(default_factory=dict)
    """Steward column -> source header, for messages."""


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_rows(path: Path, encoding: str = "utf-8", sheet: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """(where, cells) for every non-empty row, the header first; CSV in `encoding` or an .xlsx workbook."""
    where = rel(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        yield from _xlsx_rows(path, where, sheet)
        return
    try:
        text = path.read_bytes().decode(encoding)
    except LookupError:
        raise StewardError(f"--encoding: unknown encoding {encoding!r} (e.g. utf-8, gbk, gb18030, big5)") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise StewardError(f"{where}:{line}: not {encoding} (byte {e.start}); say the file's encoding with --encoding, "
                           "e.g. --encoding gb18030 for a Chinese back office's CSV") from None
    for n, rec in enumerate(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), 1):
        if any(c.strip() for c in rec):
            yield f"{where}:{n}", [c.strip() for c in rec]


def _xlsx_rows(path: Path, where: str, sheet: str | None) -> Iterator[tuple[str, list[str]]]:
    import openpyxl  # only for workbooks

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged file
        raise StewardError(f"{where}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from e
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise StewardError(f"{where}: no sheet {sheet!r}; the workbook has {', '.join(wb.sheetnames)}")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        for n, row in enumerate(ws.iter_rows(values_only=True), 1):
            cells = [_cell(v) for v in row]
            if any(cells):
                yield f"{where}[{ws.title}]:{n}", cells
    finally:
        wb.close()


def load_mapping(path: Path) -> Mapping:
    data = load_file(path)
    try:
        return Mapping.model_validate(data)
    except ValidationError as e:
        from engine.yamlio import line_of

        problems = []
        for err in e.errors():
            loc = [str(x) for x in err["loc"]]
            problems.append(Problem(rel(path), line_of(data, err["loc"]), ".".join(loc), err["msg"]))
        raise SourceErrors(problems) from None


def _money(unit: Decimal) -> Callable[[str], str]:
    def convert(v: str) -> str:
        try:
            return str(Decimal(v.replace(",", "")) * unit) if v else v
        except InvalidOperation:
            raise ValueError(f"expected a number, got {v!r}") from None
    return convert


def convert_file(folder: Path, target: str, fm: FileMap, encoding: str, mapping_path: str) -> tuple[Converted, list[Problem]]:
    """One Steward file from its mapped source: headers renamed, units scaled, codes translated."""
    problems: list[Problem] = []
    for col, unit in fm.units.items():
        if unit not in UNITS:
            problems.append(Problem(mapping_path, None, f"files.{target}.units.{col}", f"unknown unit {unit!r}: use 元 or 万元"))
    if problems:
        return Converted([]), problems
    rows = read_rows(folder / fm.source, encoding, fm.sheet)
    try:
        where, header = next(rows)
    except StopIteration:
        return Converted([]), [Problem(rel(folder / fm.source), None, "", "empty file: expected a header row")]
    missing = [src for src in fm.columns.values() if src not in header]
    if missing:
        return Converted([]), [Problem(where, None, "header", f"no column {m!r} (the mapping's files.{target}.columns "
                                       f"names it); the file has {', '.join(header)}") for m in missing]
    out = Converted([*fm.columns, *fm.constants], source_of=dict(fm.columns))
    scale = {col: _money(UNITS[u]) for col, u in fm.units.items()}
    for where, cells in rows:
        rec = dict(zip(header, cells))
        row = []
        for col, src in fm.columns.items():
            v = rec.get(src, "")
            if col in fm.values and v:
                if v not in fm.values[col]:
                    problems.append(Problem(where, None, src, f"value {v!r} is not in the mapping's files.{target}.values.{col} "
                                            f"({', '.join(fm.values[col])})"))
                    continue
                v = fm.values[col][v]
            if col in scale:
                try:
                    v = scale[col](v)
                except ValueError as e:
                    problems.append(Problem(where, None, src, str(e)))
            row.append(v)
        out.rows.append(row + list(fm.constants.values()))
        out.origin.append(where)
    return out, problems


def write_csv(c: Converted, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(c.header)
        w.writerows(c.rows)


def relocate(problems: list[Problem], staged: dict[str, Converted]) -> list[Problem]:
    """Problems found in the staged UTF-8 files, pointed back at the source file, line and header."""
    out = []
    for p in problems:
        c = staged.get(Path(p.path).name)
        if c is None or not p.line or p.line < 2 or p.line - 2 >= len(c.origin):
            out.append(Problem(Path(p.path).name if c else p.path, p.line, p.key, p.message, p.severity))
            continue
        where = c.origin[p.line - 2]
        path, _, line = where.rpartition(":")
        key = f"{c.source_of[p.key]} ({p.key})" if p.key in c.source_of else p.key
        out.append(Problem(path, int(line), key, p.message, p.severity))
    return out


def stage(folder: Path, encoding: str | None, mapping: Path | None, into: Path) -> dict[str, Converted]:
    """Write Steward's import files (UTF-8 CSV) for `folder` into `into`; every problem at once."""
    problems: list[Problem] = []
    staged: dict[str, Converted] = {}
    if mapping is not None:
        m = load_mapping(mapping)
        enc = encoding or m.encoding or "utf-8"
        for target, fm in m.files.items():
            c, found = convert_file(folder, target, fm, enc, rel(mapping))
            problems += found
            staged[target] = c
    else:
        for src in sorted(folder.iterdir()):
            if src.suffix.lower() not in (".csv", ".xlsx", ".xlsm") or src.name.startswith("~$"):
                continue
            rows = list(read_rows(src, encoding or "utf-8"))
            if not rows:
                continue
            header = rows[0][1]
            staged[src.stem + ".csv"] = Converted(header, [r for _, r in rows[1:]], [w for w, _ in rows[1:]])
    if problems:
        raise SourceErrors(problems)
    for name, c in staged.items():
        write_csv(c, into / name)
    return staged

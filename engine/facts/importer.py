"""CSV import: one file per table, validated in full before anything is written.

Each file is parsed row by row into a frozen pydantic model (unknown columns
rejected, types and enums checked), then references across files and the
database are checked. Every problem is collected as `file:line: column: message`;
if there is any, nothing is written. Otherwise all rows are upserted by primary
key in one transaction, so importing the same files twice changes nothing.
The file format is documented in docs/import.md.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic import Field as PField
from sqlalchemy import Engine, Integer, Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from engine.config.base import LOCALES
from engine.errors import Problem, SourceErrors, StewardError, did_you_mean
from engine.models import (
    CHANNELS, PURPOSES, RISK_LEVELS, Advisor, CashBalance, CashMovement, Client, Consent, Contact,
    Holding, MarginSnapshot, Trade,
)
from engine.facts.tables import (
    INVESTOR_CLASSES, PRODUCT_RISKS, RECORD_KINDS, AmlReview, ClientProfile, ClientRecord, Product, RiskAssessment,
)
from engine.facts.risk import LEVELS as RISK_PROFILE_LEVELS
from engine.facts.import_values import (
    _date,
    _datetime,
    _number,
    _whole,
    _bool,
    _one_of,
    _at_least,
    _json_object,
    _at_most,
    _zone,
)
from engine.facts.validation import first_bad_utf8

CHUNK = 5_000
SIDES = ("buy", "sell")
CASH_KINDS = ("deposit", "withdrawal", "transfer_out")
CONSENT_STATUSES = ("granted", "opted_out")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}

# ------------------------------------------------------------------ cell types


Day = Annotated[date, BeforeValidator(_date)]
Moment = Annotated[datetime, BeforeValidator(_datetime)]
Number = Annotated[float, BeforeValidator(_number)]
NonNegative = Annotated[float, BeforeValidator(_number), AfterValidator(_at_least(0))]
Positive = Annotated[float, BeforeValidator(_number), AfterValidator(_at_least(0, strict=True))]
Count = Annotated[int, BeforeValidator(_whole), AfterValidator(_at_least(0))]
Flag = Annotated[bool, BeforeValidator(_bool)]
Id = Annotated[str, PField(min_length=1, max_length=64)]
Symbol = Annotated[str, PField(min_length=1, max_length=32)]
Text = Annotated[str, PField(min_length=1)]
RiskLevel = Annotated[str, AfterValidator(_one_of(*RISK_LEVELS))]
Locale = Annotated[str, AfterValidator(_one_of(*LOCALES))]


TimeZone = Annotated[str, PField(max_length=64), AfterValidator(_zone)]
Side = Annotated[str, AfterValidator(_one_of(*SIDES))]
CashKind = Annotated[str, AfterValidator(_one_of(*CASH_KINDS))]
Channel = Annotated[str, AfterValidator(_one_of(*CHANNELS))]
Purpose = Annotated[str, AfterValidator(_one_of(*PURPOSES))]
ConsentStatus = Annotated[str, AfterValidator(_one_of(*CONSENT_STATUSES))]
ContactKind = Annotated[str, PField(min_length=1, max_length=32)]
ProductRisk = Annotated[str, AfterValidator(_one_of(*PRODUCT_RISKS))]
ProductType = Annotated[str, PField(min_length=1, max_length=16)]
InvestorClass = Annotated[str, AfterValidator(_one_of(*INVESTOR_CLASSES))]
ProfileLevel = Annotated[str, AfterValidator(_one_of(*RISK_PROFILE_LEVELS))]
Score = Annotated[int, BeforeValidator(_whole), AfterValidator(_at_least(0)), AfterValidator(_at_most(100))]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]

# ------------------------------------------------------------------ row models


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdvisorRow(_Row):
    id: Id
    name: Text
    email: str | None = None
    supervisor_id: Id | None = None
    daily_capacity: Count = 20


class ClientRow(_Row):
    id: Id
    name: Text
    opened_on: Day
    birth_date: Day | None = None
    locale: Locale = "zh-CN"
    phone: str | None = None
    email: str | None = None
    advisor_id: Id | None = None
    risk_level: RiskLevel | None = None
    lowest_category: Flag = False
    risk_assessed_on: Day | None = None
    timezone: TimeZone | None = None


class HoldingRow(_Row):
    as_of: Day
    client_id: Id
    symbol: Symbol
    quantity: NonNegative
    cost: NonNegative
    close_price: NonNegative


class CashBalanceRow(_Row):
    as_of: Day
    client_id: Id
    amount: Number


class TradeRow(_Row):
    id: Id
    client_id: Id
    trade_date: Day
    symbol: Symbol
    side: Side
    quantity: Positive
    price: NonNegative
    amount: NonNegative


class CashMovementRow(_Row):
    id: Id
    client_id: Id
    moved_on: Day
    kind: CashKind
    amount: NonNegative


class MarginSnapshotRow(_Row):
    as_of: Day
    client_id: Id
    maintenance_ratio: NonNegative | None = None
    contract_expiry: Day | None = None


class ContactRow(_Row):
    id: Id
    client_id: Id
    contacted_on: Day
    kind: ContactKind
    outcome: str | None = None
    by_user: Id | None = None


class ClientRecordRow(_Row):
    id: Count
    client_id: Id
    recorded_on: Day
    kind: Annotated[str, AfterValidator(_one_of(*RECORD_KINDS))]
    text: Text
    firing_id: Count | None = None
    due_on: Day | None = None
    done_on: Day | None = None
    by_user: Id | None = None


class ConsentRow(_Row):
    client_id: Id
    channel: Channel
    purpose: Purpose
    status: ConsentStatus
    recorded_at: Moment
    evidence: str | None = None


class ProductRow(_Row):
    symbol: Symbol
    name: Text
    risk: ProductRisk
    type: ProductType
    shares_outstanding: NonNegative | None = None


class RiskAssessmentRow(_Row):
    id: Count
    client_id: Id
    assessed_on: Day
    capacity_score: Score
    tolerance_score: Score
    capacity_level: ProfileLevel
    tolerance_level: ProfileLevel
    alloc_low: Score
    alloc_medium: Score
    alloc_high: Score
    answers: JsonObject = PField(default_factory=dict)

    @model_validator(mode="after")
    def _adds_up(self) -> RiskAssessmentRow:
        total = self.alloc_low + self.alloc_medium + self.alloc_high
        if total != 100:
            raise ValueError(f"alloc_low + alloc_medium + alloc_high must add up to 100, not {total}")
        return self


class ClientProfileRow(_Row):
    client_id: Id
    investor_class: InvestorClass = "ordinary"
    related_party: Flag = False
    annual_income: NonNegative | None = None
    third_party_custody: Flag | None = None
    experience_years: NonNegative | None = None
    serious_default: Flag | None = None


class AmlReviewRow(_Row):
    id: Id
    client_id: Id
    opened_on: Day
    closed_on: Day | None = None

    @model_validator(mode="after")
    def _order(self) -> AmlReviewRow:
        if self.closed_on is not None and self.closed_on < self.opened_on:
            raise ValueError(f"closed_on {self.closed_on} is before opened_on {self.opened_on}")
        return self


# ------------------------------------------------------------------ file specs


@dataclass(frozen=True)
class FileSpec:
    """One import file: its row model, target table and references to other files."""

    name: str
    model: type[_Row]
    table: Table
    refs: tuple[tuple[str, str], ...] = ()
    """(column, file whose `id` it must name), checked against that file and the database."""

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)

    @property
    def required(self) -> list[str]:
        return [n for n, f in self.model.model_fields.items() if f.is_required()]


def _tab(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


_TO_CLIENT = (("client_id", "clients.csv"),)
FILES: dict[str, FileSpec] = {s.name: s for s in (
    FileSpec("products.csv", ProductRow, _tab(Product)),
    FileSpec("advisors.csv", AdvisorRow, _tab(Advisor), (("supervisor_id", "advisors.csv"),)),
    FileSpec("clients.csv", ClientRow, _tab(Client), (("advisor_id", "advisors.csv"),)),
    FileSpec("holdings.csv", HoldingRow, _tab(Holding), _TO_CLIENT),
    FileSpec("cash_balances.csv", CashBalanceRow, _tab(CashBalance), _TO_CLIENT),
    FileSpec("trades.csv", TradeRow, _tab(Trade), _TO_CLIENT),
    FileSpec("cash_movements.csv", CashMovementRow, _tab(CashMovement), _TO_CLIENT),
    FileSpec("margin_snapshots.csv", MarginSnapshotRow, _tab(MarginSnapshot), _TO_CLIENT),
    FileSpec("contacts.csv", ContactRow, _tab(Contact), _TO_CLIENT),
    FileSpec("consents.csv", ConsentRow, _tab(Consent), _TO_CLIENT),
    FileSpec("risk_assessments.csv", RiskAssessmentRow, _tab(RiskAssessment), _TO_CLIENT),
    FileSpec("client_profiles.csv", ClientProfileRow, _tab(ClientProfile), _TO_CLIENT),
    FileSpec("aml_reviews.csv", AmlReviewRow, _tab(AmlReview), _TO_CLIENT),
    FileSpec("client_records.csv", ClientRecordRow, _tab(ClientRecord), _TO_CLIENT),
)}
"""Known files in import (and write) order."""


@dataclass(frozen=True)
class ImportReport:
    counts: dict[str, int]
    """Rows written per table name, in import order."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return ", ".join(f"{n:,} {t}" for t, n in self.counts.items())


@dataclass
class _Parsed:
    """One file after validation: its good rows and every id it declares."""

    spec: FileSpec
    path: str
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    header_ok: bool = True


# ------------------------------------------------------------------ parsing


def _records(f: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on (quoted fields may span lines)."""
    reader = csv.reader(f, strict=True)
    prev = 0
    for rec in reader:
        start, prev = prev + 1, reader.line_num
        if rec:
            yield start, rec


def _check_header(header: list[str], spec: FileSpec, path: str) -> list[Problem]:
    known = list(spec.model.model_fields)
    problems = [
        Problem(path, 1, col, f"unknown column{did_you_mean(col, known)}; the columns are {', '.join(known)}")
        for col in header if col and col not in known
    ]
    if "" in header:
        problems.append(Problem(path, 1, "", f"column {header.index('') + 1} has no name (a trailing comma?)"))
    problems += [Problem(path, 1, col, "column appears twice in the header") for col in dict.fromkeys(header)
                 if col and header.count(col) > 1]
    problems += [Problem(path, 1, col, "required column is missing from the header")
                 for col in spec.required if col not in header]
    return problems


def _row_problems(e: ValidationError, raw: dict[str, str], path: str, line: int) -> list[Problem]:
    out = []
    for err in e.errors():
        col = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "a value is required"
        elif err["type"] == "string_too_short":
            msg = "must not be empty"
        got = raw.get(col, "")
        shown = repr(got) if len(got) <= 80 else repr(got[:80]) + f"... ({len(got)} characters)"
        out.append(Problem(path, line, col, f"{msg} (got {shown})" if col else msg))
    return out


def _parse_row(p: _Parsed, header: list[str], line: int, rec: list[str]) -> list[Problem]:
    if len(rec) != len(header):
        return [Problem(p.path, line, "", f"has {len(rec)} fields, the header has {len(header)} "
                                           "(quote values that contain commas)")]
    raw = {h: v.strip() for h, v in zip(header, rec)}
    nul = [h for h, v in raw.items() if "\x00" in v]
    if nul:
        return [Problem(p.path, line, h, "contains a NUL byte (\\0): remove it (is this a binary file?)") for h in nul]
    if "id" in raw and raw["id"]:
        p.ids.add(raw["id"])
    try:
        row = p.spec.model.model_validate({k: v for k, v in raw.items() if v != ""})
    except ValidationError as e:
        return _row_problems(e, raw, p.path, line)
    p.rows.append((line, row.model_dump()))
    return []


def _parse_file(spec: FileSpec, file: Path, path: str) -> tuple[_Parsed, list[Problem]]:
    p = _Parsed(spec, path)
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            records = _records(f)
            first = next(records, None)
            if first is None:
                p.header_ok = False
                return p, [Problem(path, 1, "", f"empty file: the first line must name the columns "
                                                f"({', '.join(spec.model.model_fields)})")]
            header = [h.strip() for h in first[1]]
            problems = _check_header(header, spec, path)
            if problems:
                p.header_ok = False
                return p, problems
            for line, rec in records:
                problems += _parse_row(p, header, line, rec)
    except UnicodeDecodeError:
        p.header_ok, p.rows = False, []  # stop the file: its rows and ids are unknown
        line, offset = first_bad_utf8(file)
        return p, [Problem(path, line, "", f"not UTF-8 text (byte {offset}): this file stops here. Save it as UTF-8 "
                                          "(Excel: Save As > CSV UTF-8), or convert a GBK/GB18030 export: "
                                          "iconv -f GB18030 -t UTF-8 in.csv > out.csv")]
    except csv.Error as e:
        p.header_ok, p.rows = False, []
        return p, [Problem(path, None, "", f"malformed CSV: {e}")]
    except OSError as e:
        p.header_ok = False
        return p, [Problem(path, None, "", f"cannot read: {e.strerror}")]
    return p, problems + _duplicates(p)


def _duplicates(p: _Parsed) -> list[Problem]:
    seen: dict[tuple[Any, ...], int] = {}
    out = []
    key = p.spec.key
    for line, row in p.rows:
        k = tuple(row[c] for c in key)
        if k in seen:
            shown = ", ".join(str(v) for v in k)
            out.append(Problem(p.path, line, ",".join(key),
                               f"duplicate key, first on line {seen[k]} (got {shown!r})"))
        else:
            seen[k] = line
    return out


# ------------------------------------------------------------------ cross-file checks


def _existing_ids(conn: Connection, table: Table, ids: set[str]) -> set[str]:
    found: set[str] = set()
    wanted = sorted(ids)
    for i in range(0, len(wanted), 500):
        found.update(r[0] for r in conn.execute(select(table.c.id).where(table.c.id.in_(wanted[i:i + 500]))))
    return found


def _reference_problems(conn: Connection, parsed: dict[str, _Parsed]) -> list[Problem]:
    problems: list[Problem] = []
    for p in parsed.values():
        for col, target in p.spec.refs:
            tp = parsed.get(target)
            if tp is not None and not tp.header_ok:
                continue  # its ids are unknown; the header problem says enough
            declared = tp.ids if tp else set()
            wanted = {row[col] for _, row in p.rows if row[col] is not None} - declared
            known = declared | _existing_ids(conn, FILES[target].table, wanted)
            what = target.removesuffix("s.csv")
            problems += [
                Problem(p.path, line, col, f"no such {what} in {target} or the database (got {row[col]!r})")
                for line, row in p.rows if row[col] is not None and row[col] not in known
            ]
    return problems


# ------------------------------------------------------------------ writing


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    dialects: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make = dialects.get(conn.dialect.name)
    if make is None:
        raise StewardError(f"import supports SQLite and PostgreSQL, not {conn.dialect.name}")
    stmt = make(table)
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    )
    for i in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[i:i + CHUNK])


def sync_sequence(conn: Connection, table: Table) -> None:
    """After rows with explicit integer ids, move PostgreSQL's id sequence past them."""
    keys = list(table.primary_key.columns)
    if conn.dialect.name != "postgresql" or len(keys) != 1 or not isinstance(keys[0].type, Integer):
        return
    top = conn.execute(select(func.max(keys[0]))).scalar()
    if top is not None:
        conn.execute(text("SELECT setval(pg_get_serial_sequence(:t, :c), :v)"),
                     {"t": table.name, "c": keys[0].name, "v": int(top)})


def _files(directory: Path) -> tuple[list[Path], list[Problem]]:
    if not directory.is_dir():
        raise StewardError(f"{directory}: not a folder of CSV files (see docs/import.md)")
    found, problems = [], []
    for f in sorted(directory.iterdir()):
        if f.name.startswith("."):
            continue
        if f.name in FILES and not f.is_file():
            problems.append(Problem(str(f), None, "", "is a folder, not a file: import files are CSV files"))
        elif f.name in FILES:
            found.append(f)
        else:
            problems.append(Problem(str(f), None, "", f"unknown import file{did_you_mean(f.name, FILES)}; "
                                                      f"the known files are {', '.join(FILES)}"))
    if not found and not problems:
        problems.append(Problem(str(directory), None, "", f"no import files; expected any of {', '.join(FILES)}"))
    return found, problems


def import_dir(engine: Engine, directory: Path) -> ImportReport:
    """Validate every file in `directory`, then write all rows in one transaction, or none."""
    files, problems = _files(Path(directory))
    parsed: dict[str, _Parsed] = {}
    for f in files:
        p, file_problems = _parse_file(FILES[f.name], f, str(f))
        parsed[f.name] = p
        problems += file_problems
    with engine.begin() as conn:
        problems += _reference_problems(conn, parsed)
        if problems:
            raise SourceErrors(sorted(problems, key=lambda q: (q.path, q.line or 0)))
        counts = {}
        for name, spec in FILES.items():
            if name in parsed:
                _upsert(conn, spec.table, [row for _, row in parsed[name].rows])
                sync_sequence(conn, spec.table)
                counts[spec.table.name] = len(parsed[name].rows)
    analyze(engine, [t for t, n in counts.items() if n])
    return ImportReport(counts)


def analyze(engine: Engine, tables: list[str]) -> None:
    """PostgreSQL: refresh the planner's statistics of the tables just loaded. A night run right
    after a large import would otherwise be planned on the statistics of the tables before it
    (autovacuum analyses a table only after a tenth of it has changed, and not at once); the
    firing history index of issue 16 showed what a plan made for an empty table costs at scale.
    ANALYZE samples a fixed number of rows, so it takes seconds even on a large table."""
    if engine.dialect.name != "postgresql" or not tables:
        return
    with engine.begin() as conn:
        for t in tables:
            conn.exec_driver_sql(f'ANALYZE "{t}"')

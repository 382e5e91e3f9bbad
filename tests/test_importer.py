"""CSV import: counts, idempotency, exact error messages, nothing written on error.

Tests taking `db` run on SQLite and, with STEWARD_TEST_PG_URL set, on PostgreSQL
(fixtures in tests/conftest.py: a fresh database per test).
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from engine.errors import SourceErrors, StewardError
from engine.facts.importer import FILES, import_dir

SAMPLE = Path(__file__).parent / "data" / "import_sample"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "import.md"
SAMPLE_COUNTS = {"advisor": 3, "client": 6, "holding": 6, "cash_balance": 4, "trade": 4, "cash_movement": 3,
                 "margin_snapshot": 2, "contact": 3, "consent": 5}


def dump(eng: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every imported table's rows, ordered by key."""
    out = {}
    with eng.connect() as c:
        for spec in FILES.values():
            t = spec.table
            out[t.name] = [tuple(r) for r in c.execute(select(t).order_by(*t.primary_key.columns))]
    return out


def counts(eng: Engine) -> dict[str, int]:
    with eng.connect() as c:
        return {s.table.name: c.execute(select(func.count()).select_from(s.table)).scalar_one() for s in FILES.values()}


def copy_sample(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    shutil.copytree(SAMPLE, d)
    return d


def edit(path: Path, line: int, old: str, new: str) -> None:
    """Replace `old` by `new` on one physical line (1 = header)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def problems(eng: Engine, d: Path) -> list[str]:
    with pytest.raises(SourceErrors) as e:
        import_dir(eng, d)
    return [str(p) for p in e.value.problems]


# ------------------------------------------------------------------ good imports


def test_good_import_loads_every_file(db: Engine) -> None:
    report = import_dir(db, SAMPLE)
    assert report.counts == SAMPLE_COUNTS
    assert counts(db) == {**dict.fromkeys(counts(db), 0), **SAMPLE_COUNTS}  # the sample has no playbook files
    assert report.total == sum(SAMPLE_COUNTS.values())


@pytest.mark.postgres
def test_an_import_refreshes_the_planners_statistics_on_postgresql(pg_engine: Engine) -> None:
    """The night after a large import is planned on the loaded tables' statistics, not on those of
    the empty tables before it."""
    from sqlalchemy import text

    import_dir(pg_engine, SAMPLE)
    with pg_engine.connect() as c:
        stats = dict(c.execute(text("SELECT relname, n_mod_since_analyze FROM pg_stat_user_tables "
                                    "WHERE relname IN ('client', 'holding', 'trade')")).all())
        tuples = dict(c.execute(text("SELECT relname, reltuples FROM pg_class "
                                     "WHERE relname IN ('client', 'holding', 'trade')")).all())
    assert stats == {"client": 0, "holding": 0, "trade": 0}
    assert tuples == {"client": SAMPLE_COUNTS["client"], "holding": SAMPLE_COUNTS["holding"],
                      "trade": SAMPLE_COUNTS["trade"]}


def test_empty_cells_are_null_or_default_and_bom_is_skipped(db: Engine) -> None:
    import_dir(db, SAMPLE)  # clients.csv starts with a UTF-8 byte-order mark
    rows = {r[0]: r for r in dump(db)["client"]}
    with db.connect() as c:
        from engine.models import Client

        t = Client.__table__  # type: ignore[attr-defined]
        c004 = c.execute(select(t).where(t.c.id == "C004")).one()
        c006 = c.execute(select(t).where(t.c.id == "C006")).one()
    assert set(rows) == {"C001", "C002", "C003", "C004", "C005", "C006"}
    assert c004.risk_level is None and c004.risk_assessed_on is None and c004.lowest_category is False
    assert c004.phone is None and c004.birth_date == date(1990, 12, 1)
    assert c006.locale == "zh-CN" and c006.advisor_id is None


def test_reimport_does_not_duplicate_and_updates_by_key(db: Engine, tmp_path: Path) -> None:
    import_dir(db, SAMPLE)
    first = dump(db)
    import_dir(db, SAMPLE)
    assert dump(db) == first
    d = copy_sample(tmp_path)
    edit(d / "clients.csv", 2, "张伟", "张伟明")
    edit(d / "holdings.csv", 2, "1500.0", "1510.0")
    import_dir(db, d)
    after = dump(db)
    assert counts(db) == {**dict.fromkeys(counts(db), 0), **SAMPLE_COUNTS}  # the sample has no playbook files
    assert [r[1] for r in after["client"] if r[0] == "C001"] == ["张伟明"]
    assert 1510.0 in [r[5] for r in after["holding"]]


def test_references_may_point_into_the_database(db: Engine, tmp_path: Path) -> None:
    import_dir(db, SAMPLE)
    d = tmp_path / "daily"
    d.mkdir()
    (d / "trades.csv").write_text(
        "id,client_id,trade_date,symbol,side,quantity,price,amount\nT9,C001,2026-11-23,600519,sell,100,1510,151000\n",
        encoding="utf-8")
    assert import_dir(db, d).counts == {"trade": 1}
    assert counts(db)["trade"] == 5


def test_quoted_line_breaks_keep_physical_line_numbers(db: Engine, tmp_path: Path) -> None:
    d = copy_sample(tmp_path)
    with (d / "contacts.csv").open("a", encoding="utf-8") as f:
        f.write('K0004,C001,2026-11-01,visit,"first line\nsecond line",A02\n')
        f.write("K0005,C001,2026-11-31,visit,,A02\n")
    assert problems(db, d) == [f"{d}/contacts.csv:7: contacted_on: not a calendar date (YYYY-MM-DD) (got '2026-11-31')"]


# ------------------------------------------------------------------ bad imports


def test_bad_rows_are_all_reported_and_nothing_is_written(db: Engine, tmp_path: Path) -> None:
    import_dir(db, SAMPLE)
    before = dump(db)
    d = copy_sample(tmp_path)
    with (d / "advisors.csv").open("a", encoding="utf-8") as f:
        f.write("A04,周杰,,A01,20\n")  # a good new row: must not be written either
    edit(d / "clients.csv", 3, "2026-11-10,A02", "2026/11/10,A02")
    edit(d / "trades.csv", 1, "amount", "amount,fee")
    edit(d / "cash_movements.csv", 2, "deposit", "deposito")
    with (d / "holdings.csv").open("a", encoding="utf-8") as f:
        f.write("2026-11-20,C999,600519,100,1450.0,1500.0\n")
    assert problems(db, d) == [
        f"{d}/cash_movements.csv:2: kind: expected one of deposit, withdrawal, transfer_out "
        f"(did you mean 'deposit'?) (got 'deposito')",
        f"{d}/clients.csv:3: opened_on: expected a date as YYYY-MM-DD (got '2026/11/10')",
        f"{d}/holdings.csv:8: client_id: no such client in clients.csv or the database (got 'C999')",
        f"{d}/trades.csv:1: fee: unknown column; the columns are id, client_id, trade_date, symbol, side, "
        f"quantity, price, amount",
    ]
    assert dump(db) == before


def test_nothing_written_into_an_empty_database(db: Engine, tmp_path: Path) -> None:
    d = copy_sample(tmp_path)
    edit(d / "consents.csv", 2, "granted", "given")
    assert len(problems(db, d)) == 1
    assert set(counts(db).values()) == {0}


def test_unknown_file_is_named_with_the_known_ones(db: Engine, tmp_path: Path) -> None:
    d = copy_sample(tmp_path)
    (d / "client.csv").write_text("id\n", encoding="utf-8")
    (d / ".DS_Store").write_text("", encoding="utf-8")
    assert problems(db, d) == [
        f"{d}/client.csv: unknown import file (did you mean 'clients.csv'?); the known files are "
        "products.csv, advisors.csv, clients.csv, holdings.csv, cash_balances.csv, trades.csv, cash_movements.csv, "
        "margin_snapshots.csv, contacts.csv, consents.csv, risk_assessments.csv, client_profiles.csv, aml_reviews.csv, "
        "client_records.csv"
    ]


def test_empty_folder_and_missing_folder(db: Engine, tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    assert problems(db, d) == [f"{d}: no import files; expected any of " + ", ".join(FILES)]
    with pytest.raises(StewardError, match="not a folder"):
        import_dir(db, tmp_path / "nope")


def one_file(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "one"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return d


def test_header_problems(db: Engine, tmp_path: Path) -> None:
    d = one_file(tmp_path, "advisors.csv", "id,nme,id,\nA1,x,A1,\n")
    assert problems(db, d) == [
        f"{d}/advisors.csv:1: nme: unknown column (did you mean 'name'?); the columns are id, name, email, "
        "supervisor_id, daily_capacity",
        f"{d}/advisors.csv:1: column 4 has no name (a trailing comma?)",
        f"{d}/advisors.csv:1: id: column appears twice in the header",
        f"{d}/advisors.csv:1: name: required column is missing from the header",
    ]


def test_empty_file_field_count_duplicates_and_encoding(db: Engine, tmp_path: Path) -> None:
    d = one_file(tmp_path, "advisors.csv", "id,name\nA1,x\nA1,y\nA2,a,b\n")
    (d / "cash_balances.csv").write_text("", encoding="utf-8")
    (d / "trades.csv").write_bytes("id,client_id\n客户".encode("gb18030"))
    assert problems(db, d) == [
        f"{d}/advisors.csv:3: id: duplicate key, first on line 2 (got 'A1')",
        f"{d}/advisors.csv:4: has 3 fields, the header has 2 (quote values that contain commas)",
        f"{d}/cash_balances.csv:1: empty file: the first line must name the columns (as_of, client_id, amount)",
        f"{d}/trades.csv:2: not UTF-8 text (byte 13): this file stops here. Save it as UTF-8 (Excel: Save As > "
        "CSV UTF-8), or convert a GBK/GB18030 export: iconv -f GB18030 -t UTF-8 in.csv > out.csv",
    ]


CLIENT_HEADER = "id,name,opened_on,birth_date,locale,advisor_id,risk_level,lowest_category,risk_assessed_on\n"
GOOD_CLIENT = ["C1", "王五", "2020-01-01", "1980-01-01", "zh-CN", "", "C3", "false", "2024-01-01"]


@pytest.mark.parametrize(("column", "value", "message"), [
    ("name", "", "a value is required (got '')"),
    ("opened_on", "2020/01/01", "expected a date as YYYY-MM-DD (got '2020/01/01')"),
    ("opened_on", "20200101", "expected a date as YYYY-MM-DD (got '20200101')"),
    ("birth_date", "1980-02-30", "not a calendar date (YYYY-MM-DD) (got '1980-02-30')"),
    ("locale", "fr", "expected one of zh-CN, zh-TW, en, es (got 'fr')"),
    ("risk_level", "C6", "expected one of C1, C2, C3, C4, C5 (got 'C6')"),
    ("lowest_category", "yes", "expected true, false, 1 or 0 (got 'yes')"),
    ("advisor_id", "A" * 65, f"String should have at most 64 characters (got '{'A' * 65}')"),
])
def test_client_cell_types(db: Engine, tmp_path: Path, column: str, value: str, message: str) -> None:
    cells = dict(zip(CLIENT_HEADER.strip().split(","), GOOD_CLIENT))
    cells[column] = value
    d = one_file(tmp_path, "clients.csv", CLIENT_HEADER + ",".join(cells.values()) + "\n")
    assert problems(db, d) == [f"{d}/clients.csv:2: {column}: {message}"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("trades.csv", "id,client_id,trade_date,symbol,side,quantity,price,amount\nT1,C001,2026-11-20,600519,hold,1,1,1",
     "side: expected one of buy, sell (got 'hold')"),
    ("trades.csv", "id,client_id,trade_date,symbol,side,quantity,price,amount\nT1,C001,2026-11-20,600519,buy,0,1,1",
     "quantity: expected a number > 0 (got '0')"),
    ("trades.csv", "id,client_id,trade_date,symbol,side,quantity,price,amount\nT1,C001,2026-11-20,600519,buy,1,1,\"1,000\"",
     "amount: expected a number such as 1234.56 (no thousands separators) (got '1,000')"),
    ("holdings.csv", "as_of,client_id,symbol,quantity,cost,close_price\n2026-11-20,C001,600519,100,-1,1",
     "cost: expected a number >= 0 (got '-1')"),
    ("holdings.csv", "as_of,client_id,symbol,quantity,cost,close_price\n2026-11-20,C001,600519,100,nan,1",
     "cost: expected a number such as 1234.56 (no thousands separators) (got 'nan')"),
    ("cash_movements.csv", "id,client_id,moved_on,kind,amount\nM1,C001,2026-11-20,Deposit,5",
     "kind: expected one of deposit, withdrawal, transfer_out (did you mean 'deposit'?) (got 'Deposit')"),
    ("consents.csv", "client_id,channel,purpose,status,recorded_at\nC001,wechat,service,granted,2026-01-01T00:00:00Z",
     "channel: expected one of phone, sms, email, im (got 'wechat')"),
    ("consents.csv", "client_id,channel,purpose,status,recorded_at\nC001,sms,ads,granted,2026-01-01T00:00:00Z",
     "purpose: expected one of service, marketing (got 'ads')"),
    ("consents.csv", "client_id,channel,purpose,status,recorded_at\nC001,sms,service,revoked,2026-01-01T00:00:00Z",
     "status: expected one of granted, opted_out (got 'revoked')"),
    ("consents.csv", "client_id,channel,purpose,status,recorded_at\nC001,sms,service,granted,2026-01-01 08:00",
     "recorded_at: the time needs a UTC offset, such as 2026-11-20T09:30:00+08:00 (got '2026-01-01 08:00')"),
    ("consents.csv", "client_id,channel,purpose,status,recorded_at\nC001,sms,service,granted,yesterday",
     "recorded_at: expected a date and time such as 2026-11-20T09:30:00+08:00 (got 'yesterday')"),
    ("advisors.csv", "id,name,daily_capacity\nA9,x,2.5",
     "daily_capacity: expected a whole number (got '2.5')"),
    ("margin_snapshots.csv", "as_of,client_id,maintenance_ratio\n2026-11-20,C001,150%",
     "maintenance_ratio: expected a number such as 1234.56 (no thousands separators) (got '150%')"),
    ("clients.csv", "id,name,opened_on,advisor_id\nC9,x,2020-01-01,A99",
     "advisor_id: no such advisor in advisors.csv or the database (got 'A99')"),
    ("advisors.csv", "id,name,supervisor_id\nA9,x,A98",
     "supervisor_id: no such advisor in advisors.csv or the database (got 'A98')"),
])
def test_cell_problems(db: Engine, tmp_path: Path, name: str, text: str, message: str) -> None:
    import_dir(db, SAMPLE)
    d = one_file(tmp_path, name, text + "\n")
    assert problems(db, d) == [f"{d}/{name}:2: {message}"]


# ------------------------------------------------------------------ docs


def test_every_file_and_column_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `([a-z_]+\.csv)`\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    assert list(sections) == list(FILES), "docs/import.md: one section per file, in import order"
    missing = [f"{name}: {col}" for name, spec in FILES.items() for col in spec.model.model_fields
               if f"| `{col}` |" not in sections[name]]
    assert not missing, f"docs/import.md lacks columns: {missing}"

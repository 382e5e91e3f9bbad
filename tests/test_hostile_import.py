"""Hostile and careless import input: a located error, never a traceback, nothing written (issue 13).

Tests taking `db` run on SQLite and, with STEWARD_TEST_PG_URL set, on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from engine.errors import SourceErrors
from engine.facts import risk
from engine.facts.importer import FILES, import_dir
from engine.facts.validation import MAX_JSON_DEPTH
from engine.language.event_schema import parse_jsonl

CLIENTS = "id,name,opened_on\nC001,Wang,2020-01-01\n"
RA = ("id,client_id,assessed_on,capacity_score,tolerance_score,capacity_level,tolerance_level,"
      "alloc_low,alloc_medium,alloc_high,answers\n")
RA_ROW = "{id},C001,2025-06-01,35,42,medium-low,medium,20,50,30,{answers}\n"


def folder(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    return d


def problems(eng: Engine, d: Path) -> list[str]:
    with pytest.raises(SourceErrors) as e:
        import_dir(eng, d)
    with eng.connect() as c:
        assert all(c.execute(select(func.count()).select_from(s.table)).scalar_one() == 0 for s in FILES.values())
    return [str(p) for p in e.value.problems]


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@pytest.mark.parametrize(("files", "expected"), [
    ({"clients.csv/": ""}, "clients.csv: is a folder, not a file"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="99999999999999999999", answers="")},
     "risk_assessments.csv:2: id: expected a whole number between"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="9300000000000000000", answers="")},
     "risk_assessments.csv:2: id: expected a whole number between"),
    ({"clients.csv": "id,name,opened_on\nC001,Wa\x00ng,2020-01-01\n"}, "clients.csv:2: name: contains a NUL byte"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="1", answers=csv_cell('{"a": "x\\u0000y"}'))},
     "risk_assessments.csv:2: answers: contains a NUL character"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="1", answers=csv_cell('{"a": ' + "[" * 5000 + "]" * 5000 + "}"))},
     f"(limit {MAX_JSON_DEPTH})"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="1", answers=csv_cell('{"a": ' + "[" * 20 + "]" * 20 + "}"))},
     f"answers: JSON nested too deeply (limit {MAX_JSON_DEPTH})"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="1", answers=csv_cell('{"a": 1e999}'))}, "expected finite numbers"),
    ({"risk_assessments.csv": RA + RA_ROW.format(id="1", answers=csv_cell('{"a": NaN}'))}, "answers:"),
    ({"holdings.csv": "as_of,client_id,symbol,quantity,cost,close_price\n2026-11-20,C001,600519,1e999,1,1\n"},
     "holdings.csv:2: quantity: expected a finite number"),
    ({"holdings.csv": "as_of,client_id,symbol,quantity,cost,close_price\n2026-11-20,C001,600519,NaN,1,1\n"},
     "holdings.csv:2: quantity: expected a number"),
    ({"cash_balances.csv": "as_of,client_id,amount\n2026-11-20,C001,-inf\n"}, "cash_balances.csv:2: amount:"),
], ids=["dir", "id_past_int64_digits", "id_past_int64", "nul", "json_nul", "json_5000_deep", "json_20_deep",
        "json_1e999", "json_nan", "1e999", "nan", "minus_inf"])
def test_refused_with_a_location(db: Engine, tmp_path: Path, files: dict[str, str], expected: str) -> None:
    real = {k: v for k, v in files.items() if not k.endswith("/")}
    d = folder(tmp_path, {"clients.csv": CLIENTS, **real} if not any(k.startswith("clients.csv") for k in files) else real)
    for k in files:
        if k.endswith("/"):
            (d / k.rstrip("/")).mkdir()
    found = problems(db, d)
    assert any(expected in p for p in found), found


def test_a_gbk_file_stops_at_once_with_one_message(db: Engine, tmp_path: Path) -> None:
    rows = "".join(f"C{i:03d},Client {i},2020-01-01\n" for i in range(1, 100)) + "C100,张伟,2020-01-01\n"
    holdings = "as_of,client_id,symbol,quantity,cost,close_price\n" + "".join(
        f"2026-11-20,C{i:03d},600519,1,1,1\n" for i in range(1, 101))
    d = folder(tmp_path, {"clients.csv": ("id,name,opened_on\n" + rows).encode("gbk"), "holdings.csv": holdings})
    found = problems(db, d)
    assert len(found) == 1, found
    assert "clients.csv:101: not UTF-8 text" in found[0] and "iconv -f GB18030 -t UTF-8" in found[0]


@pytest.mark.parametrize("value", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
def test_events_refuse_non_finite_numbers(value: str) -> None:
    line = ('{"id": "e1", "type": "trade", "client_id": "C001", "at": "2026-11-20T10:00:00+08:00", '
            f'"symbol": "600519", "side": "buy", "quantity": 1, "price": {value}}}')
    with pytest.raises(SourceErrors) as e:
        parse_jsonl("\n" + line, "events.jsonl")
    [p] = e.value.problems
    assert str(p).startswith("events.jsonl:2:")


def test_events_refuse_deep_json() -> None:
    with pytest.raises(SourceErrors) as e:
        parse_jsonl("[" * 50_000 + "]" * 50_000, "events.jsonl")
    assert "events.jsonl:1:" in str(e.value) and "(limit" in str(e.value)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e999"])
def test_risk_sheets_refuse_non_finite_numbers(value: str) -> None:
    with pytest.raises(SourceErrors) as e:
        risk.parse_sheet(json.dumps({"max_loss_pct": 10}) .replace("{", "{\"age\": " + value + ", ", 1), "s.json")
    assert "s.json:1: age:" in str(e.value)

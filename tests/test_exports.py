"""Exports: by evaluation day, never overwritten, CSV with a BOM and XLSX, formula cells
neutralised, and the branch report as named columns."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from engine import sheets
from engine.audit.log import Event, append
from engine.cli.app import app


def _cli(eng: Engine, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["--database", eng.url.render_as_string(hide_password=False), *args], env={"COLUMNS": "200"})
    return r.exit_code, r.output


@pytest.mark.parametrize("text, shown", [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"),
                                         ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("张伟", "张伟")])
def test_formula_text_is_neutralised(text: str, shown: str) -> None:
    assert sheets.safe_cell(text) == shown
    assert sheets.safe_cell(-2.5) == -2.5 and sheets.safe_cell(None) == ""


def test_csv_has_a_bom_and_xlsx_cells_are_text(tmp_path: Path) -> None:
    sheets.write_csv(tmp_path / "a.csv", ["name", "amount"], [["=cmd|' /C calc'!A0", 5], ["王芳", -1]])
    raw = (tmp_path / "a.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "'=cmd" in raw.decode("utf-8-sig") and ",-1" in raw.decode("utf-8-sig")
    sheets.write_xlsx(tmp_path / "a.xlsx", [("s", ["name"], [["@evil"], ["ok"]])])
    ws = openpyxl.load_workbook(tmp_path / "a.xlsx").worksheets[0]
    assert [c.value for c in ws["A"]] == ["name", "'@evil", "ok"]


def _events(eng: Engine) -> None:
    with eng.begin() as conn:
        append(conn, [
            Event("rule.fired", actor="run", client_id="C1", rule_id="r", as_of=date(2026, 12, 31),
                  at=datetime(2027, 1, 1, 2, 0, tzinfo=timezone.utc)),  # the 12-31 run, recorded on 01-01 in Shanghai
            Event("rule.fired", actor="run", client_id="C2", rule_id="r", as_of=date(2026, 12, 1),
                  at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)),
            Event("role.granted", actor="admin", data={"user": "x", "role": "author"},
                  at=datetime(2027, 1, 1, 3, 0, tzinfo=timezone.utc)),
        ])


def test_audit_export_selects_by_evaluation_day_and_never_overwrites(sqlite_engine: Engine, tmp_path: Path) -> None:
    _events(sqlite_engine)
    dec, jan = tmp_path / "dec", tmp_path / "jan"
    code, out = _cli(sqlite_engine, "audit", "export", "--out", str(dec), "--format", "csv", "--event", "rule.fired",
                     "--from", "2026-12-01", "--to", "2026-12-31")
    assert code == 0 and "2 events" in out, out
    code, out = _cli(sqlite_engine, "audit", "export", "--out", str(jan), "--format", "xlsx",
                     "--from", "2027-01-01", "--to", "2027-01-31")
    assert code == 0, out
    jan_names = [r[1] for r in openpyxl.load_workbook(jan / "events.xlsx").worksheets[0].iter_rows(values_only=True)][1:]
    assert "rule.fired" not in jan_names and "role.granted" in jan_names  # no evaluation day: by time
    assert (dec / "events.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    for folder in (dec, jan):
        code, out = _cli(sqlite_engine, "audit", "check-export", str(folder))
        assert code == 0, out
    before = (dec / "events.csv").read_bytes()
    code, out = _cli(sqlite_engine, "audit", "export", "--out", str(dec), "--format", "csv")
    assert code == 2 and "already exists" in out and (dec / "events.csv").read_bytes() == before


def test_branch_report_writes_named_columns(sqlite_engine: Engine, tmp_path: Path) -> None:
    from engine.facts import trading_calendar

    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 8, 1), date(2026, 11, 30))
    code, out = _cli(sqlite_engine, "report", "branch", "--from", "2026-11-01", "--to", "2026-11-28",
                     "--out", str(tmp_path / "b.xlsx"))
    assert code == 0, out
    wb = openpyxl.load_workbook(tmp_path / "b.xlsx")
    assert wb.sheetnames == ["per-rule", "per-advisor", "kpis"]
    assert [c.value for c in wb["kpis"][1]] == ["week", "segment", "retained_assets", "churn_rate", "new_clients", "new_assets"]
    code, out = _cli(sqlite_engine, "report", "branch", "--from", "2026-11-01", "--to", "2026-11-28",
                     "--out", str(tmp_path / "b.csv"))
    assert code == 0 and (tmp_path / "b-per-rule.csv").read_text(encoding="utf-8-sig").startswith("rule_id,fired,sent,suppressed")
    code, out = _cli(sqlite_engine, "report", "branch", "--from", "2026-11-01", "--to", "2026-11-28",
                     "--out", str(tmp_path / "b.xlsx"))
    assert code == 2 and "already exists" in out

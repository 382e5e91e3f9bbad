"""A real back office's files: GB18030 CSV, .xlsx, Chinese headers, 万元 and code values,
through a mapping file; every problem points at the source file, line and header."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from engine.cli.app import app
from engine.models import CashBalance, Client

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "backoffice"


def _import(eng: Engine, folder: Path, *opts: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["--database", eng.url.render_as_string(hide_password=False), "import", str(folder), *opts],
                           env={"COLUMNS": "200"})
    return r.exit_code, r.output


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLE, folder)
    return folder


def test_the_shipped_example_imports_with_its_mapping(sqlite_engine: Engine, export: Path) -> None:
    code, out = _import(sqlite_engine, export, "--mapping", str(export / "mapping.yaml"))
    assert code == 0, out
    with sqlite_engine.connect() as conn:
        clients = {r.id: r for r in conn.execute(select(Client.__table__))}  # type: ignore[attr-defined]
        cash = dict(conn.execute(select(CashBalance.__table__.c.client_id, CashBalance.__table__.c.amount)).all())  # type: ignore[attr-defined]
    assert {k: c.risk_level for k, c in clients.items()} == {"K0001": "C2", "K0002": "C4", "K0003": "C3", "K0004": "C1"}
    assert clients["K0003"].locale == "en" and clients["K0004"].timezone == "Europe/Madrid"
    assert clients["K0001"].name == "张伟"
    assert cash == {"K0001": 525000.0, "K0002": 80000.0, "K0003": 1202500.0, "K0004": 6000.0}  # 万元 -> 元


def _edit_gbk(path: Path, old: str, new: str) -> None:
    path.write_bytes(path.read_bytes().decode("gb18030").replace(old, new).encode("gb18030"))


def test_unknown_code_value_and_bad_row_point_at_the_source(sqlite_engine: Engine, export: Path) -> None:
    _edit_gbk(export / "客户资料.csv", "成长型", "冒险型")
    _edit_gbk(export / "客户资料.csv", "2022-05-20", "2022-13-20")
    code, out = _import(sqlite_engine, export, "--mapping", str(export / "mapping.yaml"))
    assert code == 2
    assert "客户资料.csv:3: 风险等级: value '冒险型' is not in the mapping's files.clients.csv.values.risk_level" in out
    _edit_gbk(export / "客户资料.csv", "冒险型", "成长型")
    code, out = _import(sqlite_engine, export, "--mapping", str(export / "mapping.yaml"))
    assert code == 2 and "客户资料.csv:5: 开户日期 (opened_on):" in out and "2022-13-20" in out, out
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(Client.__table__)).first() is None  # type: ignore[attr-defined]


def test_wrong_encoding_says_to_use_encoding(sqlite_engine: Engine, export: Path) -> None:
    code, out = _import(sqlite_engine, export, "--mapping", str(export / "mapping.yaml"), "--encoding", "utf-8")
    assert code == 2 and "客户资料.csv:1: not utf-8" in out and "--encoding gb18030" in out


def test_mapping_errors_are_located(sqlite_engine: Engine, export: Path) -> None:
    m = export / "mapping.yaml"
    m.write_text(m.read_text(encoding="utf-8").replace("    units:\n", "    unit:\n"), encoding="utf-8")
    code, out = _import(sqlite_engine, export, "--mapping", str(m))
    assert code == 2 and "mapping.yaml:" in out and "files.cash_balances.csv.unit" in out


def test_gbk_csv_and_xlsx_without_a_mapping(sqlite_engine: Engine, tmp_path: Path) -> None:
    import openpyxl

    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "clients.csv").write_bytes("id,name,opened_on\nC1,王芳,2020-01-01\n".encode("gbk"))
    wb = openpyxl.Workbook()
    wb.active.append(["as_of", "client_id", "amount"])
    wb.active.append(["2026-11-20", "C1", 1000])
    wb.save(folder / "cash_balances.xlsx")
    code, out = _import(sqlite_engine, folder, "--encoding", "gbk")
    assert code == 0, out
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(Client.__table__.c.name)).scalar() == "王芳"  # type: ignore[attr-defined]

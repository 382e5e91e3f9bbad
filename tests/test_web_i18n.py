"""The console's Babel catalogues: every word the templates and the web code use is in the
zh-CN catalogue, the catalogues load at run time from the .po files, and a damaged one says where."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import Engine

from engine.config.base import Config
from engine.errors import StewardError
from engine.web import i18n
from tests.identity_helpers import make_user
from tests.web_helpers import Clock, client, sign_in

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("engine/web/**.py", "python"), ("engine/web/templates/**.html", "jinja2")]


def _used() -> dict[str, str]:
    """msgid -> where it is used, extracted as `pybabel extract -F babel.cfg -k N_` does."""
    out: dict[str, str] = {}
    for fname, _, msg, _, _ in extract_from_dir(str(ROOT), METHODS, keywords={"_": None, "N_": None, "gettext": None}):
        for m in (msg if isinstance(msg, tuple) else (msg,)):
            if m:
                out.setdefault(m, fname)
    return out


def test_the_babel_config_extracts_what_this_test_extracts() -> None:
    cfg = (ROOT / "babel.cfg").read_text(encoding="utf-8")
    assert all(f"[{method}: {pattern}]" in cfg for pattern, method in METHODS)


def test_every_msgid_used_has_a_zh_cn_translation() -> None:
    used = _used()
    assert len(used) > 100 and "Supervision sample" in used and "follow_up" in used
    zh = i18n.translator("zh-CN")
    missing = {m: where for m, where in used.items() if not zh.get(m)}
    assert not missing, f"no zh_CN translation (engine/web/locale/zh_CN/LC_MESSAGES/messages.po) for: {missing}"


def test_every_catalogue_lists_every_msgid_used() -> None:
    used = set(_used())
    for loc in ("en", "zh_CN"):
        with (i18n.CATALOGUES / loc / "LC_MESSAGES" / "messages.po").open("rb") as f:
            ids = {m.id for m in read_po(f) if m.id}
        assert used <= ids, (loc, sorted(used - ids))
    with (i18n.CATALOGUES / "messages.pot").open("rb") as f:
        assert used <= {m.id for m in read_po(f) if m.id}


def test_english_shows_the_msgid() -> None:
    assert i18n.translator("en") == {} and i18n.translator("fr") == {}


def test_a_damaged_catalogue_is_a_located_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "zh_CN" / "LC_MESSAGES" / "messages.po"
    bad.parent.mkdir(parents=True)
    bad.write_text('msgid "Charts"\nmsgstr "图表"\nmsgid "Firings"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "CATALOGUES", tmp_path)
    i18n.translator.cache_clear()
    try:
        with pytest.raises(StewardError, match=r"zh_CN/LC_MESSAGES/messages.po: cannot read the console's zh-CN catalogue"):
            i18n.translator("zh-CN")
    finally:
        monkeypatch.undo()
        i18n.translator.cache_clear()


def test_pages_speak_chinese_from_the_catalogue(sqlite_engine: Engine, cfg: Config) -> None:
    make_user(sqlite_engine, "chen.op", ["operator"])
    c = client(sqlite_engine, cfg, Clock())
    assert sign_in(c, "chen.op") == 303
    page = c.get("/scheduler?lang=zh-CN").text
    assert "<h1>调度器</h1>" in page and "下次运行" in page
    assert "<h1>Scheduler</h1>" in c.get("/scheduler?lang=en").text

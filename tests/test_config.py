"""config.yaml: defaults, validation with file:line:key messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.base import Config, load_config, parse_config
from engine.errors import SourceErrors
from engine.yamlio import loads

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_matches_defaults() -> None:
    cfg = load_config(ROOT / "config.yaml")
    d = Config()
    assert cfg.timezone == "Asia/Shanghai" and cfg.default_locale == "zh-CN" and cfg.regulator_profile == "cn"
    assert cfg.segments == d.segments and cfg.calendar.exchange == "XSHG"
    assert cfg.database_url == f"sqlite:///{(ROOT / 'var' / 'steward.db').resolve()}"


def test_missing_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config().timezone == "Asia/Shanghai"


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "message"), [
    ("timezone: Mars/Base\n", "config.yaml:1: timezone: unknown IANA timezone 'Mars/Base'"),
    ("segments:\n  value_high: 10\n  value_low: 20\n", "config.yaml:1: segments: value_high must be greater than value_low"),
    ("evaluation:\n  batch_size: 5\n", "config.yaml:2: evaluation.batch_size: Input should be greater than or equal to 100 (got 5)"),
    ("databse:\n  url: x\n", "config.yaml:1: databse: unknown key 'databse' (did you mean 'database'?)"),
    ("firm:\n  name: a\n  name: b\n", "config.yaml:3: invalid YAML: duplicate key 'name'"),
    ("- a\n- b\n", "config.yaml:1: config must be a mapping of keys"),
])
def test_errors_name_line_key_and_value(text: str, message: str) -> None:
    with pytest.raises(SourceErrors) as info:
        parse_config(loads(text, "config.yaml"), "config.yaml")
    assert message in str(info.value)


def test_all_errors_at_once() -> None:
    with pytest.raises(SourceErrors) as info:
        parse_config(loads("timezone: X/Y\ndefault_locale: fr\nfoo: 1\n", "config.yaml"), "config.yaml")
    assert len(info.value.problems) == 3


def test_config_is_frozen() -> None:
    with pytest.raises(Exception):
        Config().timezone = "UTC"  # type: ignore[misc]

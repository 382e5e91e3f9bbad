"""Rendering: sandbox, strict undefined, locale formatting and fallback, subjects."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from engine.language.rendering import Renderer, mask

FACTS = ["name", "market_value", "top_weight", "opened_on", "client_id", "cash"]
CTX = {"client": {"name": "王芳", "market_value": 1234567.891, "top_weight": 0.456, "opened_on": date(2026, 3, 5), "cash": None},
       "advisor": {"id": "A1", "name": "李明"}, "rule": {"id": "r", "title": "T"}, "as_of": date(2026, 11, 20)}


def make(tmp_path: Path, files: dict[str, str]) -> Renderer:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    r = Renderer(tmp_path, "zh-CN", {"name": "示例证券", "signature": "【示例证券】"})
    problems = r.load({rel.split("/")[0] for rel in files}, FACTS)
    assert not problems, problems
    return r


BODY = "{{ money(client.market_value) }} | {{ percent(client.top_weight) }} | {{ date(client.opened_on) }} | {{ money(client.cash) }}"


@pytest.mark.parametrize(("locale", "expected"), [
    ("zh-CN", "¥1,234,567.89 | 46% | 2026年3月5日 | —"),
    ("zh-TW", "CN¥1,234,567.89 | 46% | 2026年3月5日 | —"),
    ("en", "CN¥1,234,567.89 | 46% | March 5, 2026 | —"),
    ("es", "1.234.567,89\xa0CNY | 46% | 5 de marzo de 2026 | —"),
])
def test_money_percent_dates_follow_the_locale(tmp_path: Path, locale: str, expected: str) -> None:
    r = make(tmp_path, {f"t/{loc}.j2": BODY for loc in ("zh-CN", "zh-TW", "en", "es")})
    assert r.render("t", locale, CTX) == (None, expected)


def test_missing_locale_falls_back_to_default(tmp_path: Path) -> None:
    r = make(tmp_path, {"t/zh-CN.j2": "您好{{ client.name }}", "t/en.j2": "Hello {{ client.name }}"})
    assert r.render("t", "es", CTX) == (None, "您好王芳")
    assert r.render("t", "en", CTX) == (None, "Hello 王芳")


def test_subject_travels_with_the_template(tmp_path: Path) -> None:
    r = make(tmp_path, {"t/zh-CN.j2": "{% block subject %}关于{{ client.name }}{% endblock %}\n{% block body %}正文{% endblock %}"})
    assert r.render("t", "zh-CN", CTX) == ("关于王芳", "正文")


def test_subject_without_body_block_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "zh-CN.j2").write_text("{% block subject %}S{% endblock %}\ntext")
    problems = Renderer(tmp_path, "zh-CN", {}).load(["t"], FACTS)
    assert [p.message for p in problems] == ["a template with a subject block puts its text in {% block body %}"]


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    r = make(tmp_path, {"t/zh-CN.j2": "{{ client.name.__class__.__mro__ }}"})
    with pytest.raises(SecurityError):
        r.render("t", "zh-CN", CTX)


def test_sandbox_is_immutable(tmp_path: Path) -> None:
    r = make(tmp_path, {"t/zh-CN.j2": "{% set x = [1] %}{{ x.append(2) }}"})
    with pytest.raises(SecurityError):
        r.render("t", "zh-CN", CTX)


def test_strict_undefined_raises(tmp_path: Path) -> None:
    r = make(tmp_path, {"t/zh-CN.j2": "{{ client.name }}"})
    with pytest.raises(UndefinedError):
        r.render("t", "zh-CN", {**CTX, "client": {}})


def test_unknown_locale_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "zh-CN.j2").write_text("x")
    (tmp_path / "t" / "fr.j2").write_text("x")
    [p] = Renderer(tmp_path, "zh-CN", {}).load(["t"], FACTS)
    assert "unknown locale 'fr'" in p.message


def test_template_hash_changes_with_any_locale_file(tmp_path: Path) -> None:
    r1 = make(tmp_path, {"t/zh-CN.j2": "a", "t/en.j2": "b"})
    (tmp_path / "t" / "en.j2").write_text("c")
    r2 = Renderer(tmp_path, "zh-CN", {})
    r2.load(["t"], FACTS)
    assert r1.template_hash("t") != r2.template_hash("t")


@pytest.mark.parametrize(("value", "masked"), [("6222021234567890", "************7890"), ("123", "***"), (None, "")])
def test_mask(value: str | None, masked: str) -> None:
    assert mask(value) == masked


def test_firm_name_signature_and_opt_out_follow_the_client_locale(tmp_path: Path) -> None:
    from engine.config.base import FirmConfig

    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "zh-CN.j2").write_text("{{ firm.signature }}{{ client.name }}您好。{{ firm.opt_out }}", encoding="utf-8")
    (tmp_path / "hello" / "en.j2").write_text("{{ firm.name }}: Dear {{ client.name }}. {{ firm.opt_out }}", encoding="utf-8")
    firm = FirmConfig.model_validate({"name": "示例证券", "signature": "【示例证券】", "opt_out": "拒收请回复R",
                                      "locales": {"en": {"name": "Example Securities", "opt_out": "Reply STOP to opt out."}}})
    r = Renderer(tmp_path, "zh-CN", firm.model_dump())
    assert not r.load(["hello"], ["name"])
    ctx = {"client": {"name": "王芳"}, "advisor": {"id": "A1", "name": "李明"}, "rule": {"id": "r", "title": "t"}}
    assert r.render("hello", "en", ctx)[1] == "Example Securities: Dear 王芳. Reply STOP to opt out."
    assert r.render("hello", "zh-CN", ctx)[1] == "【示例证券】王芳您好。拒收请回复R"
    assert r.render("hello", "es", ctx)[1].startswith("【示例证券】")  # no es template: zh-CN, with the zh-CN firm
    with pytest.raises(ValueError, match="unknown locale"):
        FirmConfig.model_validate({"locales": {"fr": {"name": "x"}}})


def test_a_fact_is_read_from_the_dict_without_the_sandbox_s_attribute_attempt(tmp_path: Path, monkeypatch) -> None:
    """`client.x` on a plain dict reads the key directly (the sandbox's getattr raises and catches an
    AttributeError per access); dict attributes, other objects and missing keys behave as before."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    r = make(tmp_path, {"t/zh-CN.j2": "{{ client.name }} {{ percent(client.top_weight, 1) }} {% set a = client %}{{ a.items() | length }}"})
    seen: list[str] = []
    real = ImmutableSandboxedEnvironment.getattr

    def spy(self, obj, attribute):  # type: ignore[no-untyped-def]
        seen.append(attribute)
        return real(self, obj, attribute)

    monkeypatch.setattr(ImmutableSandboxedEnvironment, "getattr", spy)
    assert r.render("t", "zh-CN", CTX) == (None, "王芳 45.6% 5")
    assert seen == ["items"]  # the dict method still goes through the sandbox's checks
    with pytest.raises(UndefinedError):  # a missing key: undefined, as before
        r.render("t", "zh-CN", {**CTX, "client": {"top_weight": 0.1}})


def test_a_date_is_formatted_once_per_locale_and_format(tmp_path: Path, monkeypatch) -> None:
    """date() keeps what Babel made for a (date, format) pair: the evaluation day and festival dates
    come back in most messages. The text is Babel's, for every format asked."""
    from babel.dates import format_date

    from engine.language import rendering

    r = make(tmp_path, {"t/zh-CN.j2": "{{ date(as_of) }}|{{ date(as_of) }}|{{ date(as_of, 'short') }}|{{ date(client.opened_on) }}"})
    calls: list[object] = []
    monkeypatch.setattr(rendering, "format_date", lambda v, format, locale: calls.append(v) or format_date(v, format=format, locale=locale))
    ctx = {**CTX, "as_of": date(1999, 12, 31)}
    loc = rendering.babel_locale("zh-CN")
    expected = "|".join([format_date(date(1999, 12, 31), "long", locale=loc)] * 2
                        + [format_date(date(1999, 12, 31), "short", locale=loc), format_date(date(2026, 3, 5), "long", locale=loc)])
    assert r.render("t", "zh-CN", ctx) == (None, expected)
    assert r.render("t", "zh-CN", ctx) == (None, expected)
    assert calls.count(date(1999, 12, 31)) <= 2  # once per format at most, over two renders of two long dates

"""Hostile and careless templates: a located error or a budgeted render, never a hang (issue 13)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.config.base import Config
from engine.language import rendering
from engine.language.loading import check_ruleset
from engine.language.rendering import RenderBudgetError, Renderer

ROOT = Path(__file__).resolve().parent.parent
FIRM = {"name": "ACME Securities", "signature": "ACME"}
CTX = {"client": {"client_id": "C001", "name": "Wang"}, "advisor": {"id": "A1", "name": "Li"},
       "rule": {"id": "r", "title": "T"}, "as_of": None}


def renderer(tmp_path: Path, source: str) -> tuple[Renderer, list[str]]:
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t" / "en.j2").write_text(source, encoding="utf-8")
    r = Renderer(tmp_path, "en", FIRM)
    t0 = time.perf_counter()
    problems = [str(p) for p in r.load(["t"], ["client_id", "name", "market_value"])]
    assert time.perf_counter() - t0 < 15
    return r, problems


@pytest.mark.parametrize(("source", "expected"), [
    ("{% for range in [] %}{% endfor %}{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     "t/en.j2:1: template: 'range' is a reserved name"),
    ("{% macro f(range) %}{% endmacro %}", "'range' is a reserved name"),
    ("{% set client = 1 %}", "'client' is a reserved name"),
    ("x\n{{ (firm.name * 1000)|wordwrap(1) }}", "t/en.j2:2: template: filter 'wordwrap' is not allowed"),
    ("{{ firm.name|center(1000000000) }}", "filter 'center' is not allowed"),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "macros are not allowed"),
    ("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", "recursive loops are not allowed"),
    ("a\n{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "t/en.j2:2: template: expression nested too deeply"),
    ("x" * (rendering.MAX_TEMPLATE_BYTES + 1), f"(limit {rendering.MAX_TEMPLATE_BYTES})"),
], ids=["range_shadow", "macro_param", "context_shadow", "wordwrap", "center", "macro", "recursive", "parens3000", "size"])
def test_refused_at_load_with_a_location(tmp_path: Path, source: str, expected: str) -> None:
    _, problems = renderer(tmp_path, source)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("source", "code"), [
    ("{{ firm.name * 1000000000 }}", "RENDER_VALUE_TOO_LARGE"),
    ("{{ 1000000000 * firm.name }}", "RENDER_VALUE_TOO_LARGE"),
    ("{{ 2**100000000 }}", "RENDER_VALUE_TOO_LARGE"),
    ("{{ client.market_value ** 99999 }}", "RENDER_VALUE_TOO_LARGE"),
    ("{{ firm.name.ljust(1000000000) }}", "RENDER_NOT_ALLOWED"),
    ("{{ '%0999999999d' % 1 }}", "RENDER_VALUE_TOO_LARGE"),
    ("{% set a = firm.name * 500 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c }}", "RENDER_VALUE_TOO_LARGE"),
    ("{% for a in firm.name * 100 %}{% for b in firm.name * 100 %}{% endfor %}{% endfor %}", "RENDER_TOO_MANY_STEPS"),
    ("{% for x in firm.name * 100 %}{{ firm.name * 10 }}{% endfor %}", "RENDER_TOO_LONG"),
], ids=["str_times_big", "big_times_str", "pow", "pow_field", "ljust", "percent_format", "concat_doubling",
        "nested_loops", "long_output"])
def test_over_budget_render_is_an_error_with_a_reason_code(tmp_path: Path, source: str, code: str) -> None:
    r, problems = renderer(tmp_path, source)
    assert problems == []
    t0 = time.perf_counter()
    with pytest.raises(RenderBudgetError) as e:
        r.render("t", "en", {**CTX, "client": {**CTX["client"], "market_value": 123456}})
    assert time.perf_counter() - t0 < 2 * rendering.MAX_RENDER_SECONDS + 0.5
    assert e.value.code == code and str(e.value).startswith(code)
    assert e.value.line == 1


def test_ordinary_template_renders(tmp_path: Path) -> None:
    r, problems = renderer(tmp_path, "Dear {{ client.name|upper }}, {{ money(1000) }}{% for x in [1, 2] %} {{ x }}{% endfor %}")
    assert problems == []
    assert r.render("t", "en", CTX)[1] == "Dear WANG, CN¥1,000.00 1 2"


def test_rules_check_renders_every_template_against_sample_facts(cfg: Config, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "t").mkdir(parents=True)
    (templates / "t" / "zh-CN.j2").write_text("您好\n{% for c in client.name %}{{ client.name * 100 }}{% endfor %}", encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r1.yaml").write_text(
        "id: r1\ntitle: T\ndescription: D\nowner: me\nclass: service\nwhen: top_weight > 1\n"
        "action:\n  type: task\n  channel: phone\n  template: t\n", encoding="utf-8")
    _, found = check_ruleset(cfg, [rules], templates)
    budget = [str(p) for p in found if "render budget" in p.message]
    assert len(budget) == 1 and "t/zh-CN.j2:2: template: over the render budget on sample facts: RENDER_TOO_LONG" in budget[0]


def test_shipped_templates_fit_the_budget(full_cfg: Config) -> None:
    _, found = check_ruleset(full_cfg)
    assert [str(p) for p in found if "render budget" in p.message] == []


def test_over_budget_render_is_a_failed_firing_with_its_reason_code(cfg: Config, tmp_path: Path) -> None:
    from datetime import date

    from engine.language.loading import load_ruleset
    from engine.pipeline.run import evaluate_facts

    templates = tmp_path / "templates"
    (templates / "t").mkdir(parents=True)
    (templates / "t" / "zh-CN.j2").write_text(
        "客户{{ client.client_id | mask }}\n{% if client.segment == 'core' %}{{ client.name * 2000 }}{% endif %}", encoding="utf-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r1.yaml").write_text(
        "id: r1\ntitle: T\ndescription: D\nowner: me\nclass: service\nwhen: top_weight > 0.1\n"
        "action:\n  type: task\n  channel: phone\n  template: t\n", encoding="utf-8")
    rs = load_ruleset(cfg, [rules], templates)  # sample facts do not take the costly branch
    base = {"client_id": "C1", "name": "Wang Wei", "top_weight": 0.5, "locale": "zh-CN"}
    ok, bad = evaluate_facts(rs, [{**base, "segment": "dormant"}, {**base, "client_id": "C2", "segment": "core"}],
                             date(2026, 11, 20))
    assert ok.error is None and ok.message == "客户**"
    assert bad.message is None and bad.error is not None and bad.error.startswith("RENDER_VALUE_TOO_LARGE: ")


def test_the_time_budget_counts_the_render_s_cpu_not_a_busy_machine_s_wall_time() -> None:
    """A render stretched by other processes (the thread waits, descheduled) stays within budget;
    a render that burns its own CPU past the limit is stopped. Sleeping stands in for waiting."""
    from engine.language.rendering import MAX_RENDER_SECONDS, RenderBudgetError, _Budget

    waiting = _Budget(time.thread_time() + 0.05)
    time.sleep(0.2)  # four times the budget in wall time, no CPU
    waiting.tick()

    busy = _Budget(time.thread_time() + 0.05)
    end = time.thread_time() + 0.1
    while time.thread_time() < end:
        pass
    with pytest.raises(RenderBudgetError) as e:
        busy.tick()
    assert e.value.code == "RENDER_TOO_SLOW" and f"limit {MAX_RENDER_SECONDS}" in str(e.value)


def test_the_time_budget_reads_the_cpu_clock_only_once_the_wall_clock_says_it_could_be_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's CPU time grows no faster than the wall clock: until the budget's span has passed on
    the wall clock, a tick skips the CPU clock (a system call per chunk of text, half of rendering's CPU)."""
    from engine.language import rendering

    budget = rendering._budget()
    assert budget.wall > 0 and budget.deadline > 0
    budget.wall = float("inf")  # the wall clock has not reached the budget's span yet
    reads: list[float] = []
    real = time.thread_time
    monkeypatch.setattr(rendering.time, "thread_time", lambda: reads.append(1.0) or real())
    for _ in range(50):
        budget.tick()
    assert reads == []

    budget.wall = float("-inf")  # the span has passed on the wall clock: the CPU clock decides
    budget.tick()
    assert len(reads) == 1
    budget.deadline = real() - 1.0
    with pytest.raises(rendering.RenderBudgetError) as e:
        budget.tick()
    assert e.value.code == "RENDER_TOO_SLOW"

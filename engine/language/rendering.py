"""Message rendering: the only module that builds a Jinja environment.

Templates live in `templates/<name>/<locale>.j2`. They run in Jinja's immutable
sandbox with StrictUndefined, are compiled once at start-up, and every variable
they use is checked against the allow-list below and the known fact fields.

An e-mail subject travels with its template as a block:
`{% block subject %}...{% endblock %}`, and then the text goes in
`{% block body %}...{% endblock %}`. Without blocks the whole file is the text.

Every render runs under a budget (docs/rule-language.md, "Template limits"): loop
iterations, output size, the size of any value an operator or call makes, and time.
Over budget raises `RenderBudgetError` with a reason code; the run records it as a
failed firing. Templates may use only the filters in `FILTERS` and no macros,
includes or recursive loops, so nothing outside the budget's reach can run.
"""

from __future__ import annotations

import hashlib
import operator
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberPattern, format_currency, format_decimal, format_percent, parse_pattern
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.config.base import LOCALES
from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.yamlio import read_text

MAX_TEMPLATE_BYTES = 64 * 1024
"""Largest template file."""
MAX_RENDER_CHARS = 8_000
"""Longest rendered message (subject and text each), and the largest string or list a template may build."""
MAX_LOOP_STEPS = 2_000
"""Most loop iterations in one render, all loops together."""
MAX_RENDER_SECONDS = 0.5
"""Most CPU time one render may take (the rendering thread's own CPU time, so a busy machine,
which stretches wall time, never fails a template that is cheap)."""
MAX_INT_BITS = 256
"""Largest integer an operator in a template may produce."""
FILTERS = ("abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "join",
           "last", "length", "lower", "mask", "max", "min", "reverse", "round", "string", "sort", "title",
           "trim", "truncate", "unique", "upper")
"""Filters templates may use; the others (wordwrap, center, indent, format, ...) can build huge text."""
STR_METHODS = frozenset({"capitalize", "endswith", "isdigit", "lower", "lstrip", "rstrip", "startswith",
                         "strip", "title", "upper", "get", "items", "keys", "values"})
"""Methods a template may call (on strings and mappings); others can build huge text."""
NOT_IN_MESSAGES = {nodes.Macro: "macros", nodes.CallBlock: "call blocks", nodes.Include: "includes",
                   nodes.Import: "imports", nodes.FromImport: "imports", nodes.Extends: "extends"}
RESERVED = ("range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "self", "caller", "varargs", "kwargs")
"""Names a template may not assign: Jinja's own globals and loop variables."""


class RenderBudgetError(TemplateError):
    """A render over its budget; `code` is the reason code recorded with the failed firing."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.line: int | None = None


@dataclass
class _Budget:
    deadline: float
    """The thread's CPU clock (`time.thread_time`) past which the render is over budget."""
    wall: float = 0.0
    """A wall-clock instant (`time.perf_counter`) before which the CPU deadline cannot have passed."""
    steps: int = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise RenderBudgetError("RENDER_TOO_MANY_STEPS", f"loops ran more than {MAX_LOOP_STEPS} times (limit {MAX_LOOP_STEPS})")
        # A thread's CPU time grows no faster than the wall clock, so until `wall` the CPU deadline
        # is not reached: the cheap clock first (~0.07 µs), the thread's CPU clock (a system call,
        # ~1 µs, once per chunk of text was half of the rendering stage's CPU) only after it.
        if time.perf_counter() >= self.wall and time.thread_time() > self.deadline:
            raise RenderBudgetError("RENDER_TOO_SLOW", f"rendering took more than {MAX_RENDER_SECONDS} s (limit {MAX_RENDER_SECONDS})")


def _budget() -> _Budget:
    """A render's budget from now: MAX_RENDER_SECONDS of the thread's CPU time."""
    return _Budget(time.thread_time() + MAX_RENDER_SECONDS, time.perf_counter() + MAX_RENDER_SECONDS)


_BUDGET: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _bounded(value: Any) -> Any:
    """Refuse a value too large to belong in a message."""
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_RENDER_CHARS:
        raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"a value of {len(value)} items or characters (limit {MAX_RENDER_CHARS})")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"an integer of {value.bit_length()} bits (limit {MAX_INT_BITS})")
    return value


def _size(v: Any) -> int:
    return len(v) if isinstance(v, (str, list, tuple)) else 1


def _budget_iter(iterable: Any) -> Iterator[Any]:
    """Wraps every `for` loop's iterable: one budget step per iteration."""
    for item in iterable:
        _tick()
        yield item


def _budget_concat(*parts: Any) -> str:
    """`a ~ b`: refuse before building a string over the limit."""
    texts = [str(p) for p in parts]
    if sum(map(len, texts)) > MAX_RENDER_CHARS:
        raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"'~' would make {sum(map(len, texts))} characters (limit {MAX_RENDER_CHARS})")
    return "".join(texts)


_BINOPS = {"*": operator.mul, "**": operator.pow, "+": operator.add, "//": operator.floordiv, "%": operator.mod}

CONTEXT_VARIABLES = {
    "client": "the client's facts (see docs/facts.md)",
    "advisor": "the client's advisor: id, name",
    "rule": "the rule that fired: id, title",
    "as_of": "the evaluation date",
    "firm": "the firm as the client's language shows it: name, signature, opt_out (config firm.locales)",
}
ADVISOR_KEYS = ("id", "name")
RULE_KEYS = ("id", "title")
FIRM_KEYS = ("name", "signature", "opt_out")
_BABEL_LOCALE = {"zh-CN": "zh_Hans_CN", "zh-TW": "zh_Hant_TW", "en": "en_US", "es": "es_ES"}
_LOCALES: dict[str, Locale] = {}


def babel_locale(locale: str) -> Locale:
    """Parsed once and cached: Babel is several times slower when handed strings."""
    loc = _LOCALES.get(locale)
    if loc is None:
        loc = _LOCALES[locale] = Locale.parse(_BABEL_LOCALE.get(locale, locale.replace("-", "_")))
    return loc


def mask(value: Any, keep: int = 4) -> str:
    """Mask an account or id number, keeping the last digits: ****1234."""
    s = "" if value is None else str(value)
    return "*" * max(len(s) - keep, 0) + s[-keep:] if len(s) > keep else "*" * len(s)


class _Env(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with operators and calls checked against the render budget."""

    intercepted_binops = frozenset(_BINOPS)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _tick()
        if op == "%" and isinstance(left, str):
            raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", "'%' formatting is not allowed in templates")
        if op == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)):
            left, right = right, left
        if op == "*" and isinstance(left, (str, list, tuple)) and isinstance(right, int):
            if len(left) * right > MAX_RENDER_CHARS:
                raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"'*' would make {len(left) * right} items or characters (limit {MAX_RENDER_CHARS})")
        if op == "**" and isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if abs(right) > MAX_INT_BITS or (isinstance(left, int) and abs(left) > 1 and abs(right) * abs(left).bit_length() > MAX_INT_BITS):
                raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"power too large (limit {MAX_INT_BITS} bits)")
        if op == "*" and isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"product too large (limit {MAX_INT_BITS} bits)")
        if op == "+" and _size(left) + _size(right) > MAX_RENDER_CHARS:
            raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"sum of {_size(left) + _size(right)} items (limit {MAX_RENDER_CHARS})")
        try:
            return _bounded(_BINOPS[op](left, right))
        except OverflowError as e:
            raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", f"'{op}' overflows: {e}") from e

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`client.name` on a plain dict: the key at once. Jinja's sandbox tries the attribute
        first and catches the AttributeError (a raised exception per `client.x`, ~1 µs); a key that
        is not an attribute of dict gets the same answer (the value, else undefined) without it."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, (str, dict, list, tuple)) and name not in STR_METHODS:
            raise RenderBudgetError("RENDER_NOT_ALLOWED", f"method {name!r} is not allowed in templates")
        return _bounded(ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs))


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _make_env() -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["mask"] = mask
    env.filters = {k: v for k, v in env.filters.items() if k in FILTERS}
    env.globals = {"_budget_iter": _budget_iter, "_budget_concat": _budget_concat}
    return env


def _instrument(ast: nodes.Template) -> nodes.Template:
    """Route every loop through the budget and every `~` through a size check."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name("_budget_iter", "load"), [loop.iter], [], None, None, lineno=loop.lineno)
    for cat in list(ast.find_all(nodes.Concat)):
        call = nodes.Call(nodes.Name("_budget_concat", "load"), list(cat.nodes), [], None, None, lineno=cat.lineno)
        cat.nodes = [call]
    return ast


@dataclass(frozen=True)
class TemplateSet:
    """One template name: compiled per locale, with a content hash over all its files."""

    name: str
    files: dict[str, Path]
    content_hash: str


class Renderer:
    """Compiles every template once; renders with per-locale formatting filters."""

    def __init__(self, templates_dir: Path, default_locale: str, firm: Mapping[str, Any]):
        self.dir = templates_dir
        self.default_locale = default_locale
        base = {k: str(v) for k, v in firm.items() if k in FIRM_KEYS and v is not None}
        self.firm = {"opt_out": "", **base}
        self._by_locale: dict[str, dict[str, str]] = {
            loc: {**self.firm, **{k: str(v) for k, v in (over or {}).items() if k in FIRM_KEYS and v is not None}}
            for loc, over in (firm.get("locales") or {}).items()}
        self.env = _make_env()
        self._compiled: dict[tuple[str, str], Any] = {}
        self.sets: dict[str, TemplateSet] = {}

    # -------------------------------------------------------------- loading

    def load(self, names: Iterable[str], fact_fields: Iterable[str]) -> list[Problem]:
        """Compile the named templates and check their variables; return all problems."""
        problems: list[Problem] = []
        known = set(fact_fields)
        for name in sorted(set(names)):
            folder = self.dir / name
            files = {p.stem: p for p in sorted(folder.glob("*.j2"))} if folder.is_dir() else {}
            if self.default_locale not in files:
                problems.append(Problem(rel(folder / f"{self.default_locale}.j2"), None, "template",
                                        f"template {name!r} has no {self.default_locale} file (the default locale)"))
                if not files:
                    continue
            for loc, path in files.items():
                if loc not in LOCALES:
                    problems.append(Problem(rel(path), None, "template", f"unknown locale {loc!r}: name files {', '.join(LOCALES)}"))
                    continue
                problems += self._compile(name, loc, path, known)
            digest = hashlib.sha256()
            for loc, path in sorted(files.items()):
                digest.update(f"{loc}\0".encode() + path.read_bytes() + b"\0")
            self.sets[name] = TemplateSet(name, files, digest.hexdigest())
        return problems

    def _compile(self, name: str, loc: str, path: Path, known: set[str]) -> list[Problem]:
        try:
            source = read_text(path, MAX_TEMPLATE_BYTES)
            ast = self.env.parse(source, name=name, filename=str(path))
            found = [Problem(rel(path), line, "template", msg) for line, msg in check_variables(ast, known)]
            if not found:
                code = self.env.compile(_instrument(self.env.parse(source)), name=name, filename=str(path))
                # globals as a plain dict, not make_globals' ChainMap: every render copies them into
                # its context, and a ChainMap is slow to iterate. env.globals never change after _make_env.
                self._compiled[(name, loc)] = self.env.template_class.from_code(
                    self.env, code, dict(self.env.make_globals(None)), None)
        except SourceErrors as e:
            return e.problems
        except TemplateSyntaxError as e:
            return [Problem(rel(path), e.lineno, "template", f"syntax error: {e.message}")]
        except (RecursionError, SyntaxError, MemoryError):
            return [Problem(rel(path), _deepest_line(source), "template",
                            f"expression nested too deeply (limit about {MAX_TEMPLATE_NESTING} brackets): simplify it")]
        blocks = {b.name for b in ast.find_all(nodes.Block)}
        if "subject" in blocks and "body" not in blocks:
            found.append(Problem(rel(path), 1, "template", "a template with a subject block puts its text in {% block body %}"))
        return found

    def check_budget(self, fields: Mapping[str, str]) -> list[Problem]:
        """Render every compiled template against sample facts; report what exceeds the budget."""
        sample = {n: _SAMPLE.get(t, "X" * 40) for n, t in fields.items()}
        ctx = {"client": sample, "advisor": {"id": "A001", "name": "X" * 20},
               "rule": {"id": "sample", "title": "X" * 40}, "as_of": date(2024, 12, 31)}
        out: list[Problem] = []
        for (name, loc), _tmpl in sorted(self._compiled.items()):
            path = rel(self.sets[name].files[loc]) if name in self.sets else name
            try:
                self.render(name, loc, ctx)
            except RenderBudgetError as e:
                out.append(Problem(path, e.line, "template", f"over the render budget on sample facts: {e}"))
            except Exception:  # noqa: BLE001, S112 - sample values need not suit every branch: only the budget is judged here
                continue
        return out

    def template_hash(self, name: str) -> str | None:
        ts = self.sets.get(name)
        return ts.content_hash if ts else None

    # -------------------------------------------------------------- rendering

    def firm_for(self, locale: str) -> dict[str, str]:
        """The firm's name, signature and opt-out line in `locale` (config firm.locales), else the defaults."""
        return self._by_locale.get(locale, self.firm)

    def render(self, name: str, locale: str, context: Mapping[str, Any]) -> tuple[str | None, str]:
        """(subject, text) in the client's locale, falling back to the default locale."""
        tmpl = self._compiled.get((name, locale))
        if tmpl is None:
            locale = self.default_locale
            tmpl = self._compiled[(name, locale)]
        ctx = dict(context)
        ctx["firm"] = self.firm_for(locale)
        ctx.update(_formatters(locale))
        token = _BUDGET.set(_budget())
        gen: Any = None
        try:
            subject = None
            if "subject" in tmpl.blocks:
                gen = tmpl.blocks["subject"](tmpl.new_context(ctx))
                subject = _collect(gen).strip()
            gen = (tmpl.blocks["body"] if "body" in tmpl.blocks else tmpl.root_render_func)(tmpl.new_context(ctx))
            text = _collect(gen)
        except RenderBudgetError as e:
            e.line = _template_line(e.__traceback__, tmpl) or _suspended_line(gen, tmpl)
            raise
        except RecursionError as e:
            raise RenderBudgetError("RENDER_TOO_DEEP", "template recursion too deep") from e
        except MemoryError as e:
            raise RenderBudgetError("RENDER_VALUE_TOO_LARGE", "out of memory while rendering") from e
        finally:
            _BUDGET.reset(token)
        return subject, text.strip()


MAX_TEMPLATE_NESTING = 100
_SAMPLE: dict[str, Any] = {"number": 9_999_999.99, "bool": True, "date": "2024-01-01", "string": "X" * 40}


def _deepest_line(source: str) -> int:
    """Line where bracket nesting first passes MAX_TEMPLATE_NESTING (else 1): where to look."""
    depth = 0
    for i, c in enumerate(source):
        depth += (c in "([{") - (c in ")]}")
        if depth > MAX_TEMPLATE_NESTING:
            return source.count("\n", 0, i) + 1
    return 1


def _template_line(tb: Any, tmpl: Any) -> int | None:
    """Template line of the innermost frame of compiled template code in a traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == tmpl.filename:
            line = tmpl.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _suspended_line(gen: Any, tmpl: Any) -> int | None:
    """Template line where a render generator (or the block it delegates to) last yielded."""
    line = None
    while gen is not None and getattr(gen, "gi_frame", None) is not None:
        if gen.gi_frame.f_code.co_filename == tmpl.filename:
            line = tmpl.get_corresponding_lineno(gen.gi_frame.f_lineno)
        gen = gen.gi_yieldfrom
    return line


def _collect(chunks: Iterable[str]) -> str:
    """Join rendered chunks, stopping as soon as the text is over budget."""
    out: list[str] = []
    total = 0
    budget = _BUDGET.get()  # the render's, set before its chunks are collected (as _tick would read it)
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_RENDER_CHARS:
            raise RenderBudgetError("RENDER_TOO_LONG", f"message longer than {MAX_RENDER_CHARS} characters (limit {MAX_RENDER_CHARS})")
        out.append(chunk)
        if budget is not None:
            budget.tick()
    return "".join(out)


_FORMATTERS: dict[str, dict[str, Any]] = {}


def _formatters(locale: str) -> dict[str, Any]:
    """money(), number(), percent() and date() bound to one parsed locale (cached)."""
    f = _FORMATTERS.get(locale)
    if f is not None:
        return f
    loc = babel_locale(locale)

    def money(v: Any, currency: str = "CNY") -> str:
        return "—" if v is None else format_currency(v, currency, locale=loc)

    def number(v: Any, digits: int = 0) -> str:
        return "—" if v is None else format_decimal(round(v, digits), locale=loc)

    patterns: dict[int, NumberPattern] = {}

    def percent(v: Any, digits: int = 0) -> str:
        if v is None:
            return "—"
        pattern = patterns.get(digits)
        if pattern is None:  # parsed once per number of digits, not per call
            pattern = patterns[digits] = parse_pattern("#,##0" + ("." + "0" * digits if digits else "") + "%")
        return format_percent(v, format=pattern, locale=loc)

    dates: dict[tuple[date, str], str] = {}

    def fdate(v: Any, fmt: str = "long") -> str:
        if v is None:
            return "—"
        if isinstance(v, str):
            v = date.fromisoformat(v)
        if isinstance(v, datetime):
            v = v.date()
        if type(fmt) is not str or type(v) is not date:
            return format_date(v, format=fmt, locale=loc)
        key = (v, fmt)
        text = dates.get(key)
        if text is None:  # the same few dates (the evaluation day, festivals) come back in most messages
            text = format_date(v, format=fmt, locale=loc)
            if len(dates) < 10_000:
                dates[key] = text
        return text

    f = _FORMATTERS[locale] = {"money": money, "number": number, "percent": percent, "date": fdate}
    return f


FORMAT_FUNCTIONS = ("money", "number", "percent", "date")


def check_variables(ast: nodes.Template, fact_fields: set[str]) -> list[tuple[int, str]]:
    """Every variable a template reads must be allow-listed; returns (line, problem) pairs."""
    allowed_top = set(CONTEXT_VARIABLES) | set(FORMAT_FUNCTIONS)
    out: list[tuple[int, str]] = []
    for n in ast.find_all(nodes.Name):
        if n.ctx in ("store", "param") and (n.name in allowed_top or n.name in RESERVED or n.name.startswith("_")):
            out.append((n.lineno, f"'{n.name}' is a reserved name: pick another name for the variable"))
    for kind, what in NOT_IN_MESSAGES.items():
        for found in ast.find_all(kind):
            out.append((found.lineno, f"{what} are not allowed in message templates"))
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            out.append((loop.lineno, "recursive loops are not allowed in message templates"))
    for f in ast.find_all((nodes.Filter, nodes.Test)):
        if isinstance(f, nodes.Filter) and f.name not in FILTERS:
            out.append((f.lineno, f"filter '{f.name}' is not allowed in messages{did_you_mean(f.name, FILTERS)}; use one of {', '.join(FILTERS)}"))
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    members = {"client": fact_fields, "advisor": set(ADVISOR_KEYS), "rule": set(RULE_KEYS), "firm": set(FIRM_KEYS)}
    for n in ast.find_all(nodes.Name):
        if n.ctx == "load" and n.name not in allowed_top and n.name not in assigned:
            out.append((n.lineno, f"unknown variable '{n.name}'{did_you_mean(n.name, allowed_top)}; "
                                  f"templates see {', '.join(sorted(CONTEXT_VARIABLES))}"))
    for g in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target: Any = g
        if isinstance(target.node, nodes.Name) and target.node.name in members:
            attr = target.attr if isinstance(g, nodes.Getattr) else getattr(target.arg, "value", None)
            name = target.node.name
            if isinstance(attr, str) and attr not in members[name]:
                out.append((g.lineno, f"unknown variable '{name}.{attr}'{did_you_mean(attr, members[name])}"))
    return sorted(set(out))

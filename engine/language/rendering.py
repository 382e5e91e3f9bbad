"""Message rendering: the only module that builds a Jinja environment.

Templates live in `templates/<name>/<locale>.j2`. They run in Jinja's immutable
sandbox with StrictUndefined, are compiled once at start-up, and every variable
they use is checked against the allow-list below and the known fact fields.

An e-mail subject travels with its template as a block:
`{% block subject %}...{% endblock %}`, and then the text goes in
`{% block body %}...{% endblock %}`. Without blocks the whole file is the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.config.base import LOCALES
from engine.errors import Problem, did_you_mean, rel

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
    pass


def _make_env() -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["mask"] = mask
    return env


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
            source = path.read_text(encoding="utf-8")
            ast = self.env.parse(source, name=name, filename=str(path))
            self._compiled[(name, loc)] = self.env.from_string(source)
        except TemplateSyntaxError as e:
            return [Problem(rel(path), e.lineno, "template", f"syntax error: {e.message}")]
        except UnicodeDecodeError:
            return [Problem(rel(path), None, "template", "file is not UTF-8 text")]
        found = [Problem(rel(path), line, "template", msg) for line, msg in check_variables(ast, known)]
        blocks = {b.name for b in ast.find_all(nodes.Block)}
        if "subject" in blocks and "body" not in blocks:
            found.append(Problem(rel(path), 1, "template", "a template with a subject block puts its text in {% block body %}"))
        return found

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
        c = tmpl.new_context(ctx)
        subject = "".join(tmpl.blocks["subject"](c)).strip() if "subject" in tmpl.blocks else None
        body = tmpl.blocks["body"] if "body" in tmpl.blocks else tmpl.root_render_func
        text = "".join(body(tmpl.new_context(ctx)))
        return subject, text.strip()


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

    def percent(v: Any, digits: int = 0) -> str:
        return "—" if v is None else format_percent(v, format="#,##0" + ("." + "0" * digits if digits else "") + "%", locale=loc)

    def fdate(v: Any, fmt: str = "long") -> str:
        if v is None:
            return "—"
        if isinstance(v, str):
            v = date.fromisoformat(v)
        if isinstance(v, datetime):
            v = v.date()
        return format_date(v, format=fmt, locale=loc)

    f = _FORMATTERS[locale] = {"money": money, "number": number, "percent": percent, "date": fdate}
    return f


FORMAT_FUNCTIONS = ("money", "number", "percent", "date")


def check_variables(ast: nodes.Template, fact_fields: set[str]) -> list[tuple[int, str]]:
    """Every variable a template reads must be allow-listed; returns (line, problem) pairs."""
    allowed_top = set(CONTEXT_VARIABLES) | set(FORMAT_FUNCTIONS)
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    members = {"client": fact_fields, "advisor": set(ADVISOR_KEYS), "rule": set(RULE_KEYS), "firm": set(FIRM_KEYS)}
    out: list[tuple[int, str]] = []
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

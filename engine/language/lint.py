"""Compliance lint of rules and templates: prohibited claims, required elements, masked variables.

The lists are data under compliance control (`compliance/*.yaml`, approved like rules and
templates); this module only knows how to apply them. Lint runs on `steward rules check`,
when a rule set loads for a run, and on `steward review submit`. Each finding names the
file, line, phrase or element, reason and severity: an error blocks approval and start-up,
a warning is shown to the reviewer.

Prohibited claims (phrases and promise patterns) are found by engine.language.claims: a
negation makes a claim a disclosure only when it belongs to the claim's own verb phrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, TemplateSyntaxError, nodes
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import Problem, SourceErrors, rel
from engine.language.claims import LANGS, Language, Severity, find, prohibited_claims_in
from engine.language.rendering import MAX_TEMPLATE_BYTES
from engine.yamlio import line_of, load_file, read_text

LISTS = ("prohibited.yaml", "required.yaml", "variables.yaml")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_PLACEHOLDER = "\u2026"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prohibited(_M):
    zh: Language
    en: Language
    es: Language


class SignatureElement(_M):
    variables: tuple[str, ...] = ()
    pattern: str


class When(_M):
    rule_class: Literal["service", "marketing"] | None = Field(None, alias="class")
    channel: tuple[Literal["sms", "email", "im", "phone"], ...] | None = None
    locales: tuple[str, ...] | None = None
    product: bool | None = None


class Requirement(_M):
    element: str
    when: When
    severity: Severity = "error"
    reason: str


class Required(_M):
    elements: dict[str, Any]
    requirements: tuple[Requirement, ...]
    service_forbidden: dict[str, tuple[str, ...]]
    marketing_topics: dict[str, tuple[str, ...]]


class Variables(_M):
    masked: tuple[str, ...]


@dataclass(frozen=True)
class Lists:
    prohibited: Prohibited
    required: Required
    variables: Variables
    signature: SignatureElement
    phrase_elements: dict[str, dict[str, tuple[str, ...]]]
    """element -> locale -> phrases (opt_out, risk_warning, ...)."""


@dataclass(frozen=True)
class Finding:
    path: str
    line: int | None
    check: str
    """prohibited, required, service_wording, marketing_topic, masking, product."""
    phrase: str
    reason: str
    severity: str

    def problem(self) -> Problem:
        return Problem(self.path, self.line, f"lint.{self.check}", f"'{self.phrase}': {self.reason}", self.severity)


# ------------------------------------------------------------------ loading the lists


def _validate(model: type[_M], path: Path, problems: list[Problem]) -> Any:
    try:
        data = load_file(path)
    except SourceErrors as e:
        problems += e.problems
        return None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(rel(path), line_of(data, loc), ".".join(map(str, loc)), err["msg"]))
        return None


def _elements(req: Required, path: Path, problems: list[Problem]) -> tuple[SignatureElement | None, dict[str, dict[str, tuple[str, ...]]]]:
    raw = dict(req.elements)
    sig: SignatureElement | None = None
    try:
        sig = SignatureElement.model_validate(raw.pop("signature", None))
        re.compile(sig.pattern)
    except (ValidationError, re.error) as e:
        problems.append(Problem(rel(path), None, "elements.signature", f"expected variables: [...] and a valid pattern: ({e})"))
    phrases: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, per_locale in raw.items():
        if not isinstance(per_locale, dict) or not all(isinstance(v, list) for v in per_locale.values()):
            problems.append(Problem(rel(path), None, f"elements.{name}", "expected locale: [phrases, ...] entries"))
            continue
        phrases[name] = {loc: tuple(str(x) for x in v) for loc, v in per_locale.items()}
    for r in req.requirements:
        if r.element != "signature" and r.element not in phrases:
            problems.append(Problem(rel(path), None, "requirements", f"unknown element {r.element!r}: define it under elements:"))
    return sig, phrases


def load_lists(directory: Path) -> tuple[Lists | None, list[Problem]]:
    """Parse the three lists of a folder; returns (lists or None, every problem)."""
    if not directory.is_dir():
        return None, [Problem(rel(directory), None, "compliance.lists_dir",
                              "compliance lists folder not found: it holds prohibited.yaml, required.yaml and variables.yaml")]
    problems: list[Problem] = []
    missing = [n for n in LISTS if not (directory / n).is_file()]
    problems += [Problem(rel(directory / n), None, "", "lint list file is missing") for n in missing]
    if missing:
        return None, problems
    prohibited = _validate(Prohibited, directory / "prohibited.yaml", problems)
    required = _validate(Required, directory / "required.yaml", problems)
    variables = _validate(Variables, directory / "variables.yaml", problems)
    if required is None:
        return None, problems
    sig, phrases = _elements(required, directory / "required.yaml", problems)
    if problems or prohibited is None or variables is None or sig is None:
        return None, problems
    return Lists(prohibited, required, variables, sig, phrases), []


# ------------------------------------------------------------------ text scanning


def plain_text(source: str) -> str:
    """Template text with Jinja tags replaced by a neutral mark (line breaks kept)."""
    return _JINJA.sub(lambda m: _PLACEHOLDER + "\n" * m.group(0).count("\n"), source)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def prohibited_claims(text: str, lists: Lists) -> list[tuple[int, str, str, str]]:
    """(offset, phrase, reason, severity) of every prohibited claim not negated or excepted."""
    return prohibited_claims_in(text, {code: getattr(lists.prohibited, code) for code in LANGS})


def _phrases_in(text: str, phrases: Iterable[str], lang: str) -> list[tuple[int, str]]:
    return sorted((o, p) for p in phrases for o in find(text, p, lang))


def _lang_of(locale: str) -> str:
    return "zh" if locale.startswith("zh") else locale.split("-")[0]


# ------------------------------------------------------------------ templates


@dataclass(frozen=True)
class Use:
    """How a rule uses a template: what the message is, so the right requirements apply."""

    rule_class: str
    channel: str
    action_type: str
    product: bool


def _applies(w: When, use: Use, locale: str) -> bool:
    return ((w.rule_class is None or w.rule_class == use.rule_class)
            and (w.channel is None or use.channel in w.channel)
            and (w.locales is None or locale in w.locales)
            and (w.product is None or w.product == use.product))


def _has_element(element: str, source: str, text: str, locale: str, lists: Lists) -> bool:
    if element == "signature":
        sig = lists.signature
        return bool(re.search(sig.pattern, text)) or any(re.search(r"\{\{-?\s*" + re.escape(v) + r"\b", source) for v in sig.variables)
    per_locale = lists.phrase_elements.get(element, {})
    return bool(_phrases_in(text, per_locale.get(locale, ()), _lang_of(locale)))


def _requirements(path: str, source: str, text: str, locale: str, uses: Iterable[Use], lists: Lists) -> list[Finding]:
    out = []
    for use in uses:
        for r in lists.required.requirements:
            if _applies(r.when, use, locale) and not _has_element(r.element, source, text, locale, lists):
                out.append(Finding(path, 1, "required", r.element,
                                   f"missing in a {use.rule_class} {use.channel} {use.action_type}: {r.reason}", r.severity))
    return out


def _service_wording(path: str, text: str, uses: Iterable[Use], lists: Lists) -> list[Finding]:
    if not any(u.rule_class == "service" for u in uses):
        return []
    out = []
    req = lists.required
    for lang in LANGS:
        for o, p in _phrases_in(text, req.service_forbidden.get(lang, ()), lang):
            out.append(Finding(path, _line(text, o), "service_wording", p,
                               "a service message carries no promotion, product offer or push to trade", "error"))
        for o, p in _phrases_in(text, req.marketing_topics.get(lang, ()), lang):
            out.append(Finding(path, _line(text, o), "marketing_topic", p,
                               "a greeting (birthday, holiday) is marketing: use class: marketing", "error"))
    return out


def _masking(path: str, ast: nodes.Template, lists: Lists) -> list[Finding]:
    masked = set(lists.variables.masked)
    ok = {id(f.node) for f in ast.find_all(nodes.Filter) if f.name == "mask"}
    lookups: list[Any] = list(ast.find_all((nodes.Getattr, nodes.Getitem)))
    inner = {id(g.node) for g in lookups}
    out = []
    for g in lookups:
        if not isinstance(g.node, nodes.Name):
            continue
        attr = g.attr if isinstance(g, nodes.Getattr) else getattr(g.arg, "value", None)
        name = f"{g.node.name}.{attr}"
        if name in masked and id(g) not in ok:
            out.append(Finding(path, g.lineno, "masking", name,
                               f"account, ID and contact numbers appear only masked: {{{{ {name} | mask }}}}", "error"))
    for n in ast.find_all(nodes.Name):
        if n.ctx == "load" and n.name == "client" and id(n) not in inner:
            out.append(Finding(path, n.lineno, "masking", "client",
                               "prints every fact, account numbers included: name the fields you need", "error"))
    return out


def lint_template(path: Path, locale: str, uses: Iterable[Use], lists: Lists, env: Environment) -> list[Finding]:
    """Every finding for one template file, as used by the given rules."""
    shown = rel(path)
    try:
        source = read_text(path, MAX_TEMPLATE_BYTES)
    except SourceErrors:
        return []  # reported by the renderer
    text = plain_text(source)
    uses = list(uses)
    out = [Finding(shown, _line(text, o), "prohibited", p, reason, sev) for o, p, reason, sev in prohibited_claims(text, lists)]
    out += _requirements(shown, source, text, locale, uses, lists)
    out += _service_wording(shown, text, uses, lists)
    try:
        out += _masking(shown, env.parse(source), lists)
    except (TemplateSyntaxError, RecursionError):
        pass  # reported by the renderer with its line
    return out


# ------------------------------------------------------------------ rules


def _key_line(path: str, key: str) -> int | None:
    p = Path(path)
    if p.suffix not in (".yaml", ".yml") or not p.is_file():
        return None
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(f"{key}:"):
            return n
    return None


def lint_rule(rule: Any, lists: Lists) -> list[Finding]:
    """Rule-level checks: a product offer declares its risk level and is never a service message."""
    spec, out = rule.spec, []
    product, risk = getattr(spec, "product", None), getattr(spec, "product_risk", None)
    if product and not risk:
        out.append(Finding(rule.path, _key_line(rule.path, "product"), "product", product,
                           "a rule that offers a product declares its risk level: add product_risk: R1..R5", "error"))
    if risk and spec.rule_class == "service":
        out.append(Finding(rule.path, _key_line(rule.path, "product_risk"), "product", risk,
                           "a service message carries no product offer: use class: marketing", "error"))
    if spec.rule_class == "service":
        words = " ".join([spec.id.replace("_", " "), spec.title, *spec.tags])
        for lang in LANGS:
            for _, p in _phrases_in(words, lists.required.marketing_topics.get(lang, ()), lang):
                out.append(Finding(rule.path, _key_line(rule.path, "class"), "marketing_topic", p,
                                   "a greeting (birthday, holiday) is marketing: use class: marketing", "error"))
    return out


def lint_rules(rules: Iterable[Any], templates: Mapping[str, Mapping[str, Path]], lists: Lists,
               env: Environment) -> list[Finding]:
    """Lint every rule and every template file the rules send (templates: name -> locale -> path)."""
    rules = list(rules)
    uses: dict[str, set[Use]] = {}
    findings: list[Finding] = []
    for r in rules:
        a = r.spec.action
        uses.setdefault(a.template, set()).add(
            Use(r.spec.rule_class, a.channel, a.type, bool(getattr(r.spec, "product_risk", None) or getattr(r.spec, "product", None))))
        findings += lint_rule(r, lists)
    for name in sorted(uses):
        for locale, path in sorted(templates.get(name, {}).items()):
            findings += lint_template(path, locale, uses[name], lists, env)
    return sorted(set(findings), key=lambda f: (f.path, f.line or 0, f.check, f.phrase))


def check(lists_dir: Path, rules: Iterable[Any], templates: Mapping[str, Mapping[str, Path]],
          env: Environment) -> list[Problem]:
    """Load the lists and lint; every finding (and any problem with the lists) as a Problem."""
    lists, problems = load_lists(lists_dir)
    if lists is None:
        return problems
    return [f.problem() for f in lint_rules(rules, templates, lists, env)]

"""Prohibited claims in message text (COMPLIANCE.md section 2): phrases and promise patterns.

A claim is a listed phrase (保本, "guaranteed return") or a promise pattern (a guarantee
verb and a return or principal, in either order, numbers allowed between). A negation
makes it a disclosure only when it belongs to the claim's own verb phrase: the negation
comes right before the claim, or before the verb-phrase words that govern it (不承诺保本,
"we do not offer guaranteed returns", "no le garantizamos un rendimiento"). A negation
elsewhere in the sentence (the 不 of 不错, "No doubt") negates nothing. A claim coordinated
with a negated one (不承诺保本、保收益) is negated with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Severity = Literal["error", "warning"]
LANGS = ("zh", "en", "es")
_PUNCT = "，。；：！？,.;:!?\n"


class Language(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    negation_window: int = Field(3, ge=0, le=20)
    """Most verb-phrase words between a negation and the claim it negates."""
    negations: tuple[str, ...] = ()
    not_negations: tuple[str, ...] = ()
    verb_words: tuple[str, ...] = ()
    """Words that may stand between a negation and its claim: auxiliaries, governing verbs, articles."""
    disclosures: tuple[str, ...] = ()
    phrases: dict[Severity, dict[str, tuple[str, ...]]]
    patterns: dict[Severity, dict[str, tuple[str, ...]]] = Field(default_factory=dict)
    """Promise patterns (regular expressions); a named group `verb` marks where a negation must attach."""
    except_: dict[str, tuple[str, ...]] = Field(default_factory=dict, alias="except")

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
        for groups in v.values():
            for ps in groups.values():
                for p in ps:
                    try:
                        re.compile(p)
                    except re.error as e:
                        raise ValueError(f"pattern {p!r} is not a valid regular expression: {e}") from e
        return v


def is_cjk(lang: str) -> bool:
    return lang == "zh"


def find(text: str, phrase: str, lang: str) -> Iterable[int]:
    """Offsets of a phrase: raw substrings for Chinese, whole words (any case) otherwise."""
    if is_cjk(lang):
        start = text.find(phrase)
        while start >= 0:
            yield start
            start = text.find(phrase, start + 1)
        return
    for m in re.finditer(r"(?<![\w-])" + re.escape(phrase) + r"(?:s|es)?(?![\w-])", text, re.I):
        yield m.start()


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        for i in range(a, b):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


class _Tail:
    """The clause before an offset, peeled from the right one verb-phrase word at a time."""

    def __init__(self, text: str, start: int, lang: Language, code: str):
        cut = max(text.rfind(p, 0, start) for p in _PUNCT)
        self.cjk = is_cjk(code)
        self.end = start
        self.begin = cut + 1
        self.text = text
        self.lang = lang

    def rest(self) -> str:
        return self.text[self.begin:self.end].rstrip() if not self.cjk else self.text[self.begin:self.end]

    def ends_with(self, words: Iterable[str]) -> str | None:
        rest = self.rest()
        for w in sorted(words, key=len, reverse=True):
            if self.cjk and rest.endswith(w):
                return w
            if not self.cjk and re.search(r"(?:^|[\s\"'(])" + re.escape(w) + r"$", rest, re.I):
                return w
        return None

    def peel(self) -> bool:
        w = self.ends_with(self.lang.verb_words)
        if w is None:
            return False
        rest = self.rest()
        self.end = self.begin + len(rest) - len(w)
        return True


def _negated(text: str, start: int, lang: Language, code: str, negated_ends: set[int]) -> bool:
    tail = _Tail(text, start, lang, code)
    for _ in range(lang.negation_window + 1):
        if tail.ends_with(lang.not_negations):
            return False
        if tail.ends_with(lang.negations) or len(tail.rest()) + tail.begin in negated_ends:
            return True
        if not tail.peel():
            return False
    return False


def _candidates(scan: str, lang: Language, code: str) -> list[tuple[int, int, int, str, str, str]]:
    """(start, end, verb offset, text, reason, severity) of every phrase and pattern hit, overlaps removed."""
    hits: list[tuple[int, int, int, str, str, str]] = []
    taken: list[tuple[int, int]] = []
    entries = [(p, reason, sev) for sev, groups in lang.phrases.items() for reason, ps in groups.items() for p in ps]
    for phrase, reason, sev in sorted(entries, key=lambda e: -len(e[0])):
        for o in find(scan, phrase, code):
            if not any(a <= o < b for a, b in taken):
                taken.append((o, o + len(phrase)))
                hits.append((o, o + len(phrase), o, phrase, reason, sev))
    flags = 0 if is_cjk(code) else re.I
    for sev, groups in lang.patterns.items():
        for reason, patterns in groups.items():
            for p in patterns:
                for m in re.finditer(p, scan, flags):
                    if any(a < m.end() and m.start() < b for a, b in taken):
                        continue
                    verb = m.start("verb") if "verb" in m.re.groupindex and m.group("verb") else m.start()
                    taken.append((m.start(), m.end()))
                    hits.append((m.start(), m.end(), verb, " ".join(m.group().split())[:60], reason, sev))
    return sorted(hits)


def prohibited_claims_in(text: str, langs: dict[str, Language]) -> list[tuple[int, str, str, str]]:
    """(offset, phrase, reason, severity) of every prohibited claim not negated or excepted."""
    found: list[tuple[int, str, str, str]] = []
    for code, lang in langs.items():
        spans = [(o, o + len(d)) for d in lang.disclosures for o in find(text, d, code)]
        spans += [(o, o + len(e)) for ex in lang.except_.values() for e in ex for o in find(text, e, code)]
        scan = _blank(text, spans)
        negated_ends: set[int] = set()
        for start, end, verb, shown, reason, sev in _candidates(scan, lang, code):
            if _negated(scan, verb, lang, code, negated_ends):
                negated_ends.add(end)
                continue
            found.append((start, shown, reason, sev))
    return sorted(found)

"""Personal data masked by role on every console page (the matrix is access.PERSONAL_DATA).

A `Masker` is made once per request from the signed-in user's roles; pages and exports pass
client names, ids, birth dates, phones, e-mail addresses, recorded facts and message words
through it. A role that sees a kind of data in full gets it unchanged; any other role gets a
partial mask that is enough to tell two clients apart and not enough to identify one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.compliance import access

_FACT_KIND = {"name": "client_name", "client_id": "client_id", "birth_date": "birth_date",
              "phone": "contact", "email": "contact", "mobile": "contact"}


def mask_phone(phone: str | None) -> str:
    """138****0003: enough to recognise the number, not enough to copy it."""
    if not phone:
        return ""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


def mask_name(name: str | None) -> str:
    """张**, L* N*: the first character of each word, the rest starred (spaces kept)."""
    if not name:
        return ""
    return " ".join(w[:1] + "*" * (len(w) - 1) for w in name.split(" "))


def mask_id(value: str | None) -> str:
    """C0****17: the first two and last two characters of an id longer than five."""
    if not value:
        return ""
    s = str(value)
    return s[:2] + "*" * (len(s) - 4) + s[-2:] if len(s) > 5 else s[:1] + "*" * (len(s) - 1)


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return mask_id(value)
    user, _, domain = value.partition("@")
    return f"{user[:1]}***@{domain}"


@dataclass(frozen=True)
class Masker:
    roles: frozenset[str]

    def full(self, kind: str) -> bool:
        return bool(access.PERSONAL_DATA[kind] & self.roles)

    def name(self, v: str | None) -> str:
        return (v or "") if self.full("client_name") else mask_name(v)

    def cid(self, v: str | None) -> str:
        return (v or "") if self.full("client_id") else mask_id(v)

    def phone(self, v: str | None) -> str:
        return (v or "") if self.full("contact") else mask_phone(v)

    def email(self, v: str | None) -> str:
        return (v or "") if self.full("contact") else mask_email(v)

    def birth(self, v: Any) -> str:
        s = "" if v is None else str(v)
        return s if self.full("birth_date") or not s else s[:4] + "-**-**"

    def fact(self, key: str, value: Any) -> Any:
        kind = _FACT_KIND.get(key)
        if kind is None or value is None or self.full(kind):
            return value
        return {"client_name": self.name, "client_id": self.cid, "birth_date": self.birth}.get(
            kind, lambda v: mask_phone(str(v)) if key != "email" else mask_email(str(v)))(value)

    def facts(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.fact(k, v) for k, v in facts.items()}

    def text(self, text: str | None, names: Iterable[str | None]) -> str:
        """Message words with the client's name (and its surname-only forms) masked where the role needs it."""
        s = text or ""
        if self.full("client_name"):
            return s
        for n in sorted({n for n in names if n and len(n) > 1}, key=len, reverse=True):
            s = s.replace(n, mask_name(n))
        return re.sub(r"1\d{10}", lambda m: mask_phone(m.group(0)), s)


def masker(roles: frozenset[str]) -> Masker:
    return Masker(frozenset(roles))

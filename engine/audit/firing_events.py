"""The audit events of firings: one `rule.fired` event per firing row, in the firing's transaction.

The record hook engine.composition installs (`record_firings`, in two steps with `prepare_record`):
each event names the client's facts snapshot by its hash (`data.facts_sha256`; the recording
stage stores the text once per client in the facts store, engine.audit.facts_store, in the same
transaction) and carries the policy trail and what was suppressed or rendered for the firing;
the rule and template sources go to the content-addressed blobs.
`message_of` reads the words back from an event body (also from logs written before one event
per firing). Chaining, storage and verification are engine.audit.log's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from engine.audit.log import LATE_ID, Event, prepare, put_blobs, sha256_text, write

ENGINE_ACTOR = "engine"
BLOCKED = ("suppressed", "held", "deferred", "dropped")
_RULE_SOURCES: dict[str, str | None] = {}
"""rule content hash -> rule file text (None when the file changed since it was loaded)."""
_TEMPLATE_SOURCES: dict[tuple[str, str], tuple[str, str, str] | None] = {}
"""(template set hash, locale) -> (locale used, sha256, source); content-addressed, so safe to share."""


def _rule_source(rule: Any) -> str | None:
    if rule.content_hash not in _RULE_SOURCES:
        try:
            raw = Path(rule.path).read_bytes()
        except OSError:
            raw = b""
        ok = hashlib.sha256(raw).hexdigest() == rule.content_hash
        _RULE_SOURCES[rule.content_hash] = raw.decode("utf-8") if ok else None
    return _RULE_SOURCES[rule.content_hash]


def _template_source(renderer: Any, name: str, locale: str) -> tuple[str, str, str] | None:
    """The exact source that rendered (name, locale), honouring the default-locale fallback."""
    ts = renderer.sets.get(name)
    if ts is None:
        return None
    key = (ts.content_hash, locale)
    if key not in _TEMPLATE_SOURCES:
        texts = {loc: p.read_bytes() for loc, p in sorted(ts.files.items())}
        digest = hashlib.sha256()
        for loc, raw in texts.items():
            digest.update(f"{loc}\0".encode() + raw + b"\0")
        used = locale if locale in texts else renderer.default_locale
        ok = digest.hexdigest() == ts.content_hash and used in texts
        src = texts[used].decode("utf-8") if ok else ""
        _TEMPLATE_SOURCES[key] = (used, sha256_text(src), src) if ok else None
    return _TEMPLATE_SOURCES[key]


def _common(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "actor": ENGINE_ACTOR, "client_id": r["client_id"], "advisor_id": r.get("advisor_id"),
        "rule_id": r["rule_id"], "rule_hash": r["rule_hash"], "template_hash": r.get("template_hash"),
        "firing_id": r.get("id", LATE_ID), "as_of": r["as_of"], "segment": (r.get("facts") or {}).get("segment"),
        "rule_class": r.get("rule_class"), "channel": r.get("channel"), "status": r.get("status"),
        "reason": r.get("reason"), "at": r.get("created_at"),
    }


def _suppressed(r: dict[str, Any]) -> dict[str, Any]:
    trail = r.get("policy") or []
    last: dict[str, Any] = next((t for t in reversed(trail) if t.get("outcome") != "pass"), {})
    return {"outcome": r["status"], "stage": last.get("stage"), "detail": last.get("detail")}


_Static = tuple[str | None, tuple[str, str, str] | None, str | None, Any]
"""What a rendered message's record takes from its rule and locale alone: template name,
template source (locale used, sha256, text), rule title, firm."""


def _static(ruleset: Any, rule: Any, locale: str, cache: dict[tuple[str, str], _Static]) -> _Static:
    key = (rule.id if rule else "", locale)
    got = cache.get(key)
    if got is None:
        name = rule.spec.action.template if rule else None
        src = _template_source(ruleset.renderer, name, locale) if rule and name else None
        firm = ruleset.renderer.firm_for(src[0] if src else locale) if ruleset is not None else None
        got = cache[key] = (name, src, rule.spec.title if rule else None, firm)
    return got


def _rendered(r: dict[str, Any], ruleset: Any, rule: Any, advisors: dict[str, dict[str, str]],
              cache: dict[tuple[str, str], _Static] | None = None) -> tuple[dict[str, Any], str | None]:
    name, src, title, firm = _static(ruleset, rule, r.get("locale") or "", {} if cache is None else cache)
    aid = (r.get("facts") or {}).get("advisor_id")
    context = {
        "advisor": advisors.get(aid or "", {"id": aid or "", "name": ""}),
        "rule": {"id": r["rule_id"], "title": title}, "as_of": r["as_of"], "firm": firm,
    }
    data = {"template": name, "template_locale": src[0] if src else None, "template_source": src[1] if src else None,
            "locale": r.get("locale"), "context": context, "subject": r.get("subject"), "text": r.get("message")}
    return data, (src[2] if src else None)


def _fired(r: dict[str, Any], rule_src: str | None, message: dict[str, Any] | None,
           suppressed: dict[str, Any] | None) -> Event:
    if "facts_sha256" in r:  # the snapshot by reference: stored once per client in the facts store
        snapshot = {"facts_sha256": r["facts_sha256"]}
    else:  # inline (a row that carries its snapshot, as every row did before issue 16)
        snapshot = {"facts": orjson.Fragment(r["facts_json"]) if "facts_json" in r else r.get("facts")}
    data = {"run_id": r.get("run_id"), "action_type": r.get("action_type"), "priority": r.get("priority"),
            "locale": r.get("locale"), "due_on": r.get("due_on"), "error": r.get("error"),
            **snapshot, "policy": r.get("policy"),
            "rule_source": r["rule_hash"] if rule_src is not None else None,
            "message": message, "suppressed": suppressed}
    return Event("rule.fired", data=data, **_common(r))


def message_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The rendered message an event body records: `data.message` of a `rule.fired` event,
    or the data of a `message.rendered` event (logs written before one event per firing)."""
    if body.get("name") == "message.rendered":
        return body.get("data")
    if body.get("name") == "rule.fired":
        return (body.get("data") or {}).get("message")
    return None


def firing_events(rows: Sequence[dict[str, Any]], ruleset: Any, advisors: dict[str, dict[str, str]],
                  blobs: dict[str, set[str]]) -> list[Event]:
    """One rule.fired event per firing row, carrying what was suppressed or rendered for it."""
    by_id = {r.id: r for r in ruleset.rules} if ruleset is not None else {}
    static: dict[tuple[str, str], _Static] = {}  # per rule and locale, not per firing
    events: list[Event] = []
    for r in rows:
        rule = by_id.get(r["rule_id"])
        rule_src = _rule_source(rule) if rule is not None else None
        if rule_src is not None:
            blobs["rule"].add(rule_src)
        message = suppressed = None
        if r.get("status") in BLOCKED:
            suppressed = _suppressed(r)
        elif r.get("message") is not None:
            message, tsrc = _rendered(r, ruleset, rule, advisors, static)
            if tsrc is not None:
                blobs["template"].add(tsrc)
        events.append(_fired(r, rule_src, message, suppressed))
    return events


def record_firings(conn: Connection, ctx: Any, rows: list[dict[str, Any]]) -> None:
    """Record hook: audit events for every firing row of the batch, in its transaction."""
    prepare_record(conn, ctx, rows)(conn)


def prepare_record(conn: Connection, ctx: Any, rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    """`record_firings` in two steps: the events are built and encoded now, before the firings
    have ids (and before the chain lock); the returned step stores the sources, takes the chain
    lock, fills in the firing ids, hashes and inserts."""
    if not rows:
        return lambda c: None
    blobs: dict[str, set[str]] = {"rule": set(), "template": set()}
    events = firing_events(rows, ctx.cache.get("ruleset"), ctx.cache.get("advisors") or {}, blobs)
    prepared = prepare(conn, events)

    def write_events(c: Connection) -> None:
        for kind, texts in blobs.items():
            put_blobs(c, kind, texts)
        write(c, prepared, [r["id"] for r in rows])
    return write_events

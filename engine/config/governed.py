"""Which config.yaml keys are governed: approved like rules, refused at run time when changed unapproved.

A key that changes who is contacted or what is said (suitability limits, the senior age, contact
windows, caps, playbooks, the allocation table, the important cells, the firm's words, the
e-mail sender) is *governed*: its value in force is part of the approved snapshot (one file,
`config.governed.txt`, one `key: value` line per leaf key, hashed in the manifest like a rule),
diffed key by key in `steward review show`, and a run refuses when the value in force differs
from the approved one. Every other key (database, paths, workers, ports, retries) is
*operational* and free to change.

The split is data: `GOVERNED` and `OPERATIONAL` name key prefixes; the longest prefix that
matches a key decides. Every key of the model falls under one of them (a test fails otherwise),
and every governed prefix is listed in docs/config.md ("Governed keys").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import SourceErrors
from engine.yamlio import LineDict, load_file

SNAPSHOT_PATH = "config.governed.txt"
"""Where the governed values sit in an approved snapshot (manifest key)."""

GOVERNED: dict[str, str] = {
    "timezone": "the local time of contact windows and of the evaluation day",
    "default_locale": "the language a client is written to",
    "regulator_profile": "which contact window applies",
    "calendar.exchange": "which days are trading days, so when rules fire",
    "segments": "who falls in which segment, so which playbook reaches them",
    "firm": "the firm's name, SMS signature and opt-out line in every message",
    "evaluation.activity_days": "the activity facts that decide who a rule reaches",
    "compliance.assessment_validity_months": "suitability: when an assessment expires and offers stop",
    "compliance.senior_age": "suitability: who counts as a senior client",
    "compliance.senior_max_product_risk": "suitability: the highest product risk offered to seniors",
    "dispatch.contact_windows": "when clients may be contacted",
    "dispatch.frequency_caps": "how often a client may be contacted",
    "dispatch.max_marketing_per_day": "how many marketing messages a client gets a day",
    "dispatch.require_marketing_consent": "whether marketing needs an opt-in",
    "dispatch.do_not_call_blocks_service": "whom the do-not-call list protects",
    "dispatch.email.sender": "the sender clients see on every e-mail",
    "dispatch.webhook.keywords": "which replies count as an opt-out",
    "servicing.capital_turnover": "the capital x turnover grid (the nine cells)",
    "servicing.value_quadrant": "the value quadrants that decide channels and call priority",
    "servicing.life_stage_ages": "the life stages rules select on",
    "servicing.risk": "risk bands, the allocation table and the suitability levels a questionnaire sets",
    "servicing.call_list": "which clients get an advisor's call first",
    "servicing.playbooks": "which marketing reaches each segment, on which channels, how often",
    "servicing.important_cells": "which 9-grid cells get the advisor's time",
    "servicing.quadrant_channels": "which channels reach each value quadrant",
    "servicing.quadrant_exempt_tags": "which rules ignore the quadrant channels",
    "servicing.activation_sequence": "the order of the dormant activation steps",
    "servicing.winback_rules": "which firings count as win-back attempts",
    "events.session_close": "when trading-day windows of event rules end",
}
"""Governed key prefix -> what it decides about clients."""

OPERATIONAL: tuple[str, ...] = (
    "database", "rules_dirs", "templates_dir",
    "evaluation.batch_size", "evaluation.workers", "evaluation.shard_jobs", "evaluation.shard_jobs_min_clients",
    "evaluation.shard_jobs_wait_minutes",
    "compliance.lists_dir", "compliance.approved_dir", "compliance.acting_user",
    "dispatch.email", "dispatch.gateway", "dispatch.retry", "dispatch.scheduler", "dispatch.webhook",
    "servicing.review", "audit", "events",
)
"""Operational key prefixes: free to change (the content they point at, rules and lint lists, is approved as files)."""


def _prefix(key: str, prefixes: Iterable[str]) -> str | None:
    hits = [p for p in prefixes if key == p or key.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def is_governed(key: str) -> bool:
    g, o = _prefix(key, GOVERNED), _prefix(key, OPERATIONAL)
    return g is not None and (o is None or len(g) > len(o))


def classified(key: str) -> bool:
    return _prefix(key, GOVERNED) is not None or _prefix(key, OPERATIONAL) is not None


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def values(cfg: Any) -> dict[str, Any]:
    """The governed values of a Config (defaults included), flat: dotted key -> JSON value."""
    flat = _flatten(cfg.model_dump(mode="json"))
    return {k: v for k, v in sorted(flat.items()) if is_governed(k)}


def as_text(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


HEADER = "# config.yaml keys under approval (docs/config.md, \"Governed keys\"); one key per line\n"


def render(vals: Mapping[str, Any]) -> bytes:
    """The snapshot file: deterministic, one `key: json` line per key (what the manifest hashes)."""
    return (HEADER + "".join(f"{k}: {as_text(v)}\n" for k, v in sorted(vals.items()))).encode("utf-8")


def parse(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in data.decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition(": ")
            out[k] = json.loads(v)
    return out


def snapshot_lines(data: bytes) -> dict[str, int]:
    """Line of each key in the snapshot file."""
    return {line.partition(": ")[0]: i for i, line in enumerate(data.decode("utf-8").splitlines(), 1)
            if line and not line.startswith("#")}


def source_lines(source: Path | None, keys: Iterable[str]) -> dict[str, int]:
    """Line of each key in the config file it was read from (deepest mapping that names it)."""
    if source is None or not source.is_file():
        return {}
    try:
        data = load_file(source)
    except SourceErrors:
        return {}
    out = {}
    for key in keys:
        node, line = data, None
        for part in key.split("."):
            if not isinstance(node, LineDict) or part not in node:
                break
            line, node = node.key_lines.get(part, line), node[part]
        if line is not None:
            out[key] = line
    return out


@dataclass(frozen=True)
class KeyChange:
    key: str
    old: Any
    new: Any
    added: bool = False
    removed: bool = False

    def describe(self) -> str:
        old = "(not set)" if self.added else as_text(self.old)
        new = "(not set)" if self.removed else as_text(self.new)
        return f"{self.key}: {old} -> {new}"


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[KeyChange]:
    return [KeyChange(k, old.get(k), new.get(k), k not in old, k not in new)
            for k in sorted(set(old) | set(new)) if old.get(k, ...) != new.get(k, ...)]


def apply(cfg: Any, vals: Mapping[str, Any]) -> Any:
    """`cfg` with its governed keys set to `vals` (a proposal's), operational keys untouched."""
    data = cfg.model_dump(mode="json")
    for key in set(values(cfg)) - set(vals):
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
        for i in range(len(parents), 0, -1):  # a mapping emptied by the removal goes too (a key set to {} comes back below)
            holder = data
            for p in parents[: i - 1]:
                holder = holder.get(p, {})
            if holder.get(parents[i - 1]) == {}:
                holder.pop(parents[i - 1])
    for key, v in vals.items():
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    return type(cfg).model_validate({**data, "base_dir": cfg.base_dir}).model_copy(update={"source": cfg.source})

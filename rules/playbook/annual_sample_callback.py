"""Annual sample callback: about 10% of existing clients each year, chosen by a stable hash.

A Python rule because the sample is a hash of client id and year (deterministic, no
randomness): the same client is in or out of a year's sample on every run, and each
sampled client gets a month of the year so the calls spread over the year.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from engine.language.rules import python_rule

SAMPLE_PERCENT = 10
MIN_DAYS_OPEN = 180


def sample_slot(client_id: str, year: int) -> tuple[bool, int]:
    """(in this year's sample, month from which the call is due)."""
    h = int.from_bytes(hashlib.sha256(f"{client_id}:{year}".encode()).digest()[:8], "big")
    return h % 100 < SAMPLE_PERCENT, (h // 100) % 12 + 1


@python_rule(
    id="annual_sample_callback",
    title="Annual sample callback of existing clients (about 10%)",
    description=(
        "Each year about 10% of clients open for six months or more are sampled by a hash of "
        "client id and year, each with a month from which the advisor calls to check service "
        "satisfaction and whether contact details or the risk questionnaire need updating."
    ),
    owner="compliance",
    class_="service",
    action={"type": "task", "channel": "phone", "template": "annual_sample_callback", "priority": 20, "due": "20d"},
    cooldown="330d",
    tags=["callback", "sample", "regulatory"],
)
def annual_sample_callback(f: Mapping[str, Any]) -> bool:
    year, month = f.get("eval_year"), f.get("eval_month")
    if year is None or month is None or (f.get("days_since_open") or 0) < MIN_DAYS_OPEN:
        return False
    chosen, due_month = sample_slot(str(f["client_id"]), int(year))
    return chosen and month >= due_month

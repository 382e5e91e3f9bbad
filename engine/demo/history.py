"""Rows of the demo book that stand for the firm's records before Steward: weekly snapshots,
win-back, positive outcomes and follow-ups. Drawn from the maker's second rng, so adding them
leaves the rest of a seed's book as it was."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

Rows = dict[str, list[dict[str, Any]]]


def _int(rng: Any, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def weekly(maker: Any, cid: str, opened: date, qty: dict[str, float], cash: float, out: Rows) -> None:
    """Snapshots at earlier week ends: the same positions at drifting prices, cash that moves a little."""
    r2, m = maker.rng2, maker.m
    for k, day in enumerate(reversed(maker.week_ends), start=1):
        if day < opened:
            break
        for sym, q in qty.items():
            price = round(m.close[sym] * math.exp(r2.gauss(0, 0.03 * math.sqrt(k))), 2)
            out["holding"].append({"as_of": day, "client_id": cid, "symbol": sym, "quantity": q,
                                   "cost": m.close[sym], "close_price": price})
        out["cash_balance"].append({"as_of": day, "client_id": cid, "amount": round(cash * r2.uniform(0.8, 1.2), 2)})


def records(maker: Any, i: int, cid: str, adv: str, out: Rows) -> None:
    """Win-back, positive outcomes and follow-ups from the firm's records (the book's second rng)."""
    r2, as_of = maker.rng2, maker.m.as_of
    if i in maker.left:  # moved most assets to another firm: the win-back population
        out["cash_movement"].append({"id": f"{cid}-W01", "client_id": cid, "kind": "transfer_out",
                                     "moved_on": as_of - timedelta(days=_int(r2, 10, 90)),
                                     "amount": round(r2.uniform(100_000, 800_000), 2)})
    if i in maker.pleased:  # a satisfied core client: a referral request may follow
        out["contact"].append({"id": f"{cid}-P01", "client_id": cid, "by_user": adv, "kind": "callback",
                               "contacted_on": as_of - timedelta(days=_int(r2, 2, 20)), "outcome": "positive"})
    rank = maker.follow_up.get(i)
    if rank is not None:  # a follow-up planned in an earlier call, due today or a few days ago
        said = as_of - timedelta(days=_int(r2, 10, 30))
        out["client_record"].append({"id": 2 * i + 1, "client_id": cid, "recorded_on": said, "kind": "need",
                                     "text": "retirement plan", "firing_id": None, "due_on": None,
                                     "done_on": None, "by_user": adv})
        out["client_record"].append({"id": 2 * i + 2, "client_id": cid, "recorded_on": said, "kind": "follow_up",
                                     "text": "retirement plan", "firing_id": None,
                                     "due_on": as_of - timedelta(days=rank % 3), "done_on": None, "by_user": adv})


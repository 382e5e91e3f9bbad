"""Policy stages between a match and a record: gates that can suppress, hold, defer or drop.

Each stage sees one client's matches of the day (highest priority first) as
`Decision`s and may change the outcome of those still `fire`, with a reason
code. Every stage's verdict is kept in the decision's trail, so a supervisor
can see which stage held, dropped or passed each firing and why.

Stages register in order through `register_stage` (the built-in compliance and
contact-policy stages use the same door as a firm's own). `prepare` runs once
per batch of clients so a stage can load what it needs in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from engine.config.base import Config
from engine.pipeline.matching import Match

FIRE = "fire"
OUTCOMES = (FIRE, "suppressed", "held", "deferred", "dropped")


@dataclass
class Decision:
    match: Match
    outcome: str = FIRE
    reason: str | None = None
    trail: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.outcome == FIRE

    def block(self, stage: str, outcome: str, reason: str, detail: str = "") -> None:
        """Stop this firing at `stage` with a reason code (e.g. SUIT_RISK_LEVEL)."""
        if outcome not in OUTCOMES or outcome == FIRE:
            raise ValueError(f"unknown outcome {outcome!r}")
        self.outcome, self.reason = outcome, reason
        self.trail.append({"stage": stage, "outcome": outcome, "reason": reason, "detail": detail})

    def passed(self, stage: str, detail: str = "") -> None:
        self.trail.append({"stage": stage, "outcome": "pass", "reason": None, "detail": detail})


@dataclass
class StageContext:
    conn: Connection | None
    """None in dry runs without a database: stages that need data must pass."""
    cfg: Config
    as_of: date
    lo: str
    hi: str
    cache: dict[str, Any] = field(default_factory=dict)
    ids: tuple[str, ...] | None = None
    """When set, the batch is these client ids (the event engine's scattered firing clients), not [lo, hi]."""

    def in_batch(self, column: Any) -> Any:
        """The batch's clients as a condition on a client-id column, for stages that load in bulk."""
        if self.ids is not None:
            return column.in_(self.ids)
        return column.between(self.lo, self.hi)


class unindexed(FunctionElement[Any]):
    """A column term SQLite must not look up by index: rendered `+column` on SQLite (its documented
    way to disqualify a term from an index), the column itself elsewhere.

    Stages count a batch's firings with `client_id BETWEEN lo AND hi` plus a status or a date.
    Without table statistics SQLite prefers the status (or date) index, which holds every counted
    firing of the whole book, over the client range, which holds the batch's: each batch then
    scanned all of the day's and the period's firings, a cost per client growing with the book.
    """

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


class Stage(Protocol):
    name: str

    def prepare(self, ctx: StageContext) -> None: ...

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None: ...


_STAGES: list[tuple[int, Stage]] = []


def register_stage(stage: Stage, order: int) -> Stage:
    """Add a stage; lower order runs first (suitability 100, consent 200, ... arbitration 600)."""
    if any(s.name == stage.name for _, s in _STAGES):
        raise ValueError(f"policy stage {stage.name!r} is already registered")
    _STAGES.append((order, stage))
    _STAGES.sort(key=lambda p: p[0])
    return stage


def stages() -> list[Stage]:
    return [s for _, s in _STAGES]


def offline(stage: Stage) -> bool:
    """A stage that needs only the client's facts (no database): dry runs apply it. Declared by `needs_db = False`."""
    return getattr(stage, "needs_db", True) is False


def apply_offline(ctx: StageContext, per_client: list[list[Decision]]) -> tuple[list[str], list[str]]:
    """Dry run (ctx.conn is None): apply every stage that needs no database; (applied, skipped) stage names."""
    active = [s for s in stages() if offline(s)]
    for s in active:
        s.prepare(ctx)
    for decisions in per_client:
        for s in active:
            if any(d.live for d in decisions):
                s.apply(ctx, decisions)
    return [s.name for s in active], [s.name for s in stages() if not offline(s)]


def apply_all(ctx: StageContext, per_client: list[list[Decision]]) -> None:
    active = stages()
    for s in active:
        s.prepare(ctx)
    for decisions in per_client:
        for s in active:
            # A stage sees a client's decisions while one of them is live; none can become live
            # again, so the first stage that finds none ends this client (a loop, not any(): this
            # runs once per stage and client of the book).
            for d in decisions:
                if d.outcome == FIRE:
                    s.apply(ctx, decisions)
                    break
            else:
                break

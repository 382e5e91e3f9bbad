"""A console database for the supervision and operations pages: the test book, evaluated, with
its messages marked sent, a supervision sample drawn and one user per role."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine, update

from engine import clock
from engine.compliance import review
from engine.config.base import Config, SupervisionConfig
from engine.db import make_engine, upgrade
from engine.language.loading import load_ruleset
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from engine.supervision import sampling
from tests import book
from tests.compliance_helpers import copy_shipped, pack_config
from tests.conftest import shipped_config
from tests.identity_helpers import make_user

DAY = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai on the book's day
USERS = {"zhao.lei": ["supervisor"], "qian.sup": ["supervisor"], "wang.fang": ["compliance"], "li.na": ["author"],
         "sun.aud": ["auditor"], "chen.op": ["operator"], "admin": ["admin"]}
EVERYTHING = SupervisionConfig(marketing_rate=1.0, service_rate=1.0, task_rate=1.0, high_risk_rate=1.0)


def build(root: Path) -> tuple[Engine, Config]:
    with clock.using(clock.FixedClock(DAY)):  # module fixtures run outside the per-test clock
        return _build(root)


def _build(root: Path) -> tuple[Engine, Config]:
    copy_shipped(root)
    cfg = pack_config(shipped_config().model_copy(update={"rules_dirs": ("rules",)}), root)
    eng = make_engine(f"sqlite:///{root / 's.db'}")
    upgrade(eng)
    book.build(eng)
    for name, roles in USERS.items():
        make_user(eng, name, roles)
    review.submit(eng, cfg, "li.na", "first pack")
    review.approve(eng, cfg, "wang.fang", 1, "baseline")
    run(eng, cfg, load_ruleset(cfg), book.AS_OF)  # the contact window judged at the book's day
    with eng.begin() as c:  # as if the dispatcher had sent them: only sent messages are sampled
        c.execute(update(FIRING).where(FIRING.c.action_type == "message").values(status="sent"))
        c.execute(update(book.Client.__table__).values(phone="13800000001"))  # type: ignore[attr-defined]
        sampling.sample(c, book.AS_OF, EVERYTHING)
    return eng, cfg

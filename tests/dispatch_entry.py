"""A dispatcher process for the kill tests: `python -m tests.dispatch_entry ...`.

With --crash STEP the process kills itself with SIGKILL right after that step is
committed (claimed, transmitting, sent, recorded): a real crash, no cleanup runs.
Its clock is `--now` (the test's clock) plus `--later` seconds, never the machine's.
"""

from __future__ import annotations

import argparse
import os
import signal
from datetime import datetime, timedelta

from engine.composition import install
from engine.config.base import Config
from engine import clock
from engine.db import make_engine
from engine.dispatch.outbox import dispatch_once


def main() -> None:
    install()
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--gateway")
    p.add_argument("--smtp-port", type=int, default=25)
    p.add_argument("--crash")
    p.add_argument("--now", type=datetime.fromisoformat, required=True, help="the clock, ISO 8601 with offset")
    p.add_argument("--later", type=float, default=0.0, help="act as if this many seconds had passed")
    p.add_argument("--on-uncertain", default="resend")
    a = p.parse_args()
    cfg = Config.model_validate({"dispatch": {
        "gateway": {"url": a.gateway, "timeout_seconds": 5},
        "email": {"port": a.smtp_port, "on_uncertain": a.on_uncertain},
        "retry": {"lease_seconds": 30},
    }})

    def on_step(step: str, row_id: int) -> None:
        if step == a.crash:
            os.kill(os.getpid(), signal.SIGKILL)

    clock.install(clock.FixedClock(a.now + timedelta(seconds=a.later)))
    s = dispatch_once(make_engine(a.db), cfg, now=clock.now(), on_step=on_step)
    print(f"sent={s.sent} claimed={s.claimed} uncertain={s.uncertain}")


if __name__ == "__main__":
    main()

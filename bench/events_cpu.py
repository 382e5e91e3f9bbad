"""Event engine cost that depends little on the machine's load: SQL statements and CPU seconds.

1. Statements sent for one firing event alone in a batch, then for ten firing events of
   distinct clients in one batch (the intake INSERT included).
2. A replay of `--events` stored events of the latency bench's mix (2% firing, distinct
   clients): the process's CPU time (`time.process_time`) per event, events per CPU-second,
   wall events/s at the current load, statements per event.

    .venv/bin/python bench/events_cpu.py --events 5000
    .venv/bin/python bench/events_cpu.py --events 5000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, event

from engine.composition import install
from engine.compliance import review
from engine.config.base import Config, load_config
from engine.events import store
from engine.events.service import EventService

sys.path.insert(0, str(Path(__file__).resolve().parent))
import events_latency as bench  # noqa: E402
from scratch import scratch_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def firing_statements(eng: Engine, cfg: Config, ids: list[str]) -> None:
    s = EventService(eng, cfg)
    s.start()
    s.post([bench._event(0, ids, "warm-")])  # the day's run row, calendar, snapshot dates
    s.drain()
    sent: list[int] = [0]

    def count(*_: object) -> None:
        sent[0] += 1

    event.listen(eng, "before_cursor_execute", count)
    try:
        for n in (1, 10):
            sent[0] = 0
            s.post([bench._event(50 * (k + 1), ids, f"f{n}-") for k in range(n)])  # i % 50 == 0 fires
            s.drain()
            print(f"{n} firing event(s) of distinct clients in one batch: {sent[0]} SQL statements")
    finally:
        event.remove(eng, "before_cursor_execute", count)


def replay_cpu(eng: Engine, cfg: Config, ids: list[str], n: int) -> None:
    with eng.begin() as c:
        for i in range(0, n, 1000):
            store.store(c, [bench._event(j, ids, "r-") for j in range(i, min(i + 1000, n))])
    s = EventService(eng, cfg)
    s.processor  # noqa: B018 - rules loaded before the clock starts
    trips = bench.RoundTrips(eng)
    t, c0 = time.perf_counter(), time.process_time()
    done = s.start()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t
    print(f"replay: {done} events, {s.counters.firings} firings; CPU {cpu:.2f} s = {cpu / done * 1000:.3f} ms/event "
          f"({done / cpu:.0f} events per CPU-second); wall {wall:.2f} s = {done / wall:.0f} events/s; "
          f"{trips.statements / done:.2f} statements/event")


def main() -> None:
    install()
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=20000)
    ap.add_argument("--database", default=None, help="a PostgreSQL URL (default: a scratch SQLite file)")
    a = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    print(bench._load())
    for step in ("statements", "replay"):
        with scratch_engine(a.database) as eng:
            review.demo_bootstrap(eng, cfg)
            ids = bench._book(eng, a.clients)
            if step == "statements":
                firing_statements(eng, cfg, ids)
            else:
                replay_cpu(eng, cfg, ids, a.events)
    print(bench._load())


if __name__ == "__main__":
    main()

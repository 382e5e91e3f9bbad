"""Event engine latency and memory: intake -> firing committed (task or queued message).

A producer thread posts events through the Python API (stored and committed, as the
HTTP endpoint does) at a fixed rate; the engine thread (this one) processes them.
Latency per event = engine commit time - intake call time. 2% of the events fire a
rule (the rest go through durable-rules and the event store but fire nothing);
figures are given for all events and for the firing ones. Baseline, same process:
the cost of storing one event alone (`store` in its own transaction).

Then a replay: `--replay-events` stored events are processed after a "restart";
resident memory is sampled along the way (it must stay flat).

    .venv/bin/python bench/events_latency.py --seconds 60 --rate 200
    .venv/bin/python bench/events_latency.py --seconds 300 --rate 200 --replay-events 72000
    .venv/bin/python bench/events_latency.py --seconds 60 --rate 200 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/events_latency.py --seconds 60 --rate 1000 --post-batch 20 --producers 4 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test

The sustained run prints the events processed per second while posting, the backlog when
the producers stopped (a queue that grows means the engine cannot keep this rate) and the
process's CPU seconds (the machine is shared: wall time alone says little).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event

from engine.composition import install
from engine.compliance import review
from engine.facts import trading_calendar
from engine.config.base import load_config
from engine.events import store
from engine.language.event_schema import AnyEvent, parse_event
from engine.events.service import EventService
from engine.models import Advisor, Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import scratch_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)


def _book(eng: Engine, n: int) -> list[str]:
    ids = [f"B{i:06d}" for i in range(n)]
    with eng.begin() as c:
        trading_calendar.ensure(c, "XSHG", DAY - timedelta(days=120), DAY + timedelta(days=60))
        c.execute(Advisor.__table__.insert(), [{"id": "A01", "name": "李明", "email": None, "supervisor_id": None, "daily_capacity": 20}])  # type: ignore[attr-defined]
        c.execute(Client.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": cid, "name": f"客户{cid}", "birth_date": date(1980, 1, 1), "locale": "zh-CN", "phone": None, "email": None,
             "opened_on": date(2020, 1, 1), "advisor_id": "A01", "risk_level": "C3", "lowest_category": False,
             "risk_assessed_on": date(2026, 1, 1)} for cid in ids])
    return ids


def _event(i: int, ids: list[str], prefix: str) -> AnyEvent:
    cid = ids[i % len(ids)]
    at = datetime.combine(DAY, datetime.min.time(), TZ) + timedelta(hours=9, milliseconds=i * 5)
    base = {"id": f"{prefix}{i}", "client_id": cid, "at": at.isoformat()}
    if i % 50 == 0:  # fires trade_off_market_alert
        return parse_event({**base, "type": "trade", "symbol": "019547", "side": "sell", "quantity": 10, "price": 1, "market_price": 100})
    if i % 2:
        return parse_event({**base, "type": "margin_ratio", "maintenance_ratio": 1.8})
    return parse_event({**base, "type": "trade", "symbol": "600036", "side": "buy", "quantity": 100, "price": 40, "market_price": 40})


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def baseline(eng: Engine, ids: list[str], n: int = 500) -> list[float]:
    out = []
    for i in range(n):
        ev = _event(i * 2 + 1, ids, "base-")
        t = time.perf_counter()
        with eng.begin() as c:
            store.store(c, [ev])
        out.append(time.perf_counter() - t)
    return out


def _load() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + ", ".join(f.read().split()[:3])


class RoundTrips:
    """SQL statements sent through the engine (an executemany counts once) and commits."""

    def __init__(self, eng: Engine):
        self.statements = self.commits = 0
        event.listen(eng, "before_cursor_execute", self._statement)
        event.listen(eng, "commit", self._commit)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _commit(self, *_: Any) -> None:
        self.commits += 1


def sustained(eng: Engine, cfg: Any, ids: list[str], seconds: float, rate: float,
              drain_limit: float = 120.0, post_batch: int = 1, producers: int = 1) -> dict[str, list[float]]:
    intake: dict[str, float] = {}
    lat: dict[str, list[float]] = {"all": [], "firing": []}

    def done(p: store.Pending, out: Any, end: float) -> None:
        t0 = intake.get(p.event.id)
        if t0 is not None and out is not None:
            lat["all"].append(end - t0)
            if out.live:
                lat["firing"].append(end - t0)

    s = EventService(eng, cfg, on_processed=done)
    s.start()  # processes the baseline's stored events first: not counted below
    cpu0, p0 = time.process_time(), s.counters.processed
    depth: list[int] = []
    posted: list[int] = []
    backlog: list[int] = []
    processed_by_stop: list[int] = []
    finished = threading.Event()
    failure: list[BaseException] = []

    start = time.monotonic()
    left = [producers]
    lock = threading.Lock()

    def producer(k: int) -> None:
        """Posts number k, k + producers, ... on the schedule of `rate` events/s over all producers
        (several producers: concurrent HTTP clients; one post's transaction no longer caps the rate)."""
        try:
            j, n = k, 0
            while time.monotonic() - start < seconds:
                # max(0, ...): when posting falls behind the schedule the wait is negative, and a
                # negative sleep raises ValueError, which used to kill this thread silently.
                time.sleep(max(0.0, start + j * post_batch / rate - time.monotonic()))
                evs = [_event(j * post_batch + m, ids, "live-") for m in range(post_batch)]  # one post per HTTP request
                t0 = time.monotonic()
                for ev in evs:
                    intake[ev.id] = t0
                s.post(evs)
                j += producers
                n += post_batch
                depth.append(s.queue.qsize())
            with lock:
                posted.append(n)
                left[0] -= 1
                if not left[0]:  # the last producer to stop
                    backlog.append(s.queue.qsize())
                    processed_by_stop.append(s.counters.processed - p0)
        except BaseException as e:  # noqa: BLE001 - reported by the main loop
            failure.append(e)
            with lock:
                left[0] -= 1
        finally:
            if not left[0]:
                finished.set()

    threads = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}", daemon=True) for k in range(producers)]
    for th in threads:
        th.start()
    # Bounded: the producer's time, then at most `drain_limit` seconds to empty the queue.
    deadline = time.monotonic() + seconds + drain_limit
    while not (finished.is_set() and s.queue.empty()):
        if time.monotonic() > deadline:
            print(f"gave up: {s.queue.qsize()} events still queued {drain_limit:.0f} s after the producer stopped "
                  "(the engine cannot keep up with this rate)")
            break
        s.drain(timeout=0.05)
    for th in threads:
        th.join(timeout=5)
    if failure:
        raise RuntimeError(f"the producer thread failed: {failure[0]!r}") from failure[0]
    wall = time.monotonic() - (deadline - seconds - drain_limit)
    q = depth or [0]
    tenth = max(1, len(q) // 10)
    n = sum(posted)
    print(f"sustained: {n} events posted in {seconds:.0f} s ({n / seconds:.0f}/s "
          f"offered), {s.counters.processed - p0} processed in {wall:.1f} s; queue depth mean over the first tenth "
          f"{statistics.mean(q[:tenth]):.1f}, last tenth {statistics.mean(q[-tenth:]):.1f}, max {max(q)}; "
          f"backlog when the producer stopped {backlog[0] if backlog else '?'}")
    print(f"throughput while posting: {processed_by_stop[0] if processed_by_stop else 0} events processed in the "
          f"{seconds:.0f} s of posting = {(processed_by_stop[0] if processed_by_stop else 0) / seconds:.0f} events/s "
          f"({'the queue grew' if backlog and backlog[0] > max(50, 2 * statistics.mean(q[:tenth])) else 'the queue stayed flat'}); "
          f"engine process CPU {time.process_time() - cpu0:.1f} s")
    return lat


def replay(eng: Engine, cfg: Any, ids: list[str], n: int, base_s: float) -> list[tuple[int, float]]:
    with eng.begin() as c:
        for i in range(0, n, 1000):
            store.store(c, [_event(j, ids, "replay-") for j in range(i, min(i + 1000, n))])
    samples: list[tuple[int, float]] = []
    s = EventService(eng, cfg, on_processed=lambda p, o, e: samples.append((len(samples), _rss_mb())) if len(samples) % 1000 == 0 else samples.append((len(samples), -1.0)))
    trips = RoundTrips(eng)
    t = time.perf_counter()
    s.start()
    dt = time.perf_counter() - t
    print(f"replay: {n} events in {dt:.1f} s = {n / dt:.0f} events/s ({n / dt * base_s:.2f}x the baseline's "
          f"{1 / base_s:.0f} stores/s); {trips.statements / n:.2f} SQL statements and {trips.commits / n:.3f} "
          f"commits per event; {s.counters.firings} firings")
    return [x for x in samples if x[1] >= 0]


def main() -> None:
    install()
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--clients", type=int, default=20000)
    ap.add_argument("--replay-events", type=int, default=20000,
                    help="stored events processed back to back after the sustained run; 0 skips the replay")
    ap.add_argument("--database", default=None,
                    help="a PostgreSQL URL: a scratch database is created beside it and dropped after "
                         "(default: a scratch SQLite file)")
    ap.add_argument("--post-batch", type=int, default=1,
                    help="events per post (an HTTP client posting a JSON array); 1 posts each event alone")
    ap.add_argument("--producers", type=int, default=1,
                    help="producer threads posting concurrently (as several HTTP clients); one producer can offer "
                         "at most one post per store transaction")
    ap.add_argument("--drain-limit", type=float, default=120.0,
                    help="seconds allowed to empty the queue after the producer stops")
    a = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    print(_load())
    with scratch_engine(a.database) as eng:
        review.demo_bootstrap(eng, cfg)  # only approved event rules run: approve the shipped pack (as `steward demo` does)
        ids = _book(eng, a.clients)
        base = baseline(eng, ids)
        b50 = statistics.median(base) * 1000
        print(f"baseline (store one event, own transaction): p50 {b50:.2f} ms  p99 {_pct(base, 0.99):.2f} ms")
        lat = sustained(eng, cfg, ids, a.seconds, a.rate, a.drain_limit, a.post_batch, a.producers)
        for k, xs in lat.items():
            p50, p99 = _pct(xs, 0.5), _pct(xs, 0.99)
            print(f"{k:>7}: n={len(xs)} p50 {p50:.2f} ms ({p50 / b50:.1f}x baseline)  p99 {p99:.2f} ms ({p99 / b50:.1f}x)  max {_pct(xs, 1.0):.1f} ms")
        rss = replay(eng, cfg, ids, a.replay_events, statistics.median(base)) if a.replay_events > 0 else []
        print(_load())
        if rss:
            first, mid, last = rss[0][1], rss[len(rss) // 2][1], rss[-1][1]
            print(f"replay RSS MB: after 1st event {first:.1f}, middle {mid:.1f}, end {last:.1f}, peak {max(r for _, r in rss):.1f}")


if __name__ == "__main__":
    main()

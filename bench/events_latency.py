"""Event engine latency and memory: intake -> firing committed (task or queued message).

Producer processes post events (stored and committed, one transaction per post, as the HTTP
endpoint does) at a fixed rate; engine processes process them; this process only coordinates,
so the measurement takes no CPU or GIL from the engine. An engine learns of posted events by
`--wake pipe` (the producers hand it the seqs, as the in-process HTTP intake queues them) or
`--wake notify` (PostgreSQL LISTEN/NOTIFY, as events stored by other processes). Latency per
event = engine commit time - intake call time (CLOCK_MONOTONIC, the same in every process),
split into `wait` (intake -> the claim that took the event began) and `batch` (claim,
processing, commit). 2% of the events fire a rule (the rest go through durable-rules and the
event store but fire nothing); figures are given for all events and for the firing ones.
Baseline: the cost of storing one event alone (`store` in its own transaction).

Then a replay: `--replay-events` stored events are processed after a "restart";
resident memory is sampled along the way (it must stay flat).

    .venv/bin/python bench/events_latency.py --seconds 60 --rate 200
    .venv/bin/python bench/events_latency.py --seconds 300 --rate 200 --replay-events 72000
    .venv/bin/python bench/events_latency.py --seconds 60 --rate 200 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/events_latency.py --seconds 60 --rate 1000 --post-batch 20 --producers 4 --engines 2 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test

The sustained run prints the events processed per second while posting, the backlog when
the producers stopped (a queue that grows means the engines cannot keep this rate) and the
engines' CPU per event (the machine is shared: wall time alone says little).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import statistics
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event, text

from engine.composition import install
from engine.compliance import review
from engine.facts import trading_calendar
from engine.config.base import load_config
from engine.db import make_engine
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


# ------------------------------------------------------------------ sustained run, in processes

_CTX = mp.get_context("spawn")  # children build their own engines and connections (nothing inherited)
READY_TIMEOUT = 120.0
"""Seconds a child may take to start (imports, a replay of the baseline) before the run is abandoned."""


def _producer(k: int, url: str, n_clients: int, producers: int, rate: float, post_batch: int, seconds: float,
              start: Any, go: Any, ready: Any, posted: Any, feed: Any, results: Any) -> None:
    """Producer process k: posts events k, k + producers, ... (times `post_batch`) on the schedule of `rate`
    events/s over all producers, each post stored and committed in its own transaction (as the HTTP intake
    does), and reports (event number, intake time) pairs. `feed` not None: the seqs go to the engine through
    it (the in-process intake handing seqs over); else the engine learns of them by NOTIFY."""
    times: list[tuple[int, float]] = []
    err = None
    try:
        eng = make_engine(url)
        ids = [f"B{i:06d}" for i in range(n_clients)]
        ready.release()
        if not go.wait(READY_TIMEOUT):
            raise TimeoutError("never told to start")
        t_start = start.value
        j = k
        while time.monotonic() - t_start < seconds:
            # max(0, ...): a negative sleep raises ValueError (posting behind the schedule).
            time.sleep(max(0.0, t_start + j * post_batch / rate - time.monotonic()))
            evs = [_event(j * post_batch + m, ids, "live-") for m in range(post_batch)]
            t0 = time.monotonic()
            with eng.begin() as c:  # `source` only for notify: main's store.store has no such argument
                res = store.store(c, evs, source=f"bench-producer-{k}") if feed is None else store.store(c, evs)
            times.extend((j * post_batch + m, t0) for m in range(post_batch))
            if feed is not None:
                feed.put([seq for seq, _ in res.new])
            with posted.get_lock():
                posted.value += len(res.new)
            j += producers
        eng.dispose()
    except BaseException as e:  # noqa: BLE001 - reported to the coordinator
        err = f"producer {k}: {e!r}"
    results.put(("producer", k, times, err, time.process_time()))


def _engine(k: int, url: str, cfg_path: str, seconds: float, drain_limit: float, wake: str,
            start: Any, go: Any, ready: Any, stop: Any, processed: Any, feed: Any, results: Any) -> None:
    """Engine process k: replays what is stored, then processes what the producers post until `stop`.

    Reports per live event (event number, batch start, commit end, firing?) and its CPU seconds
    from the start signal on. Batch start is when the engine began the claim that took the event:
    intake -> batch start is the wake-up and queueing, batch start -> end the processing and commit."""
    lat: list[tuple[int, float, float, bool]] = []
    err, cpu, n_done = None, 0.0, 0
    try:
        install()
        cfg = load_config(Path(cfg_path))
        eng = make_engine(url)
        began = [0.0]

        def done(p: store.Pending, out: Any, end: float) -> None:
            if out is not None and p.event.id.startswith("live-"):
                lat.append((int(p.event.id[5:]), began[0], end, bool(out.live)))
                with processed.get_lock():
                    processed.value += 1

        s = EventService(eng, cfg, on_processed=done)
        if wake == "notify" and not s.listen():
            raise RuntimeError("--wake notify needs PostgreSQL")
        s.start()  # the baseline's stored events: before the clock starts
        proc = s.processor
        claim = proc.process_batch

        def timed_batch(*a: Any, **kw: Any) -> Any:
            began[0] = time.monotonic()
            return claim(*a, **kw)

        proc.process_batch = timed_batch  # type: ignore[method-assign]
        if feed is not None:
            def feeder() -> None:
                while True:
                    seqs = feed.get()
                    if seqs is None:
                        return
                    for q in seqs:
                        s.queue.put(q)
            threading.Thread(target=feeder, name="feeder", daemon=True).start()
        ready.release()
        if not go.wait(READY_TIMEOUT):
            raise TimeoutError("never told to start")
        cpu0, p0 = time.process_time(), s.counters.processed
        hard = start.value + seconds + drain_limit + 30  # bounded even if the coordinator is gone
        next_pass = time.monotonic() + 1.0
        while not stop.is_set() and time.monotonic() < hard:
            s.drain(timeout=0.05)
            if time.monotonic() >= next_pass:  # as `serve`: anything a wake-up missed
                s.wake() if hasattr(s, "wake") else s.run_pending()  # main's service has no wake()
                next_pass = time.monotonic() + 1.0
        cpu, n_done = time.process_time() - cpu0, s.counters.processed - p0
        if hasattr(s, "close"):
            s.close()
        eng.dispose()
    except BaseException as e:  # noqa: BLE001 - reported to the coordinator
        err = f"engine {k}: {e!r}"
    results.put(("engine", k, lat, err, cpu, n_done))


def _stored(eng: Engine) -> int:
    with eng.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM event_log WHERE status = 'stored'")).scalar_one())


def sustained(eng: Engine, cfg_path: Path, seconds: float, rate: float, drain_limit: float = 120.0,
              post_batch: int = 1, producers: int = 1, engines: int = 1, wake: str = "pipe",
              n_clients: int = 20000) -> dict[str, list[float]]:
    """Producers and engines each in a process of their own; this process only coordinates and samples."""
    url = eng.url.render_as_string(hide_password=False)
    if engines > 1 and wake != "notify":
        raise SystemExit("--engines > 1 needs --wake notify (PostgreSQL)")
    start, posted, processed = _CTX.Value("d", 0.0), _CTX.Value("q", 0), _CTX.Value("q", 0)
    go, stop, ready, results = _CTX.Event(), _CTX.Event(), _CTX.Semaphore(0), _CTX.Queue()
    feed = _CTX.Queue() if wake == "pipe" else None
    kids = [_CTX.Process(target=_engine, args=(k, url, str(cfg_path), seconds, drain_limit, wake, start, go, ready,
                                                stop, processed, feed, results), daemon=True) for k in range(engines)]
    kids += [_CTX.Process(target=_producer, args=(k, url, n_clients, producers, rate, post_batch, seconds, start, go,
                                                   ready, posted, feed, results), daemon=True) for k in range(producers)]
    for p in kids:
        p.start()
    got: list[tuple[Any, ...]] = []
    try:
        t_ready = time.monotonic() + READY_TIMEOUT
        for _ in kids:
            if not ready.acquire(timeout=max(0.1, t_ready - time.monotonic())):
                while not results.empty():
                    got.append(results.get())
                raise RuntimeError(f"children not ready after {READY_TIMEOUT:.0f} s: {[g[3] for g in got if g[3]]}")
        start.value = time.monotonic() + 0.2
        go.set()
        depth: list[int] = []
        # Bounded: the producers' time, then at most `drain_limit` seconds to empty the backlog.
        while time.monotonic() < start.value + seconds:
            time.sleep(0.5)
            depth.append(posted.value - processed.value)
        by_stop, backlog = processed.value, posted.value - processed.value
        deadline = start.value + seconds + drain_limit
        while time.monotonic() < deadline and not (_stored(eng) == 0 and processed.value >= posted.value):
            time.sleep(0.1)
        left = _stored(eng)
        if left:
            print(f"gave up: {left} events still stored {drain_limit:.0f} s after the producers stopped "
                  "(the engines cannot keep up with this rate)")
        wall = time.monotonic() - start.value
        n, q = posted.value, depth or [0]
        tenth = max(1, len(q) // 10)
        grew = backlog > max(50, 2 * statistics.mean(q[:tenth]))
        print(f"sustained: {producers} producer process(es), {engines} engine process(es), wake by {wake}; {n} events "
              f"posted in {seconds:.0f} s ({n / seconds:.0f}/s offered), {processed.value} processed in {wall:.1f} s; "
              f"backlog (posted - processed) mean over the first tenth {statistics.mean(q[:tenth]):.1f}, last tenth "
              f"{statistics.mean(q[-tenth:]):.1f}, max {max(q)}; backlog when the producers stopped {backlog}")
        print(f"throughput while posting: {by_stop} events processed in the {seconds:.0f} s of posting = "
              f"{by_stop / seconds:.0f} events/s ({'the queue grew' if grew else 'the queue stayed flat'})")
        stop.set()
        if feed is not None:
            feed.put(None)
        t_end = time.monotonic() + 60
        while len(got) < len(kids) and time.monotonic() < t_end:
            try:
                got.append(results.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        stop.set()
        go.set()
        for p in kids:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    errors = [g[3] for g in got if g[3]]
    if errors or len(got) < len(kids):
        raise RuntimeError(f"{len(kids) - len(got)} children did not report; errors: {errors}")
    t0 = {i: t for g in got if g[0] == "producer" for i, t in g[2]}
    eng_cpu = sum(g[4] for g in got if g[0] == "engine")
    eng_n = sum(g[5] for g in got if g[0] == "engine")
    prod_cpu = sum(g[4] for g in got if g[0] == "producer")
    print(f"engine CPU {eng_cpu:.1f} s for {eng_n} events = {eng_cpu / max(1, eng_n) * 1000:.3f} ms per event; "
          f"producers' CPU {prod_cpu:.1f} s")
    lat: dict[str, list[float]] = {"all": [], "firing": [], "wait": [], "batch": []}
    for g in got:
        if g[0] != "engine":
            continue
        for i, began, end, live in g[2]:
            if i in t0:
                lat["all"].append(end - t0[i])
                lat["wait"].append(max(0.0, began - t0[i]))  # intake -> the claim that took it began
                lat["batch"].append(end - max(began, t0[i]))  # claim, processing, commit
                if live:
                    lat["firing"].append(end - t0[i])
    dup = sum(len(g[2]) for g in got if g[0] == "engine") - len({i for g in got if g[0] == "engine" for i, *_ in g[2]})
    if dup:
        raise RuntimeError(f"{dup} events were processed twice")
    return lat


def check(eng: Engine, lat: dict[str, list[float]]) -> None:
    """Exactly once: every event processed (none failed), one firing row per firing counted by the
    engines, and the audit chain verifies."""
    from engine.audit import log as auditlog

    with eng.connect() as c:
        by_status = store.counts(c)
        fired = c.execute(text("SELECT count(*) FROM firing WHERE client_id IN (SELECT client_id FROM event_log "
                               "WHERE event_id LIKE 'live-%')")).scalar_one()
        v = auditlog.verify(c)
    ok = set(by_status) == {"processed"} and v.broken is None
    print(f"exactly once: events by status {by_status}; {fired} firing rows of live clients (engines counted "
          f"{len(lat['firing'])} firing events); audit chain {'verifies' if v.broken is None else v.broken} "
          f"({v.events} events) -> {'OK' if ok else 'FAILED'}")


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
                    help="producer processes posting concurrently (as several HTTP clients); one producer can offer "
                         "at most one post per store transaction")
    ap.add_argument("--engines", type=int, default=1,
                    help="event engine processes side by side (more than one: PostgreSQL, --wake notify)")
    ap.add_argument("--wake", choices=("pipe", "notify"), default=None,
                    help="how an engine learns of posted events: 'pipe', the producers hand the seqs over (as the "
                         "in-process HTTP intake queues them), or 'notify', PostgreSQL LISTEN/NOTIFY "
                         "(default: notify on PostgreSQL, pipe on SQLite)")
    ap.add_argument("--drain-limit", type=float, default=120.0,
                    help="seconds allowed to empty the queue after the producer stops")
    ap.add_argument("--no-sync-commit", action="store_true",
                    help="diagnostic (PostgreSQL): the scratch database with synchronous_commit off, to show how much "
                         "of the latency is waiting for the WAL flush of each commit")
    a = ap.parse_args()
    cfg = load_config(ROOT / "config.yaml")
    print(_load())
    with scratch_engine(a.database) as eng:
        if a.no_sync_commit and eng.dialect.name == "postgresql":
            with eng.connect() as c:
                c.execute(text(f'ALTER DATABASE "{eng.url.database}" SET synchronous_commit = off'))
                c.commit()
            eng.dispose()
        review.demo_bootstrap(eng, cfg)  # only approved event rules run: approve the shipped pack (as `steward demo` does)
        ids = _book(eng, a.clients)
        base = baseline(eng, ids)
        b50 = statistics.median(base) * 1000
        print(f"baseline (store one event, own transaction): p50 {b50:.2f} ms  p99 {_pct(base, 0.99):.2f} ms")
        wake = a.wake or ("notify" if eng.dialect.name == "postgresql" else "pipe")
        lat = sustained(eng, ROOT / "config.yaml", a.seconds, a.rate, a.drain_limit, a.post_batch, a.producers,
                        a.engines, wake, a.clients)
        for k, xs in lat.items():
            p50, p99 = _pct(xs, 0.5), _pct(xs, 0.99)
            print(f"{k:>7}: n={len(xs)} p50 {p50:.2f} ms ({p50 / b50:.1f}x baseline)  p99 {p99:.2f} ms ({p99 / b50:.1f}x)  max {_pct(xs, 1.0):.1f} ms")
        check(eng, lat)
        rss = replay(eng, cfg, ids, a.replay_events, statistics.median(base)) if a.replay_events > 0 else []
        print(_load())
        if rss:
            first, mid, last = rss[0][1], rss[len(rss) // 2][1], rss[-1][1]
            print(f"replay RSS MB: after 1st event {first:.1f}, middle {mid:.1f}, end {last:.1f}, peak {max(r for _, r in rss):.1f}")


if __name__ == "__main__":
    main()

"""The event engine: intake from any thread, processing in the one thread that owns durable-rules.

`EventService.post` stores events durably (any thread: the HTTP handlers, the CLI,
a Python caller) and queues their sequence numbers. `run_pending`, `drain`, `tick`
and `serve` run in the owner thread, the thread that built the service's processor:
durable-rules must only ever be called from one thread. On start (`replay`) every
stored-but-unprocessed event is processed, oldest first, before any deadline fires.

Events are processed in batches, one transaction each (Processor.process_batch). A
failure rolls back the batch; its events are then processed one per transaction, so
only the failing event is marked `failed` with the error; the loop goes on. `steward events
retry` puts failed events back. The rule set is loaded once, from the last approved
version (never the working files; engine.compliance.review): a newly approved rule version takes
effect when a fresh engine process starts. With nothing approved, processing refuses
(`review.NothingApproved`) before any event is touched: stored events wait for a replay.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from engine.compliance import review
from engine.config.base import Config
from engine.events.durable import WrongThreadError
from engine import clock
from engine.events import store
from engine.events.wake import Listener
from engine.language.event_rules import EventRuleSet
from engine.events.processor import Outcome, Processor
from engine.language.event_schema import AnyEvent, parse_jsonl

log = logging.getLogger("steward.events")
BATCH = 200
"""Events claimed and processed per transaction (at most)."""
OnProcessed = Callable[[store.Pending, Outcome | None, float], None]
"""Called in the engine thread after each event: (event, outcome or None if failed, monotonic end time)."""
WAKE = 0
"""Queued (no event has seq 0) when another process stored events: the engine thread claims what is stored."""
WAKE_BATCHES = 5
"""Batches one WAKE claims at most, so a backlog never keeps the engine loop from its ticks and stop."""


class Rejected(Exception):
    """A strict post refused as a whole (nothing stored): an HTTP status and the problems."""

    def __init__(self, status: int, problems: list[str]):
        super().__init__("; ".join(problems[:5]))
        self.status = status
        self.problems = problems


@dataclass
class Counters:
    stored: int = 0
    duplicates: int = 0
    processed: int = 0
    failed: int = 0
    firings: int = 0
    deadlines_fired: int = 0
    errors: list[str] = field(default_factory=list)


class EventService:
    """Store from anywhere; process in the owner thread (the one that calls `start`)."""

    def __init__(self, engine: Engine, cfg: Config, rules: EventRuleSet | None = None,
                 on_processed: OnProcessed | None = None):
        """`rules` None: the event rules of the last approved version, loaded when first needed."""
        self.engine, self.cfg = engine, cfg
        self._rules = rules
        self.queue: queue.Queue[int] = queue.Queue()
        self.counters = Counters()
        self.on_processed = on_processed
        self._processor: Processor | None = None
        self._owner: threading.Thread | None = None
        self._lock = threading.Lock()
        self.token = uuid.uuid4().hex
        """This service's posts carry it: its own notifications do not wake it (it queued their seqs)."""
        self._listener = Listener(engine, self.token, self.wake)
        self._wake_queued = threading.Event()

    def listen(self) -> bool:
        """Wake on events other processes store (PostgreSQL LISTEN/NOTIFY; False elsewhere: the tick finds them)."""
        return self._listener.start()

    def close(self) -> None:
        """Stop listening (the service can still process what is queued)."""
        self._listener.close()

    def wake(self) -> None:
        """Have the next `drain` claim what is stored (any thread): one WAKE queued at a time, however
        many notifications arrive."""
        if not self._wake_queued.is_set():
            self._wake_queued.set()
            self.queue.put(WAKE)

    @property
    def rules(self) -> EventRuleSet:
        """The rules that run: given, or the approved version's (NothingApproved when there is none)."""
        if self._rules is None:
            self._rules, changes, approved = review.approved_event_rules(self.engine, self.cfg)
            if changes:
                log.warning("event rules: running approved version %s; %d working file(s) are unapproved and not used: %s",
                            approved.version, len(changes), ", ".join(f"{c.path} ({c.state})" for c in changes))
        return self._rules

    # -------------------------------------------------------------- intake (any thread)

    def post(self, events: Sequence[AnyEvent], strict: bool = False) -> store.Stored:
        """Store events (committed before returning) and queue them for the engine thread.

        `strict` (the HTTP intake): a batch naming an unknown client, or re-posting an id with
        other content, raises `Rejected` and stores nothing.
        """
        with self.engine.begin() as conn:
            if strict:
                unknown = store.unknown_clients(conn, events)
                if unknown:
                    raise Rejected(422, [f"request:{n}: client_id: unknown client {cid[:64]!r}: import the client "
                                         "first (steward import), then post again" for n, cid in unknown])
            res = store.store(conn, events, source=self.token)
            if strict and res.conflicts:
                raise Rejected(409, [f"request: id: event {eid[:64]!r} was stored before with other content: "
                                     "an event id is final, send the change under a new id" for eid in res.conflicts])
        with self._lock:
            self.counters.stored += len(res.new)
            self.counters.duplicates += res.duplicates
        for seq, _ in res.new:
            self.queue.put(seq)
        return res

    def post_jsonl(self, text: str, source: str) -> store.Stored:
        return self.post(parse_jsonl(text, source))

    # -------------------------------------------------------------- engine thread

    @property
    def processor(self) -> Processor:
        """The processor, built in (and owned by) the first thread that processes."""
        if self._owner is None:
            self._owner = threading.current_thread()
        if threading.current_thread() is not self._owner:
            raise WrongThreadError(f"the event engine is owned by thread {self._owner.name!r}; "
                                   f"called from {threading.current_thread().name!r}: post() from other threads instead")
        if self._processor is None:
            self._processor = Processor(self.engine, self.cfg, self.rules)  # NothingApproved here: no event touched
        return self._processor

    def start(self) -> int:
        """Take ownership in this thread and replay stored-but-unprocessed events; returns how many."""
        return self.run_pending()

    def run_pending(self, batch: int = BATCH) -> int:
        """Process every stored event, oldest first (replay after a restart), `batch` per transaction."""
        self.processor  # noqa: B018 - owner thread only
        done, after = 0, 0
        while True:
            n, last = self._batch(None, after, batch)
            if not n:
                return done
            done, after = done + n, last

    def _batch(self, seqs: list[int] | None, after: int, limit: int) -> tuple[int, int]:
        """Claim and process one batch in one transaction; (events handled, highest seq seen).

        If an event raises, the batch's transaction rolls back (nothing of it is kept) and its
        events are processed again one per transaction, so only the failing one is marked failed.
        """
        try:
            done = self.processor.process_batch(seqs, after, limit)
        except Exception:  # noqa: BLE001 - each event is retried alone just below
            with self.engine.connect() as conn:
                items = store.load(conn, seqs) if seqs is not None else store.pending(conn, limit, after)
            for p in items:
                self._one(p)
            return len(items), max((p.seq for p in items), default=after)
        end = time.monotonic()
        for p, out in done:
            self.counters.processed += 1
            self.counters.firings += out.live
            if self.on_processed is not None:
                self.on_processed(p, out, end)
        return len(done), max((p.seq for p, _ in done), default=after)

    def _one(self, p: store.Pending) -> None:
        self.processor  # noqa: B018 - raises WrongThreadError before the event is touched
        try:
            out = self.processor.process(p)
        except Exception as e:  # noqa: BLE001 - surfaced: the event is marked failed with the error
            msg = f"{type(e).__name__}: {e}"
            log.error("event %s (seq %s) failed: %s", p.event.id, p.seq, msg)
            with self.engine.begin() as conn:
                store.mark(conn, p.seq, "failed", self.rules.version, 0, msg[:2000])
            self.counters.failed += 1
            self.counters.errors.append(f"{p.event.id}: {msg}")
            out = None
        else:
            if out is not None:
                self.counters.processed += 1
                self.counters.firings += out.live
        if self.on_processed is not None:
            self.on_processed(p, out, time.monotonic())

    def drain(self, timeout: float = 0.0, batch: int = BATCH) -> int:
        """Process the queued events (waiting up to `timeout` for the first), `batch` per transaction;
        returns how many."""
        self.processor  # noqa: B018 - owner thread only
        seqs: list[int] = []
        try:
            seqs.append(self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait())
            while len(seqs) < 1000:
                seqs.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        woken = WAKE in seqs
        if woken:
            seqs = [q for q in seqs if q != WAKE]
            self._wake_queued.clear()  # before claiming: a notification from now on queues a new WAKE
        done = 0
        for i in range(0, len(seqs), batch):
            done += self._batch(seqs[i:i + batch], 0, batch)[0]
        if woken:  # stored events, oldest first, at most WAKE_BATCHES batches before the caller's loop goes on
            after = 0
            for _ in range(WAKE_BATCHES):
                n, after = self._batch(None, after, batch)
                done += n
                if n < batch:
                    break
            else:
                self.wake()  # a full last batch: more may be stored, claimed at the next drain
        return done

    def tick(self, now: datetime | None = None) -> int:
        """Fire due absence deadlines; returns the firings made."""
        outs = self.processor.tick(now or clock.now())
        self.counters.deadlines_fired += len(outs)
        n = sum(o.live for o in outs)
        self.counters.firings += n
        return n

    def serve(self, stop: threading.Event) -> None:
        """The engine loop: replay, then process queued events and tick deadlines until `stop` is set.

        Events other processes store (`steward events post --no-process`, a second engine's intake)
        wake it at once on PostgreSQL (`listen`); on SQLite the tick finds them.
        """
        self.listen()
        try:
            self.start()
            next_tick = 0.0
            while not stop.is_set():
                self.drain(timeout=min(self.cfg.events.tick_seconds, 0.2))
                if time.monotonic() >= next_tick:
                    self.wake()  # anything a lost notification (or SQLite) left stored: the next drain claims it
                    self.tick()
                    next_tick = time.monotonic() + self.cfg.events.tick_seconds
        finally:
            self.close()

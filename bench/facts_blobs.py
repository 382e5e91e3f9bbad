"""How to store a batch's facts snapshots in `audit_blob`: INSERT ... ON CONFLICT DO NOTHING alone
(engine.audit.facts_store.put), or a SELECT of the batch's hashes first and an insert of the new ones
(as `put_blobs` does for rule and template sources). Timed per batch of 2,000 new snapshots of ~2 KB
(a night: every text new) and again with the same texts (a second run of the day: every text there).

    .venv/bin/python bench/facts_blobs.py                       # SQLite (a scratch file)
    .venv/bin/python bench/facts_blobs.py postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text  # noqa: E402

from engine.audit import facts_store  # noqa: E402
from engine.audit.log import BLOB, canonical, sha256_text  # noqa: E402
from engine.composition import install  # noqa: E402
from engine.db import make_engine, upgrade  # noqa: E402

BATCH, BATCHES = 2000, 10


def _texts(seed: int) -> dict[str, str]:
    out = {}
    for i in range(BATCH):
        t = canonical({"client_id": f"C{seed:03}{i:06}", "note": "x" * 1900, "n": i})
        out[sha256_text(t)] = t
    return out


def _select_first(conn: Any, texts: dict[str, str]) -> None:
    have = {r[0] for r in conn.execute(select(BLOB.c.sha256).where(BLOB.c.sha256.in_(list(texts))))}
    facts_store.put(conn, {h: t for h, t in texts.items() if h not in have})


def _time(eng: Any, put: Any, batches: list[dict[str, str]]) -> float:
    t = time.perf_counter()
    for texts in batches:
        with eng.begin() as c:
            put(c, texts)
    return (time.perf_counter() - t) / len(batches) * 1000


def main() -> None:
    install()
    pg = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as d:
        name = f"steward_blobs_{uuid.uuid4().hex[:8]}"
        admin = None
        if pg:
            admin = make_engine(pg).execution_options(isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = f"{pg.rsplit('/', 1)[0]}/{name}"
        else:
            url = f"sqlite:///{Path(d) / 'blobs.db'}"
        eng = make_engine(url)
        try:
            upgrade(eng)
            for round_ in range(2):  # alternate which goes first
                for label, put in ((("insert only", facts_store.put), ("select first", _select_first))[::1 if round_ == 0 else -1]):
                    batches = [_texts(round_ * 100 + BATCHES * (label == "select first") + k) for k in range(BATCHES)]
                    new = _time(eng, put, batches)
                    again = _time(eng, put, batches)
                    print(f"{eng.dialect.name:10} {label:12}: {new:6.1f} ms per batch of {BATCH:,} new snapshots, "
                          f"{again:6.1f} ms when all are stored already", flush=True)
        finally:
            eng.dispose()
            if admin is not None:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

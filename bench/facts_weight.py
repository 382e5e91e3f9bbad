"""What the facts snapshot costs the nightly run: the same run on a kept 10k book, with the
snapshot in the firing row and the audit body either whole (`full`) or reduced to a reference
(`small`: client id, segment, advisor and a hash: what storing the snapshot once per client and
day, by reference, would leave in each row). Run the two alternately:

    .venv/bin/python bench/nightly_once.py --build 10000 --book /tmp/lead/b10k.db    # once
    for m in full small full small; do .venv/bin/python bench/facts_weight.py $m [BOOK]; done

Each run prints nightly_once's JSON line, then the database size after the run. An experiment,
not a product path: `small` stores rows the product would not accept as an audit record.
Since branch i16s the product stores the snapshot by reference (bench/results/issue-16.md,
session 5): run this on a checkout before it to reproduce the experiment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nightly_once as n  # noqa: E402

from engine.audit import log as auditlog  # noqa: E402
from engine.composition import install  # noqa: E402
from engine.config.base import load_config  # noqa: E402
from engine.pipeline import recording  # noqa: E402

BOOK = Path("/tmp/lead/b10k.db")


def _small(f: Any, dates: Any = None) -> tuple[dict[str, Any], str]:
    snap = {"client_id": f["client_id"], "segment": f.get("segment"), "advisor_id": f.get("advisor_id"),
            "facts_sha256": "0" * 64}
    return snap, auditlog.canonical(snap)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    book = Path(sys.argv[2]) if len(sys.argv) > 2 else BOOK
    install()
    cfg = load_config(n.ROOT / "config.yaml")
    if mode == "small":
        recording.encoded_facts = _small  # type: ignore[assignment]
    copy = book.with_name(book.name + ".weight.db")
    shutil.copyfile(book, copy)
    try:
        n._run(cfg, copy, 10**9)
        print(mode, "db MB", round(copy.stat().st_size / 1e6))
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()

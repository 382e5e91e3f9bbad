"""Every client's facts as text, to compare two checkouts byte for byte (`cmp` the outputs).

    .venv/bin/python bench/facts_dump.py --book /tmp/b10k.db --out /tmp/facts_this.txt
    .venv/bin/python bench/facts_dump.py --book /tmp/b10k.db --out /tmp/facts_main.txt --root /tmp/steward-main
    cmp /tmp/facts_this.txt /tmp/facts_main.txt

One line per client (`repr` of its facts, nightly batches), then 400 `facts_of` calls on 1 to 6
scattered clients (the event engine's form) and 50 `facts_for` calls, read-only on the book.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "--root" in sys.argv:  # another checkout's engine, imported before ours
    ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from engine.composition import install  # noqa: E402
from engine.config.base import load_config  # noqa: E402
from engine.db import make_engine  # noqa: E402
from engine.facts import base  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 20))
    ap.add_argument("--root", type=Path, help="import `engine` and config.yaml from this checkout instead")
    args = ap.parse_args()
    install()
    cfg = load_config(ROOT / "config.yaml")
    eng = make_engine(f"sqlite:///{args.book}")
    with args.out.open("w", encoding="utf-8") as fh, eng.connect() as conn:
        for batch in base.iter_batches(conn, cfg, args.as_of):
            for f in batch:
                fh.write(repr(f) + "\n")
        ids = base.client_ids(conn, args.as_of)
        extra: dict[str, object] = {}
        for k in range(400):
            pick = [ids[(k * 37 + j * 1009) % len(ids)] for j in range(k % 6 + 1)]
            fh.write("facts_of " + repr(sorted(base.facts_of(conn, cfg, args.as_of, pick, extra).items())) + "\n")
        for k in range(50):
            fh.write("facts_for " + repr(base.facts_for(conn, cfg, args.as_of, ids[k * 97 % len(ids)])) + "\n")
    eng.dispose()


if __name__ == "__main__":
    main()

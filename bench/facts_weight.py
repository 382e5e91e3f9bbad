"""What the facts snapshot costs the nightly run: the same run on a kept 10k book, with the
snapshot in the firing row and the audit body either whole (`full`) or reduced to a reference
(`small`: client id, segment, advisor and a hash: what storing the snapshot once per client and
day, by reference, would leave in each row). Run the two alternately:

    .venv/bin/python bench/nightly_once.py --build 10000 --book /tmp/lead/b10k.db    # once
    for m in full small full small; do .venv/bin/python bench/facts_weight.py $m; done

Each run prints nightly_once's JSON line, then the database size after the run. An experiment,
not a product path: `small` stores rows the product would not accept as an audit record."""
import os, sys, shutil, time, json
sys.path.insert(0, "/work/main"); sys.path.insert(0, "/work/main/bench")
import nightly_once as n
from pathlib import Path
from engine.composition import install
from engine.config.base import load_config
from engine.pipeline import recording
from engine.audit import log as auditlog
install()
cfg = load_config(n.ROOT / "config.yaml")
if sys.argv[1] == "small":
    orig = recording.encoded_facts
    def small(f, dates=None):
        snap = {"client_id": f["client_id"], "segment": f.get("segment"), "advisor_id": f.get("advisor_id"),
                "facts_sha256": "0" * 64}
        return snap, auditlog.canonical(snap)
    recording.encoded_facts = small
copy = Path("/tmp/lead/b10k.x.db"); shutil.copyfile("/tmp/lead/b10k.db", copy)
try:
    n._run(cfg, copy, 10**9)
    print(sys.argv[1], "db MB", round(copy.stat().st_size / 1e6))
finally:
    for s in ("", "-wal", "-shm"): Path(f"{copy}{s}").unlink(missing_ok=True)

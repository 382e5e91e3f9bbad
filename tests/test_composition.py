"""The composition root is the one place that registers built-ins; importing registers nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_importing_the_pipeline_registers_nothing_and_install_registers_everything() -> None:
    out = _run("""
        import engine.pipeline.run, engine.dispatch.outbox, engine.audit.log, engine.compliance.suitability, engine.dispatch.contact_policy
        from engine import docgen
        from engine.pipeline import run as pipeline
        from engine.pipeline import policy
        from engine.facts import base as facts
        from engine.dispatch import channels
        before = (len(policy._STAGES), len(pipeline._RECORD_HOOKS), len(facts._PROVIDERS), sorted(docgen.GENERATED),
                  channels.names())
        from engine.composition import install
        install(); install()  # idempotent
        after = ([s.name for _, s in policy._STAGES], [h.__name__ for h in pipeline._RECORD_HOOKS],
                 len(facts._PROVIDERS), sorted(docgen.GENERATED), channels.names())
        print(before); print(after)
    """).splitlines()
    assert out[0] == "(0, 0, 0, [], [])"
    after = out[1]
    for name in ("suitability", "consent", "do_not_call", "record_firings", "enqueue", "rules.md", "facts.md", "email", "phone"):
        assert name in after, after


def test_facts_refuse_to_run_unwired() -> None:
    out = _run("""
        from engine.facts import base as facts
        try:
            facts.field_types()
        except RuntimeError as e:
            print(e)
    """)
    assert "engine.composition.install()" in out

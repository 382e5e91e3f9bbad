"""The composition root: the one place that wires built-in extensions into the engine.

Importing any engine module registers nothing. Entry points (the `steward` command,
the scheduler, migrations, tests, benchmarks) call `install()` once; it registers,
in a fixed order and through the same public doors a firm's own extensions use:
fact providers (engine.facts.base.register_provider), policy stages
(engine.pipeline.policy.register_stage), record hooks
(engine.pipeline.run.register_record_hook), delivery channels
(engine.dispatch.channels.register_channel) and generated documents
(engine.docgen.register_doc).

`import_all_tables()` imports every module that defines tables, so SQLModel's
metadata is complete for Alembic and for the schema-drift test.

This module may import every wing except demo and cli; only entry points import it.
"""

from __future__ import annotations

import importlib
import threading

from engine import docgen
from engine.audit import firing_events
from engine.compliance import aml, suitability
from engine.dispatch import contact_policy, outbox
from engine.dispatch.channels import builtin as channels
from engine.facts import base as facts
from engine.facts import docs as facts_docs
from engine.facts import history, holdings, playbook, positions
from engine.language import docs as rulesdoc
from engine.pipeline import run as pipeline
from engine.servicing import playbook_stage

_lock = threading.Lock()
_installed = False

TABLE_MODULES = (
    "engine.models",
    "engine.dispatch.tables",
    "engine.audit.log",
    "engine.supervision.sampling",
    "engine.audit.retention",
    "engine.facts.tables",
    "engine.compliance.review",  # app_user, content_blob, proposal, approved_version
    "engine.compliance.auth",  # auth_token (console sessions, CLI tokens)
    "engine.events.tables",  # event_log, event_mark, event_deadline
    "engine.compliance.drafts",  # rule_draft (console authoring)
)
"""Every module that defines SQLModel tables; the schema-drift test fails when one is missing."""


def import_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)


def install() -> None:
    """Register the built-ins once per process (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if _installed:
            return
        _register()
        _installed = True


def installed() -> bool:
    return _installed


def _register() -> None:
    # Fact providers, in dependency order: later providers read fields of earlier ones.
    for module in (facts, holdings, playbook, history, positions):
        for p in module.PROVIDERS.providers:
            facts.register_provider(p)
    # Policy stages order themselves by number: suitability 100, AML 110, segment playbook 150,
    # consent 200, do-not-call 300, contact window 400, caps 500, arbitration 600.
    suitability.register()
    aml.register()
    playbook_stage.register()
    contact_policy.register()
    # Record hooks run in order, in the recording transaction.
    pipeline.register_record_hook(outbox.enqueue, outbox.prepare_enqueue)  # a message firing and its outbox row commit together
    # Last: the audit append takes the chain lock, held until the batch commits; what runs
    # after it would make every other writer (shards, the event engine) wait longer.
    pipeline.register_record_hook(firing_events.record_firings, firing_events.prepare_record)  # audit events for every firing
    channels.register()  # email (SMTP), sms and im (HTTP gateway), phone (advisor task)
    docgen.register_doc("facts.md", facts_docs.facts_markdown)
    docgen.register_doc("rules.md", rulesdoc.rules_markdown)

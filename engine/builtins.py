"""Imports the built-in extension modules: policy stages and record hooks.

They register through the same public doors a firm's own extensions use
(engine.policy.register_stage, engine.pipeline.register_record_hook). Imported
at the end of engine.pipeline, so any evaluation runs with all of them.
Add one import line per module.
"""
import engine.auditlog  # noqa: F401  (audit events for every firing)
import engine.contact_policy  # noqa: F401  (consent 200, do-not-call 300, contact window 400, caps 500, arbitration 600)
import engine.outbox  # noqa: F401  (record hook: a message firing and its outbox row commit together)
import engine.suitability  # noqa: F401  (suitability gate 100: product offers only to suitable clients)
import engine.playbook_stage  # noqa: F401  (segment playbook 150: which marketing reaches each segment)

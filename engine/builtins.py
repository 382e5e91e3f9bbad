"""Imports the built-in extension modules: policy stages and record hooks.

They register through the same public doors a firm's own extensions use
(engine.policy.register_stage, engine.pipeline.register_record_hook). Imported
at the end of engine.pipeline, so any evaluation runs with all of them.
Add one import line per module.
"""
import engine.auditlog  # noqa: F401  (audit events for every firing)

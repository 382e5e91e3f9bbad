"""Imports every module that defines tables, so the metadata is complete.

Add a module here when it defines SQLModel tables; the migration test compares
this metadata with the migrated schema and fails on any drift.
"""

import engine.models  # noqa: F401
import engine.dispatch_tables  # noqa: F401
import engine.auditlog  # noqa: F401
import engine.supervision  # noqa: F401
import engine.retention  # noqa: F401
import engine.playbook_models  # noqa: F401
import engine.review  # noqa: F401  (app_user, content_blob, proposal, approved_version)
import engine.events.tables  # noqa: F401  (event_log, event_mark, event_deadline)

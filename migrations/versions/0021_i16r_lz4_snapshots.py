"""i16r: PostgreSQL compresses the large texts the nightly run writes with lz4 instead of pglz

Every firing stores its client's facts snapshot (~2 KB of JSON) and every audit event its body
(~3.5 KB): both above PostgreSQL's TOAST threshold, so each was compressed with pglz on insert,
which cost more than the rest of the COPY. lz4 compresses several times faster (measured: the
nightly run's COPY of firings and audit events 35-50% quicker). Existing rows keep their pglz
compression (PostgreSQL reads both); the stored text, and so every hash, is unchanged. A server
built without lz4 keeps pglz. SQLite: nothing to do.

Revision ID: 0021_i16r
Revises: 0017_i16
"""

from alembic import op
import sqlalchemy as sa


revision = "0021_i16r"
down_revision = "0017_i16"
branch_labels = None
depends_on = None

COLUMNS = (("firing", "facts"), ("audit_event", "body"), ("audit_blob", "body"))


def _has_lz4() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    values = bind.execute(sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    return values is not None and "lz4" in values


def _set(method: str) -> None:
    if _has_lz4():
        for table, column in COLUMNS:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET COMPRESSION {method}')


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")

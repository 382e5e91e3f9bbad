"""i16s: a firing names its client's facts snapshot by hash instead of carrying it

Each firing row used to hold the client's whole facts snapshot (~2 KB of JSON), the same text
for all of a client's firings of a night, and so did each firing's audit event: half the bytes a
nightly run wrote. The snapshot is now stored once per distinct text in `audit_blob` (kind
"facts", key = its sha256) and the row names it in `facts_sha256`; `facts` becomes nullable
(NULL in new rows). Rows written before keep their inline facts and read as they did
(engine.audit.facts_store.load).

SQLite cannot drop a NOT NULL in place: batch mode copies the firing table (no trigger and no
foreign key refers to it). PostgreSQL: ALTER COLUMN ... DROP NOT NULL, no rewrite.

Revision ID: 0023_i16s
Revises: 0022_lead
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0023_i16s"
down_revision = "0022_lead"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("firing") as b:
        b.add_column(sa.Column("facts_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        b.alter_column("facts", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    # rows stored by reference get their snapshot back inline before the column is dropped
    body = "body::json" if op.get_bind().dialect.name == "postgresql" else "body"
    op.execute(f"UPDATE firing SET facts = (SELECT {body} FROM audit_blob WHERE sha256 = firing.facts_sha256) "
               "WHERE facts IS NULL AND facts_sha256 IS NOT NULL")
    with op.batch_alter_table("firing") as b:
        b.alter_column("facts", existing_type=sa.JSON(), nullable=False)
        b.drop_column("facts_sha256")

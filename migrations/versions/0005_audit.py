"""audit log (hash-chained events, content-addressed sources), supervision, retention

Revision ID: 0005
Revises: 0001

Audit rows are append-only: triggers refuse UPDATE and DELETE on both SQLite and
PostgreSQL (so not even the table owner can change a row without first dropping or
disabling the trigger, which needs DDL rights and leaves the chain to catch it). On
PostgreSQL the `steward_app` role (the application's role) may read and insert audit
rows but has no UPDATE, DELETE or TRUNCATE privilege on them.
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_event", "audit_blob")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION steward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % is not allowed (audit rows are never changed)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""

PG_ROLE = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'steward_app') THEN
    CREATE ROLE steward_app NOLOGIN;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO steward_app', current_schema());
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO steward_app', current_schema());
  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO steward_app', current_schema());
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO steward_app', current_schema());
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO steward_app', current_schema());
  REVOKE UPDATE, DELETE, TRUNCATE ON audit_event, audit_blob FROM steward_app;
  GRANT SELECT, INSERT ON audit_event, audit_blob TO steward_app;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE WARNING 'steward: cannot create or grant the steward_app role (%); the triggers still protect the audit tables', SQLERRM;
END $$;
"""


def _create_tables() -> None:
    op.create_table("audit_event",
    sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
    sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("advisor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("rule_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column("rule_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("template_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("firing_id", sa.Integer(), nullable=True),
    sa.Column("as_of", sa.Date(), nullable=True),
    sa.Column("segment", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column("rule_class", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint("seq"),
    sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_client_at", ["client_id", "at"], unique=False)
        batch_op.create_index("ix_audit_event_rule", ["rule_id", "rule_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_advisor_id"), ["advisor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_firing_id"), ["firing_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_as_of"), ["as_of"], unique=False)

    op.create_table("audit_blob",
    sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("sha256"),
    )


def _create_supervision_and_retention() -> None:
    op.create_table("supervision_review",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("firing_id", sa.Integer(), nullable=False),
    sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column("risk", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column("rate", sa.Float(), nullable=False),
    sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("supervisor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("assigned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column("due_on", sa.Date(), nullable=False),
    sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("firing_id"),
    )
    with op.batch_alter_table("supervision_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supervision_review_day"), ["day"], unique=False)
        batch_op.create_index(batch_op.f("ix_supervision_review_supervisor_id"), ["supervisor_id"], unique=False)

    op.create_table("legal_hold",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("placed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column("placed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column("released_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column("released_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_hold_client_id"), ["client_id"], unique=False)


def _protect() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for t in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                       "FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only()")
            op.execute(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION steward_audit_append_only()")
        op.execute(PG_ROLE)
    else:
        for t in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {t}_no_{verb.lower()} BEFORE {verb} ON {t} BEGIN "
                           f"SELECT RAISE(ABORT, '{t} is append-only: {verb} is not allowed'); END")


def upgrade() -> None:
    _create_tables()
    _create_supervision_and_retention()
    _protect()


def downgrade() -> None:
    bind = op.get_bind()
    for t in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}")
            op.execute(f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
    op.drop_table("legal_hold")
    op.drop_table("supervision_review")
    op.drop_table("audit_blob")
    op.drop_table("audit_event")
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS steward_audit_append_only()")

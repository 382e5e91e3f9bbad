"""i11 identity: password hashes and lockout on app_user, auth_token (console sessions, CLI tokens)

Revision ID: 0011_i11_identity
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0011_i11_identity"
down_revision = "0003"
branch_labels = None
depends_on = None


def _s(n: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n) if n else sqlmodel.sql.sqltypes.AutoString()


def _canonical_names() -> None:
    """User names are canonical from now on (NFKC + case-fold; stored names were ASCII, so lower() is exact).

    Two users whose names differ only by case are one person under the new rule: refuse to guess
    which is real. Proposals and approvals keep the names as recorded (they are compared canonically).
    """
    conn = op.get_bind()
    names = [r[0] for r in conn.execute(sa.text("SELECT name FROM app_user"))]
    seen: dict[str, str] = {}
    clashes = []
    for n in names:
        if n.lower() in seen:
            clashes.append(f"{seen[n.lower()]!r} and {n!r}")
        seen[n.lower()] = n
    if clashes:
        raise RuntimeError("app_user: user names are now case-insensitive, and these are one name: "
                           + "; ".join(clashes) + ". Rename or delete one of each pair in app_user, then upgrade again.")
    op.execute("UPDATE app_user SET name = lower(name) WHERE name <> lower(name)")


def upgrade() -> None:
    ts = sqlmodel.sql.sqltypes.UTCDateTime()
    with op.batch_alter_table("app_user") as b:
        b.add_column(sa.Column("password_hash", _s(), nullable=True))
        b.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        b.add_column(sa.Column("locked_until", ts, nullable=True))
        b.add_column(sa.Column("advisor_id", _s(32), nullable=True))
    _canonical_names()
    op.create_table(
        "auth_token",
        sa.Column("token_hash", _s(64), nullable=False),
        sa.Column("user_name", _s(64), nullable=False),
        sa.Column("kind", _s(16), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
        sa.Column("last_seen_at", ts, nullable=False),
        sa.Column("revoked_at", ts, nullable=True),
        sa.Column("csrf", _s(64), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_auth_token_user_name"), "auth_token", ["user_name"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_token_user_name"), table_name="auth_token")
    op.drop_table("auth_token")
    with op.batch_alter_table("app_user") as b:
        for c in ("advisor_id", "locked_until", "failed_logins", "must_change_password", "password_hash"):
            b.drop_column(c)

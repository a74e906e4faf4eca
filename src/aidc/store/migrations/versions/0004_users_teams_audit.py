"""Users, teams and role bindings; tokens belong to a user and may expire or be scoped; the audit log.

Tokens issued before this revision had a role of their own: each becomes a user of the token's name with
that role in the whole cluster, so every token that signed in before still signs in with the same rights.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


# Only PostgreSQL can refuse changes to rows by itself; on SQLite `aidc audit verify` finds them.
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION aidc_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION aidc_audit_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION aidc_audit_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("disabled_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "teams",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_teams")),
    )
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(63), nullable=True),
        sa.Column("models", sa.Text(), server_default="[]", nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(["user"], ["users.name"], name=op.f("fk_role_bindings_user_users")),
        sa.ForeignKeyConstraint(["team"], ["teams.name"], name=op.f("fk_role_bindings_team_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_bindings")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_role_bindings_user", "role_bindings", ["user"], unique=False)
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(63), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    op.create_index("ix_audit_records_at", "audit_records", ["at"], unique=False)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(63), nullable=True))
        batch_op.create_foreign_key(op.f("fk_queues_team_teams"), "teams", ["team"], ["name"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user", sa.String(63), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", _utc(), nullable=True))
        batch_op.add_column(sa.Column("clients", sa.Text(), server_default="[]", nullable=False))

    bind = op.get_bind()
    now = datetime.now(UTC)
    tokens = sa.table(
        "api_tokens",
        sa.column("id", sa.Integer),
        sa.column("name", sa.Text),
        sa.column("role", sa.Text),
        sa.column("user", sa.String),
    )
    users = sa.table("users", sa.column("name", sa.String), sa.column("created_at", _utc()))
    bindings = sa.table(
        "role_bindings",
        sa.column("user", sa.String),
        sa.column("role", sa.String),
        sa.column("team", sa.String),
        sa.column("created_at", _utc()),
    )
    seen: set[tuple[str, str]] = set()
    for token_id, name, role in bind.execute(sa.select(tokens.c.id, tokens.c.name, tokens.c.role)).all():
        user = str(name)[:63]
        if not any(u == user for u, _ in seen):
            bind.execute(users.insert().values(name=user, created_at=now))
        if (user, role) not in seen:
            bind.execute(bindings.insert().values(user=user, role=role, team=None, created_at=now))
            seen.add((user, role))
        bind.execute(tokens.update().where(tokens.c.id == token_id).values(user=user))

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("user", existing_type=sa.String(63), nullable=False)
        batch_op.drop_column("role")
        batch_op.create_index("ix_api_tokens_user", ["user"], unique=False)
    if bind.dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records")
        op.execute("DROP TRIGGER IF EXISTS audit_records_append_only ON audit_records")
        op.execute("DROP FUNCTION IF EXISTS aidc_audit_append_only()")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.Text(), server_default="admin", nullable=False))
        batch_op.drop_index("ix_api_tokens_user")
        batch_op.drop_column("clients")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
        batch_op.drop_column("user")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_queues_team_teams"), type_="foreignkey")
        batch_op.drop_column("team")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_records_at", table_name="audit_records")
    op.drop_table("audit_records")
    op.drop_index("ix_role_bindings_user", table_name="role_bindings")
    op.drop_table("role_bindings")
    op.drop_table("teams")
    op.drop_table("users")

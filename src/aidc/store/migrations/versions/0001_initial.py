"""The initial schema: jobs, attempts, queues, nodes, api_tokens; and the `default` queue.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("submitted_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("started_at", _utc()),
        sa.Column("ended_at", _utc()),
        sa.Column("attempts_made", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pending_reason", sa.Text()),
        sa.Column("state_reason", sa.Text()),
        sa.Column("not_before", _utc()),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_queue_state", "jobs", ["queue", "state"])

    op.create_table(
        "attempts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Text(), nullable=False),
        sa.Column("gpus", sa.Text(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc()),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("reason", sa.Text()),
        sa.PrimaryKeyConstraint("job_id", "number", name="pk_attempts"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_attempts_job_id_jobs", ondelete="CASCADE"),
    )
    op.create_index(
        "ix_attempts_open",
        "attempts",
        ["job_id"],
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )

    queues = op.create_table(
        "queues",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("quota", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("created_at", _utc()),
        sa.PrimaryKeyConstraint("name", name="pk_queues"),
    )

    op.create_table(
        "nodes",
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("cpus", sa.Float(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("gpus", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("backend", sa.Text()),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("last_seen", _utc()),
        sa.PrimaryKeyConstraint("name", name="pk_nodes"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc()),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sqlite_autoincrement=True,
    )

    # Every installation has the `default` queue: no quota, weight 1. SQLite keeps naive UTC text
    # (the driver drops the zone), PostgreSQL a timestamptz: both what UtcDateTime reads back.
    op.bulk_insert(
        queues,
        [{"name": "default", "quota": "{}", "weight": 1.0, "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("nodes")
    op.drop_table("queues")
    op.drop_index("ix_attempts_open", table_name="attempts")
    op.drop_table("attempts")
    op.drop_index("ix_jobs_queue_state", table_name="jobs")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_table("jobs")

"""Scheduler fields: queue cohorts, borrowing/lending limits and time-sharing; when a job last entered its
queue and how often it was preempted; an index to read recently ended attempts at start.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only columns with a default or NULL are added: SQLite adds them in place (no table rebuild).
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index("ix_attempts_ended_at", ["ended_at"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("preemptions", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cohort", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("policy", sa.Text(), server_default="{}", nullable=False))

    # Jobs submitted before this migration entered their queue when they were submitted.
    op.execute(sa.text("UPDATE jobs SET queued_at = submitted_at WHERE queued_at IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_column("policy")
        batch_op.drop_column("cohort")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("preemptions")
        batch_op.drop_column("queued_at")

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_ended_at")

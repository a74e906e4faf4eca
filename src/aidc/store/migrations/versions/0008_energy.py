"""Energy usage per attempt, node and hour; GPU power caps applied for attempts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "energy_usage",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("user", sa.Text(), nullable=True),
        sa.Column("queue", sa.String(63), nullable=True),
        sa.Column("team", sa.String(63), nullable=True),
        sa.Column("gpu_j_measured", sa.Float(), nullable=False),
        sa.Column("gpu_j_estimated", sa.Float(), nullable=False),
        sa.Column("cpu_j_measured", sa.Float(), nullable=False),
        sa.Column("cpu_j_estimated", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("facility_j", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("carbon_kg", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("hour", "node", "job_id", "attempt", name=op.f("pk_energy_usage")),
    )
    op.create_index("ix_energy_usage_job", "energy_usage", ["job_id"])
    op.create_table(
        "power_caps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("limit_watts", sa.Float(), nullable=False),
        sa.Column("previous_watts", sa.Float(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_power_caps")),
    )
    op.create_index("ix_power_caps_job", "power_caps", ["job_id", "attempt"])


def downgrade() -> None:
    op.drop_index("ix_power_caps_job", table_name="power_caps")
    op.drop_table("power_caps")
    op.drop_index("ix_energy_usage_job", table_name="energy_usage")
    op.drop_table("energy_usage")

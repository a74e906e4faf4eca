"""Energy usage per attempt, node and hour.

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


def downgrade() -> None:
    op.drop_index("ix_energy_usage_job", table_name="energy_usage")
    op.drop_table("energy_usage")

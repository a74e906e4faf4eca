"""Model deployments, their versions and replicas, gateway reports, token usage; attempts' endpoints.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint", sa.Text(), nullable=True))
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollout", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployments")),
    )
    op.create_table(
        "deployment_versions",
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment", "version", name=op.f("pk_deployment_versions")),
    )
    op.create_table(
        "deployment_replicas",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("retired", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_deployment_replicas_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_deployment_replicas")),
    )
    op.create_index("ix_deployment_replicas_deployment", "deployment_replicas", ["deployment"])
    op.create_table(
        "gateway_reports",
        sa.Column("gateway", sa.String(128), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "job_id", name=op.f("pk_gateway_reports")),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("team", sa.String(63), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage")),
    )
    op.create_index("ix_usage_minute", "usage", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_usage_minute", table_name="usage")
    op.drop_table("usage")
    op.drop_table("gateway_reports")
    op.drop_index("ix_deployment_replicas_deployment", table_name="deployment_replicas")
    op.drop_table("deployment_replicas")
    op.drop_table("deployment_versions")
    op.drop_table("deployments")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("endpoint")

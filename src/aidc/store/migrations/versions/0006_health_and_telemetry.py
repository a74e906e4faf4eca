"""Node health (state reasons, incidents), jobs' interruptions, alert history and downsampled metric history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("state_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("held_state", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("held_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("incidents_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("interruptions", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "node_incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(63), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_node_incidents_node_at", "node_incidents", ["node", "at"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("alertname", sa.String(253), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("annotations", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("active_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    op.create_table(
        "metric_history",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Float(), nullable=False),  # Unix seconds of the bucket's start
        sa.Column("avg", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_metric_history_name_bucket", "metric_history", ["name", "bucket"])


def downgrade() -> None:
    op.drop_index("ix_metric_history_name_bucket", table_name="metric_history")
    op.drop_table("metric_history")
    op.drop_index("ix_alert_events_at", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_node_incidents_node_at", table_name="node_incidents")
    op.drop_table("node_incidents")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("interruptions")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("incidents_since")
        batch_op.drop_column("held_reason")
        batch_op.drop_column("held_state")
        batch_op.drop_column("state_since")
        batch_op.drop_column("state_reason")

"""Alert silences and acknowledgements.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(253), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])
    op.create_table(
        "alert_acks",
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("alertname", sa.String(253), nullable=False),
        sa.Column("by", sa.String(253), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_alert_acks")),
    )


def downgrade() -> None:
    op.drop_table("alert_acks")
    op.drop_index("ix_alert_silences_ends_at", table_name="alert_silences")
    op.drop_table("alert_silences")

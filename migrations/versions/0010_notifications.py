"""notifications: each user's destinations (§4e) with their last delivery

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 18:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_destinations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_sealed", sa.Text(), nullable=False),
        sa.Column("target_masked", sa.String(300), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("events", JSONB(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivery_event", sa.String(32), nullable=True),
        sa.Column("last_delivery_ok", sa.Boolean(), nullable=True),
        sa.Column("last_delivery_error", sa.Text(), nullable=True),
        sa.Column("deliveries_ok", sa.Integer(), nullable=False),
        sa.Column("deliveries_failed", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_destinations")

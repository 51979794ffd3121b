"""a signal's timeline and the user's time zone: when the broker accepted each order (kept apart
from when it filled), and the zone every page shows times in

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("order_intents", sa.Column("accepted_at", sa.DateTime(timezone=True)))
    op.add_column(
        "users",
        sa.Column("time_zone", sa.String(64), nullable=False, server_default="America/Chicago"),
    )


def downgrade() -> None:
    op.drop_column("users", "time_zone")
    op.drop_column("order_intents", "accepted_at")

"""tradingview credentials: the operator's TradingView sign-in (encrypted) with which the price
feed renews its session by itself, and where each stored session came from

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tradingview_sessions",
        sa.Column("source", sa.String(16), nullable=False, server_default="cookies"),
    )
    op.create_table(
        "tradingview_credentials",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("secrets_encrypted", sa.Text(), nullable=False),
        sa.Column("username_hint", sa.String(16), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("renewals_stopped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("tradingview_credentials")
    op.drop_column("tradingview_sessions", "source")

"""account risk: a subaccount's limits, its lock and the highest balance seen; when a trader or
a subaccount was last flattened

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 16)


def upgrade() -> None:
    op.add_column("subaccounts", sa.Column("locked_until", sa.Date(), nullable=True))
    op.add_column("subaccounts", sa.Column("lock_reason", sa.Text(), nullable=True))
    op.add_column("subaccounts", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "subaccounts", sa.Column("flattened_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "subaccounts", sa.Column("high_balance", MONEY, nullable=False, server_default="0")
    )
    op.add_column("traders", sa.Column("flat_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "trader_skips",
        sa.Column("trader_id", sa.Integer(), nullable=False),
        sa.Column("position_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["trader_id"], ["traders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trader_id", "position_id"),
    )
    op.create_table(
        "subaccount_risk",
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("daily_loss_limit", MONEY, nullable=True),
        sa.Column("daily_profit_target", MONEY, nullable=True),
        sa.Column("trailing_drawdown", MONEY, nullable=True),
        sa.Column("max_trades_per_day", sa.Integer(), nullable=True),
        sa.Column("max_contracts", sa.Integer(), nullable=True),
        sa.Column("pending", postgresql.JSONB(), nullable=True),
        sa.Column("pending_from", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subaccount_id"),
    )


def downgrade() -> None:
    op.drop_table("subaccount_risk")
    op.drop_table("trader_skips")
    op.drop_column("traders", "flat_since")
    for column in ("high_balance", "flattened_at", "locked_at", "lock_reason", "locked_until"):
        op.drop_column("subaccounts", column)

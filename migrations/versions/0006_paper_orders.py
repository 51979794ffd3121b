"""paper orders and fills: working orders per trader (shared subaccounts, resting limits); the
trader's size on an intent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PRICE = sa.Numeric(30, 12)
MONEY = sa.Numeric(38, 16)
QTY = sa.Numeric(18, 6)


def upgrade() -> None:
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("intent_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", QTY, nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("oco_group", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("fill_price", PRICE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_paper_orders_working",
        "paper_orders",
        ["symbol"],
        postgresql_where=sa.text("status = 'working'"),
    )
    op.create_index(
        "ix_paper_orders_subaccount", "paper_orders", ["subaccount_id", "contract", "status"]
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("intent_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", QTY, nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("realized_pnl", MONEY, nullable=False),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_paper_fills_subaccount_time", "paper_fills", ["subaccount_id", "filled_at"])
    # The brackets a paper book rested become working orders of no trader (an OCO group each).
    op.execute(
        """
        INSERT INTO paper_orders (subaccount_id, contract, symbol, role, side, quantity,
                                  order_type, price, oco_group, status, created_at)
        SELECT subaccount_id, contract, symbol, 'target',
               CASE WHEN net_qty > 0 THEN 'sell' ELSE 'buy' END, abs(net_qty), 'limit', tp_price,
               'book-' || subaccount_id || '-' || contract, 'working', now()
        FROM paper_positions WHERE net_qty <> 0 AND tp_price IS NOT NULL
        """
    )
    op.execute(
        """
        INSERT INTO paper_orders (subaccount_id, contract, symbol, role, side, quantity,
                                  order_type, price, oco_group, status, created_at)
        SELECT subaccount_id, contract, symbol, 'stop',
               CASE WHEN net_qty > 0 THEN 'sell' ELSE 'buy' END, abs(net_qty), 'stop', sl_price,
               'book-' || subaccount_id || '-' || contract, 'working', now()
        FROM paper_positions WHERE net_qty <> 0 AND sl_price IS NOT NULL
        """
    )
    op.drop_column("paper_positions", "targets")
    op.drop_column("paper_positions", "sl_price")
    op.drop_column("paper_positions", "tp_price")
    op.add_column("order_intents", sa.Column("position_quantity", QTY, nullable=True))


def downgrade() -> None:
    op.drop_column("order_intents", "position_quantity")
    op.add_column("paper_positions", sa.Column("tp_price", PRICE, nullable=True))
    op.add_column("paper_positions", sa.Column("sl_price", PRICE, nullable=True))
    op.add_column("paper_positions", sa.Column("targets", postgresql.JSONB(), nullable=True))
    op.drop_index("ix_paper_fills_subaccount_time", table_name="paper_fills")
    op.drop_table("paper_fills")
    op.drop_index("ix_paper_orders_subaccount", table_name="paper_orders")
    op.drop_index("ix_paper_orders_working", table_name="paper_orders")
    op.drop_table("paper_orders")

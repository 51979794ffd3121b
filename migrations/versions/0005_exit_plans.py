"""exit plans: a recorder's plan, a position's plan state, stop moves, target legs of orders

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PRICE = sa.Numeric(30, 12)


def upgrade() -> None:
    op.add_column("recorders", sa.Column("exits", postgresql.JSONB(), nullable=True))
    op.add_column("positions", sa.Column("exit_plan", postgresql.JSONB(), nullable=True))
    op.add_column("positions", sa.Column("plan_state", postgresql.JSONB(), nullable=True))
    op.add_column("positions", sa.Column("stop_reason", sa.String(length=10), nullable=True))
    op.add_column("order_intents", sa.Column("targets", postgresql.JSONB(), nullable=True))
    op.alter_column("order_intents", "kind", type_=sa.String(length=16))  # move_target
    op.add_column("paper_positions", sa.Column("targets", postgresql.JSONB(), nullable=True))
    op.create_table(
        "stop_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position_id", sa.Integer(), nullable=False),
        sa.Column("stop_price", PRICE, nullable=False),
        sa.Column("reason", sa.String(length=10), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stop_moves_position_id", "stop_moves", ["position_id"])


def downgrade() -> None:
    op.drop_index("ix_stop_moves_position_id", table_name="stop_moves")
    op.drop_table("stop_moves")
    op.drop_column("paper_positions", "targets")
    op.alter_column("order_intents", "kind", type_=sa.String(length=10))
    op.drop_column("order_intents", "targets")
    op.drop_column("positions", "stop_reason")
    op.drop_column("positions", "plan_state")
    op.drop_column("positions", "exit_plan")
    op.drop_column("recorders", "exits")

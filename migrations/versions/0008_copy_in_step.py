"""copy trading in step: inverted and mapped followers with a maximum, drift and realignment

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "copy_groups",
        sa.Column("realign", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "copy_groups",
        sa.Column("follow_risk_lock", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "copy_followers",
        sa.Column("inverted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("copy_followers", sa.Column("symbol_map", postgresql.JSONB(), nullable=True))
    op.add_column("copy_followers", sa.Column("max_contracts", sa.Integer(), nullable=True))
    op.add_column("copy_followers", sa.Column("out_of_step", sa.Text(), nullable=True))
    op.add_column(
        "copy_followers", sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    for column in ("checked_at", "out_of_step", "max_contracts", "symbol_map", "inverted"):
        op.drop_column("copy_followers", column)
    op.drop_column("copy_groups", "follow_risk_lock")
    op.drop_column("copy_groups", "realign")

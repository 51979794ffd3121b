"""stream offsets: how far the engine has applied each stream

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 15:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_offsets",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "group_name"),
    )


def downgrade() -> None:
    op.drop_table("stream_offsets")

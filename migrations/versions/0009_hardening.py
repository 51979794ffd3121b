"""hardening: login sessions that end, operators, size limits, the manual ticket's confirmation

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# A trader saved before this migration had no cap; it gets the recorders' default maximum, so no
# strategy that ran within the new recorder limit is cut down by the upgrade.
EXISTING_TRADER_CAP = 100


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        # sha256 of the random id the browser's signed cookie carries: a leaked table lets no
        # one in.
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(32), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
    )
    op.add_column(
        "users", sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "users",
        sa.Column("manual_confirm_above", sa.Integer(), nullable=False, server_default="5"),
    )
    op.add_column(
        "recorders",
        sa.Column("max_qty", sa.Numeric(18, 6), nullable=False, server_default="100"),
    )
    op.execute(
        f"UPDATE traders SET max_contracts = {EXISTING_TRADER_CAP} WHERE max_contracts IS NULL"
    )
    op.alter_column("traders", "max_contracts", nullable=False, server_default="10")


def downgrade() -> None:
    op.alter_column("traders", "max_contracts", nullable=True, server_default=None)
    op.drop_column("recorders", "max_qty")
    for column in ("manual_confirm_above", "password_changed_at", "is_admin"):
        op.drop_column("users", column)
    op.drop_table("login_sessions")

"""signal path tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24 09:21:38.669497
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"], unique=False)
    op.create_table(
        "recorders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("webhook_token", sa.String(length=64), nullable=False),
        sa.Column("default_qty", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("tp_ticks", sa.Integer(), nullable=True),
        sa.Column("sl_ticks", sa.Integer(), nullable=True),
        sa.Column("on_opposite", sa.String(length=10), nullable=False),
        sa.Column("allow_dca", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("allow_delayed_exits", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook_token"),
    )
    op.create_index(op.f("ix_recorders_user_id"), "recorders", ["user_id"], unique=False)
    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=5), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("avg_entry_price", sa.Numeric(precision=30, scale=12), nullable=False),
        sa.Column("entry_cost", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("tp_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("sl_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("status", sa.String(length=6), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("exit_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("exit_reason", sa.String(length=10), nullable=True),
        sa.Column("max_favorable", sa.Numeric(precision=30, scale=12), nullable=False),
        sa.Column("max_adverse", sa.Numeric(precision=30, scale=12), nullable=False),
        sa.Column("worst_unrealized_pnl", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("best_unrealized_pnl", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["recorder_id"], ["recorders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_positions_recorder_closed", "positions", ["recorder_id", "closed_at"], unique=False
    )
    op.create_index(
        "ix_positions_symbol_open",
        "positions",
        ["symbol"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "uq_positions_open_per_symbol",
        "positions",
        ["recorder_id", "symbol"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position_id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("price", sa.Numeric(precision=30, scale=12), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("reason", sa.String(length=10), nullable=True),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_fills_position_id"), "fills", ["position_id"], unique=False)
    op.create_table(
        "signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=True),
        sa.Column("ticker", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("qty", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("position_size", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("market_position", sa.String(length=10), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("position_id", sa.Integer(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["recorder_id"], ["recorders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_signals_recorder_received", "signals", ["recorder_id", "received_at"], unique=False
    )


def downgrade() -> None:

    op.drop_index("ix_signals_recorder_received", table_name="signals")
    op.drop_table("signals")
    op.drop_index(op.f("ix_fills_position_id"), table_name="fills")
    op.drop_table("fills")
    op.drop_index(
        "uq_positions_open_per_symbol",
        table_name="positions",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index(
        "ix_positions_symbol_open",
        table_name="positions",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index("ix_positions_recorder_closed", table_name="positions")
    op.drop_table("positions")
    op.drop_index(op.f("ix_recorders_user_id"), table_name="recorders")
    op.drop_table("recorders")
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")

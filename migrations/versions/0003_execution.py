"""execution

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:59:43.494746
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("broker", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("environment", sa.String(length=8), nullable=True),
        sa.Column("auth_method", sa.String(length=12), nullable=True),
        sa.Column("credentials_encrypted", sa.Text(), nullable=True),
        sa.Column("access_token_encrypted", sa.Text(), nullable=True),
        sa.Column("md_access_token_encrypted", sa.Text(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("broker_user_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_accounts_user_id"), "accounts", ["user_id"], unique=False)
    op.create_table(
        "subaccounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("broker_account_id", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("risk_status", sa.String(length=16), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_subaccounts_broker_id", "subaccounts", ["account_id", "broker_account_id"], unique=True
    )
    op.create_table(
        "copy_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("leader_subaccount_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["leader_subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("leader_subaccount_id"),
    )
    op.create_index(op.f("ix_copy_groups_user_id"), "copy_groups", ["user_id"], unique=False)
    op.create_table(
        "paper_positions",
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("net_qty", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("avg_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("tp_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("sl_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subaccount_id", "contract"),
    )
    op.create_index(op.f("ix_paper_positions_symbol"), "paper_positions", ["symbol"], unique=False)
    op.create_table(
        "traders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_contracts", sa.Integer(), nullable=True),
        sa.Column("daily_loss_limit", sa.Numeric(precision=38, scale=16), nullable=True),
        sa.Column("window_start", sa.String(length=5), nullable=True),
        sa.Column("window_end", sa.String(length=5), nullable=True),
        sa.Column("window_tz", sa.String(length=64), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["recorder_id"], ["recorders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_traders_recorder_id"), "traders", ["recorder_id"], unique=False)
    op.create_index(op.f("ix_traders_user_id"), "traders", ["user_id"], unique=False)
    op.create_index(
        "uq_traders_recorder_subaccount", "traders", ["recorder_id", "subaccount_id"], unique=True
    )
    op.create_table(
        "copy_followers",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["copy_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "subaccount_id"),
    )
    op.create_table(
        "order_intents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("subaccount_id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("ticker", sa.String(length=64), nullable=True),
        sa.Column("contract", sa.String(length=32), nullable=True),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("limit_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("tp_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("sl_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("priority", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("cl_ord_id", sa.String(length=64), nullable=False),
        sa.Column("broker_order_id", sa.String(length=40), nullable=True),
        sa.Column("fill_price", sa.Numeric(precision=30, scale=12), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subaccount_id"], ["subaccounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trader_id"], ["traders.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cl_ord_id"),
        sa.UniqueConstraint("sequence"),
    )
    op.create_index(
        "ix_intents_subaccount_status",
        "order_intents",
        ["subaccount_id", "status", "sequence"],
        unique=False,
    )
    op.create_index("ix_intents_trader", "order_intents", ["trader_id", "created_at"], unique=False)


def downgrade() -> None:

    op.drop_index("ix_intents_trader", table_name="order_intents")
    op.drop_index("ix_intents_subaccount_status", table_name="order_intents")
    op.drop_table("order_intents")
    op.drop_table("copy_followers")
    op.drop_index("uq_traders_recorder_subaccount", table_name="traders")
    op.drop_index(op.f("ix_traders_user_id"), table_name="traders")
    op.drop_index(op.f("ix_traders_recorder_id"), table_name="traders")
    op.drop_table("traders")
    op.drop_index(op.f("ix_paper_positions_symbol"), table_name="paper_positions")
    op.drop_table("paper_positions")
    op.drop_index(op.f("ix_copy_groups_user_id"), table_name="copy_groups")
    op.drop_table("copy_groups")
    op.drop_index("uq_subaccounts_broker_id", table_name="subaccounts")
    op.drop_table("subaccounts")
    op.drop_index(op.f("ix_accounts_user_id"), table_name="accounts")
    op.drop_table("accounts")

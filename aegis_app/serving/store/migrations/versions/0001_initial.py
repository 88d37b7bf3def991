"""decisions and labels

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aegis_app.serving.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("transaction_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("terminal_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_amount", sa.Float(), nullable=False),
        sa.Column("tx_datetime", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("ingested_ms", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("stored_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.Column("label_note", sa.Text(), nullable=True),
        sa.Column("labelled_at", UTCDateTime(), nullable=True),
        sa.Column("labelled_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_decisions_action", "decisions", ["action"])
    op.create_index("ix_decisions_status", "decisions", ["status"])
    op.create_index("ix_decisions_score", "decisions", ["score"])
    op.create_index("ix_decisions_decided_at", "decisions", ["decided_at", "transaction_id"])
    op.create_index("ix_decisions_customer_id", "decisions", ["customer_id", "decided_at"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("analyst", sa.String(128), nullable=True),
        sa.Column("known_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_labels_transaction_id", "labels", ["transaction_id"])


def downgrade() -> None:
    op.drop_index("ix_labels_transaction_id", table_name="labels")
    op.drop_table("labels")
    for name in ("customer_id", "decided_at", "score", "status", "action"):
        op.drop_index(f"ix_decisions_{name}", table_name="decisions")
    op.drop_table("decisions")

"""event-time index on decisions; stream labels de-duplicated by (transaction, source, time)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Retraining and drift read decisions by event-time window.
    op.create_index("ix_decisions_tx_datetime", "decisions", ["tx_datetime"])
    # The sink re-reads aegis.labels after a restart: this key makes a re-read a no-op.
    op.create_index(
        "ix_labels_transaction_source_known",
        "labels",
        ["transaction_id", "source", "known_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_labels_transaction_source_known", table_name="labels")
    op.drop_index("ix_decisions_tx_datetime", table_name="decisions")

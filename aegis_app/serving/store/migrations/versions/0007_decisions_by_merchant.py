"""decisions by merchant: an index on decisions (merchant, decided_at)

The review queue filters alerts by merchant and searches a text among transaction id,
card and merchant, newest first; the card and the transaction id have their indexes
already.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_decisions_merchant", "decisions", ["merchant", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_merchant", table_name="decisions")

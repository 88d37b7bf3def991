"""decision rules: the rules each decision names, and one row per hit of an analyst rule

Decisions get `rules` (JSON: every rule that matched, shadow ones flagged; `[]` for the
rows stored before). decision_rule_hits holds one row per decision and matching rule of
the rules table (the rules file's checks have no id there), indexed by rule and event day
for "decisions of this rule" and the per-rule statistics.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aegis_app.serving.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.String(256)  # MAX_ID_CHARS when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("rules", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "decision_rule_hits",
        sa.Column("transaction_id", ID, primary_key=True),
        sa.Column("rule_id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_decision_rule_hits_rule_day", "decision_rule_hits", ["rule_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_decision_rule_hits_rule_day", table_name="decision_rule_hits")
    op.drop_table("decision_rule_hits")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("rules")

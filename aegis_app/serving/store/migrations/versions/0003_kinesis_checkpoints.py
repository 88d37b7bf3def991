"""Kinesis shard checkpoints of `aegis ingest kinesis`

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aegis_app.serving.store.models import KINESIS_SEQUENCE_LENGTH, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kinesis_checkpoints",
        sa.Column("stream_name", sa.String(128), primary_key=True),
        sa.Column("shard_id", sa.String(128), primary_key=True),
        sa.Column("sequence_number", sa.String(KINESIS_SEQUENCE_LENGTH), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kinesis_checkpoints")

"""records v2: text ids, card/merchant/amount, the record's fields and entity keys

Decisions: transaction_id, card (was customer_id) and merchant (was terminal_id) become
text, tx_amount is renamed amount, and ts (epoch seconds), fields (the config's extra
fields) and entities (entity name -> key) are added. Labels: transaction_id becomes text,
and card and entities are added.

Rows stored before this revision are Handbook transactions (the only schema Aegis read
then), whose entities under configs/handbook.toml are "card" (the card) and "terminal"
(the merchant): they get those keys, no extra fields, and ts from tx_datetime; a label
gets its decision's card and entities (none when its decision is not stored).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The longest id aegis_app.core.labels accepts (MAX_ID_CHARS when this revision was written).
ID = sa.String(256)
BATCH = 1000


def _ts(tx_datetime: str) -> int:
    """Epoch seconds of a stored 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    return int(datetime.fromisoformat(tx_datetime).replace(tzinfo=UTC).timestamp())


def _as_text(column: str, new_name: str | None = None) -> dict:
    """alter_column arguments: an integer column to text (PostgreSQL needs the cast)."""
    args: dict = {"type_": ID, "existing_nullable": False, "postgresql_using": f"{column}::text"}
    if new_name is not None:
        args["new_column_name"] = new_name
    return args


def upgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_decisions_customer_id", table_name="decisions")
    with op.batch_alter_table("decisions") as batch:
        batch.alter_column(
            "transaction_id", existing_type=sa.BigInteger(), **_as_text("transaction_id")
        )
        batch.alter_column(
            "customer_id", existing_type=sa.BigInteger(), **_as_text("customer_id", "card")
        )
        batch.alter_column(
            "terminal_id", existing_type=sa.BigInteger(), **_as_text("terminal_id", "merchant")
        )
        batch.alter_column("tx_amount", new_column_name="amount", existing_type=sa.Float())
        batch.add_column(sa.Column("ts", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("fields", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("entities", sa.JSON(), nullable=True))
    with op.batch_alter_table("labels") as batch:
        batch.alter_column(
            "transaction_id", existing_type=sa.BigInteger(), **_as_text("transaction_id")
        )
        batch.add_column(sa.Column("card", ID, nullable=True))
        batch.add_column(sa.Column("entities", sa.JSON(), nullable=True))

    decisions = sa.table(
        "decisions",
        sa.column("transaction_id", ID),
        sa.column("card", ID),
        sa.column("merchant", ID),
        sa.column("tx_datetime", sa.String(32)),
        sa.column("ts", sa.BigInteger()),
        sa.column("fields", sa.JSON()),
        sa.column("entities", sa.JSON()),
    )
    labels = sa.table(
        "labels",
        sa.column("id", sa.Integer()),
        sa.column("transaction_id", ID),
        sa.column("card", ID),
        sa.column("entities", sa.JSON()),
    )
    # The old rows, in primary-key order, a batch at a time (the ids are text by now).
    update = (
        decisions.update()
        .where(decisions.c.transaction_id == sa.bindparam("tid"))
        .values(
            ts=sa.bindparam("ts"), fields=sa.bindparam("fields"), entities=sa.bindparam("entities")
        )
    )
    last: str | None = None
    while True:
        query = sa.select(
            decisions.c.transaction_id,
            decisions.c.card,
            decisions.c.merchant,
            decisions.c.tx_datetime,
        ).order_by(decisions.c.transaction_id)
        if last is not None:
            query = query.where(decisions.c.transaction_id > last)
        rows = bind.execute(query.limit(BATCH)).all()
        if not rows:
            break
        bind.execute(
            update,
            [
                {
                    "tid": tid,
                    "ts": _ts(tx_datetime),
                    "fields": {},
                    "entities": {"card": card, "terminal": merchant},
                }
                for tid, card, merchant, tx_datetime in rows
            ],
        )
        last = rows[-1][0]

    # A label takes its decision's card and entity keys.
    label_update = (
        labels.update()
        .where(labels.c.id == sa.bindparam("lid"))
        .values(card=sa.bindparam("card"), entities=sa.bindparam("entities"))
    )
    last_id = -1
    while True:
        rows = bind.execute(
            sa.select(labels.c.id, decisions.c.card, decisions.c.entities)
            .select_from(
                labels.outerjoin(decisions, decisions.c.transaction_id == labels.c.transaction_id)
            )
            .where(labels.c.id > last_id)
            .order_by(labels.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            label_update,
            [
                {"lid": lid, "card": card, "entities": entities or {}}
                for lid, card, entities in rows
            ],
        )
        last_id = rows[-1][0]

    with op.batch_alter_table("decisions") as batch:
        batch.alter_column("ts", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("fields", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("entities", existing_type=sa.JSON(), nullable=False)
    with op.batch_alter_table("labels") as batch:
        batch.alter_column("entities", existing_type=sa.JSON(), nullable=False)
    op.create_index("ix_decisions_card", "decisions", ["card", "decided_at"])


def downgrade() -> None:
    """Back to integer ids: only possible while every id is an integer's text."""
    op.drop_index("ix_decisions_card", table_name="decisions")
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("entities")
        batch.drop_column("card")
        batch.alter_column(
            "transaction_id",
            existing_type=ID,
            type_=sa.BigInteger(),
            postgresql_using="transaction_id::bigint",
        )
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("entities")
        batch.drop_column("fields")
        batch.drop_column("ts")
        batch.alter_column("amount", new_column_name="tx_amount", existing_type=sa.Float())
        for old, new in (("terminal_id", "merchant"), ("customer_id", "card")):
            batch.alter_column(
                new,
                new_column_name=old,
                existing_type=ID,
                type_=sa.BigInteger(),
                postgresql_using=f"{new}::bigint",
            )
        batch.alter_column(
            "transaction_id",
            existing_type=ID,
            type_=sa.BigInteger(),
            postgresql_using="transaction_id::bigint",
        )
    op.create_index("ix_decisions_customer_id", "decisions", ["customer_id", "decided_at"])

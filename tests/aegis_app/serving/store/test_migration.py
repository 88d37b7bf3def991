"""Revision 0004 on a store written before records v2 (integer Handbook ids), on SQLite and
PostgreSQL: every row is kept, converted to text ids with its card, merchant, event time
and entity keys, and the store takes records-v2 decisions afterwards. The migrations
build exactly what models.py declares; revision 0007 up and down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from aegis_app.serving.store import Store, upgrade
from aegis_app.serving.store.models import Base
from aegis_app.serving.store.repository import alembic_config
from tests.aegis_app.serving.store.test_repository import decision, sparkov_decision

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAIVE = "2026-01-01 12:00:00"  # how UTCDateTime keeps T0 on SQLite


def _old_store(engine: Engine) -> None:
    """Schema 0003 with rows as the pre-v2 sink and API wrote them."""
    upgrade(engine, "0003")
    at = NAIVE if engine.dialect.name == "sqlite" else T0
    decisions = [
        # (id, customer, terminal, amount, tx_datetime, action, status, label)
        (5, 2, 7, 12.5, "2018-04-01 00:00:31", "block", "labelled", 1),
        (12345678901, 40, 900, 3.0, "2018-04-02 10:00:00", "review", "open", None),
        (6, 2, 8, 80.0, "2018-04-03 00:00:00", "allow", None, None),
    ]
    with engine.begin() as connection:
        for tx, customer, terminal, amount, when, action, status, label in decisions:
            connection.execute(
                text(
                    "INSERT INTO decisions (transaction_id, customer_id, terminal_id, tx_amount,"
                    " tx_datetime, action, score, scores, reasons, model_version, features,"
                    " ingested_ms, decided_at, stored_at, status, label) VALUES (:tx, :c, :t,"
                    " :a, :when, :action, 0.99, '{\"ensemble\": 0.99}', '[\"MODEL\"]', 'v1',"
                    " '{\"TX_AMOUNT\": 1.0}', NULL, :at, :at, :status, :label)"
                ),
                {
                    "tx": tx,
                    "c": customer,
                    "t": terminal,
                    "a": amount,
                    "when": when,
                    "action": action,
                    "at": at,
                    "status": status,
                    "label": label,
                },
            )
        for tx, source in ((5, "analyst"), (5, "chargeback"), (77, "chargeback")):
            connection.execute(
                text(
                    "INSERT INTO labels (transaction_id, label, source, known_at)"
                    " VALUES (:tx, 1, :source, :at)"
                ),
                {"tx": tx, "source": source, "at": at},
            )


def test_old_rows_are_converted(engine: Engine):
    _old_store(engine)
    store = Store(engine=engine)  # migrates to head
    try:
        assert store.count_decisions() == 3 and store.count_labels() == 3
        row = store.get_decision("5")
        assert row["transaction_id"] == "5" and row["card"] == "2" and row["merchant"] == "7"
        assert row["amount"] == 12.5 and row["tx_datetime"] == "2018-04-01 00:00:31"
        assert row["ts"] == int(datetime(2018, 4, 1, 0, 0, 31, tzinfo=UTC).timestamp())
        assert row["fields"] == {}
        # the Handbook config's entities: card -> the card, terminal -> the merchant
        assert row["entities"] == {"card": "2", "terminal": "7"}
        assert row["status"] == "labelled" and row["label"] == 1
        assert row["features"] == {"TX_AMOUNT": 1.0} and row["decided_at"] == T0
        big = store.get_decision("12345678901")
        assert big["card"] == "40" and big["entities"] == {"card": "40", "terminal": "900"}
        assert big["status"] == "open"
        assert [r["transaction_id"] for r in store.card_decisions("2")] == ["6", "5"]
        assert [x["source"] for x in store.labels_for("5")] == ["analyst", "chargeback"]
        for label in store.labels_for("5"):
            assert label["card"] == "2" and label["entities"] == {"card": "2", "terminal": "7"}
        [orphan] = store.labels_for("77")  # its decision was never stored
        assert orphan["card"] is None and orphan["entities"] == {}
        window = ("2018-04-01 00:00:00", "2018-04-04 00:00:00")
        assert store.labels_known(*window) == {"5": 1}
        assert [r["transaction_id"] for r in store.training_rows(*window)] == [
            "5",
            "12345678901",
            "6",
        ]

        inspector = inspect(engine)
        indexes = {ix["name"] for ix in inspector.get_indexes("decisions")}
        assert indexes == {
            "ix_decisions_action",
            "ix_decisions_status",
            "ix_decisions_score",
            "ix_decisions_decided_at",
            "ix_decisions_card",
            "ix_decisions_merchant",
            "ix_decisions_tx_datetime",
        }
        assert {ix["name"] for ix in inspector.get_indexes("labels")} == {
            "ix_labels_transaction_id",
            "ix_labels_transaction_source_known",
        }
        columns = {c["name"]: c for c in inspector.get_columns("decisions")}
        assert not {"customer_id", "terminal_id", "tx_amount"} & set(columns)
        assert not any(columns[name]["nullable"] for name in ("ts", "fields", "entities"))

        # records-v2 decisions and labels go in beside the converted rows
        store.upsert_decisions([sparkov_decision("2da90c7d", seconds=60)])
        store.record_label("2da90c7d", 0, at=T0 + timedelta(hours=1))
        assert store.get_decision("2da90c7d")["status"] == "labelled"
        store.upsert_decisions([decision(5, "block")])  # a replayed old transaction
        assert store.count_decisions() == 4
        assert store.get_decision("5")["label"] == 1  # keeps its label
    finally:
        store.close()


def test_downgrade_returns_integer_ids(engine: Engine):
    _old_store(engine)
    upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0003")
    columns = {c["name"] for c in inspect(engine).get_columns("decisions")}
    assert {"customer_id", "terminal_id", "tx_amount"} <= columns
    assert not {"card", "merchant", "amount", "ts", "fields", "entities"} & columns
    with engine.connect() as connection:
        ids = connection.execute(
            text("SELECT transaction_id, customer_id FROM decisions ORDER BY transaction_id")
        ).all()
    assert [tuple(r) for r in ids] == [(5, 2), (6, 2), (12345678901, 40)]
    upgrade(engine)  # and up again
    store = Store(engine=engine, migrate=False)
    try:
        assert store.get_decision("6")["entities"] == {"card": "2", "terminal": "8"}
    finally:
        store.close()


def test_the_migrations_build_what_the_models_declare(engine: Engine):
    """Every table, column and index of models.py, and nothing else, after the migrations."""
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_revision_0007_indexes_decisions_by_merchant(engine: Engine):
    upgrade(engine, "0006")
    assert "ix_decisions_merchant" not in _decision_indexes(engine)
    upgrade(engine)
    assert _decision_indexes(engine)["ix_decisions_merchant"] == ["merchant", "decided_at"]
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0006")
    assert "ix_decisions_merchant" not in _decision_indexes(engine)


def _decision_indexes(engine: Engine) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("decisions")}

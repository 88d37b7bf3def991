"""The result store on SQLite and PostgreSQL: migrations from empty, idempotent upserts,
alert queries and paging, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from aegis_app.serving.store import Store, StoreError, upgrade
from aegis_app.serving.store.repository import BadCursor, make_engine

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def decision(tx_id: int, action: str = "review", score: float = 0.97, **extra) -> dict:
    at = extra.pop("decided_at", T0 + timedelta(seconds=tx_id))
    return {
        "transaction_id": tx_id,
        "customer_id": extra.pop("customer_id", tx_id % 3),
        "terminal_id": 7,
        "tx_amount": 12.5,
        "tx_datetime": "2018-04-01 00:00:31",
        "action": action,
        "score": score,
        "scores": {"isolation_forest": 0.41, "ensemble": score},
        "reasons": ["MODEL score"],
        "model_version": "v1",
        "features": {"TX_AMOUNT": 12.5},
        "ingested_ms": 1_795_000_000_000,
        "decided_at": at.isoformat(timespec="milliseconds"),
        **extra,
    }


def test_migrations_from_empty_create_tables_and_indexes(store: Store):
    inspector = inspect(store.engine)
    tables = set(inspector.get_table_names())
    assert {"decisions", "labels", "alembic_version"} <= tables
    indexed = {tuple(ix["column_names"])[0] for ix in inspector.get_indexes("decisions")}
    assert {"action", "status", "score", "decided_at", "customer_id"} <= indexed
    upgrade(store.engine)  # a second run is a no-op
    assert store.count_decisions() == 0


def test_sqlite_parent_directory_is_created(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a/b/c.db")
    try:
        assert (tmp_path / "a" / "b" / "c.db").exists()
        assert s.ping()
    finally:
        s.close()


def test_upsert_is_idempotent(store: Store):
    d = decision(1)
    assert store.upsert_decisions([d, d]) == 1  # a duplicate inside one batch
    store.upsert_decisions([d])  # a redelivery
    store.upsert_decisions([decision(1, score=0.99)])  # a replay with another outcome
    assert store.count_decisions() == 1
    row = store.get_decision(1)
    assert row["score"] == 0.99 and row["status"] == "open"
    assert row["decided_at"] == T0 + timedelta(seconds=1)
    assert row["scores"]["ensemble"] == 0.99 and row["features"] == {"TX_AMOUNT": 12.5}


def test_many_rows_in_one_batch(store: Store):
    assert store.upsert_decisions([decision(i) for i in range(1200)]) == 1200
    assert store.upsert_decisions([decision(i) for i in range(600, 1800)]) == 1200
    assert store.count_decisions() == 1800


def test_allowed_decisions_are_not_alerts(store: Store):
    store.upsert_decisions([decision(1, "allow", 0.1), decision(2, "block", 0.999)])
    assert store.get_decision(1)["status"] is None
    assert store.get_decision(2)["status"] == "open"


def test_unstorable_decision_is_refused():
    s = Store("sqlite://")
    try:
        with pytest.raises(StoreError):
            s.upsert_decisions([{"transaction_id": 1}])
    finally:
        s.close()


def test_label_survives_a_replayed_decision(store: Store):
    store.upsert_decisions([decision(5)])
    at = T0 + timedelta(days=1)
    row = store.record_label(5, 1, note="confirmed", analyst="ana", at=at)
    assert row["status"] == "labelled" and row["label"] == 1 and row["labelled_by"] == "ana"
    assert row["labelled_at"] == at
    store.upsert_decisions([decision(5)])
    again = store.get_decision(5)
    assert again["status"] == "labelled" and again["label_note"] == "confirmed"
    assert store.record_label(404, 0) is None
    store.record_label(5, 0)
    assert [x["label"] for x in store.labels_for(5)] == [1, 0]


def test_filters_and_newest_first(store: Store):
    store.upsert_decisions(
        [decision(i, "block" if i % 2 else "review", score=i / 100) for i in range(1, 21)]
        + [decision(100, "allow", 0.01)]
    )
    page = store.list_decisions(actions=["review", "block"], limit=500)
    ids = [r["transaction_id"] for r in page.items]
    assert ids == list(range(20, 0, -1)) and page.next_cursor is None
    page = store.list_decisions(actions=["block"], min_score=0.05, max_score=0.15)
    assert [r["transaction_id"] for r in page.items] == [15, 13, 11, 9, 7, 5]
    page = store.list_decisions(
        since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6), actions=["review"]
    )
    assert [r["transaction_id"] for r in page.items] == [4]
    store.record_label(4, 1)
    assert [r["transaction_id"] for r in store.list_decisions(status="labelled").items] == [4]
    assert len(store.list_decisions(status="open", limit=500).items) == 19
    assert [r["transaction_id"] for r in store.card_decisions(1, limit=2)] == [100, 19]


def test_cursor_and_offset_paging(store: Store):
    same_time = T0  # ties on decided_at are broken by transaction id
    store.upsert_decisions([decision(i, decided_at=same_time) for i in range(1, 8)])
    seen, cursor = [], None
    while True:
        page = store.list_decisions(limit=3, cursor=cursor)
        seen += [r["transaction_id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert [r["transaction_id"] for r in store.list_decisions(limit=2, offset=5).items] == [2, 1]
    with pytest.raises(BadCursor):
        store.list_decisions(cursor="not-a-cursor")


def test_limit_is_capped(store: Store):
    store.upsert_decisions([decision(i) for i in range(1, 600)])
    assert len(store.list_decisions(limit=10_000).items) == 500


def test_in_memory_sqlite_works_across_threads():
    import concurrent.futures

    s = Store(engine=make_engine("sqlite://"))
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: s.upsert_decisions([decision(i)]), range(20)))
        assert s.count_decisions() == 20
    finally:
        s.close()


def test_stream_labels_are_stored_once_and_read_by_event_window(store: Store):
    early = decision(1, tx_datetime="2018-04-01 10:00:00")
    late = decision(2, tx_datetime="2018-04-03 10:00:00")
    store.upsert_decisions([early, late, decision(3, tx_datetime="2018-04-05 00:00:00")])
    known = datetime(2018, 4, 8, 10, 0, tzinfo=UTC)
    labels = [
        {"transaction_id": 1, "label": 1, "source": "chargeback", "known_at": known},
        {"transaction_id": 2, "label": 0, "source": "replay", "known_at": known},
    ]
    assert store.add_stream_labels(labels) == 2
    assert store.add_stream_labels(labels) == 0  # the topic read again after a restart
    assert store.latest_tx_datetime() == "2018-04-05 00:00:00"
    rows = store.training_rows("2018-04-01 00:00:00", "2018-04-05 00:00:00")
    assert [r["transaction_id"] for r in rows] == [1, 2]  # the end is exclusive
    assert rows[0]["features"] == {"TX_AMOUNT": 12.5} and rows[0]["model_version"] == "v1"
    window = ("2018-04-01 00:00:00", "2018-04-05 00:00:00")
    assert store.labels_known(*window) == {1: 1, 2: 0}
    assert store.labels_known(*window, known_by=known - timedelta(seconds=1)) == {}
    # a later verdict on the same transaction wins
    later = {**labels[0], "label": 0, "source": "analyst", "known_at": known + timedelta(days=1)}
    store.add_stream_labels([later])
    assert store.labels_known(*window) == {1: 0, 2: 0}
    assert store.labels_known(*window, known_by=known) == {1: 1, 2: 0}

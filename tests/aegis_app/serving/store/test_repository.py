"""The result store on SQLite and PostgreSQL: migrations from empty, idempotent upserts,
alert queries and paging, labels; records-v2 rows (text ids, fields, entity keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from aegis_app.serving.store import Store, StoreError, upgrade
from aegis_app.serving.store.repository import BadCursor, make_engine

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def decision(tx_id: int, action: str = "review", score: float = 0.97, **extra) -> dict:
    """A decision as build_decisions writes it (Handbook config): transaction id
    str(tx_id), card str(tx_id % 3) unless `card=` says otherwise, decided tx_id seconds
    after T0."""
    at = extra.pop("decided_at", T0 + timedelta(seconds=tx_id))
    card = str(extra.pop("card", tx_id % 3))
    tx_datetime = extra.pop("tx_datetime", "2018-04-01 00:00:31")
    return {
        "transaction_id": str(tx_id),
        "card": card,
        "merchant": "7",
        "amount": 12.5,
        "ts": int(datetime.fromisoformat(tx_datetime).replace(tzinfo=UTC).timestamp()),
        "tx_datetime": tx_datetime,
        "fields": {},
        "entities": {"card": card, "terminal": "7"},
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
    assert {"action", "status", "score", "decided_at", "card", "tx_datetime"} <= indexed
    columns = {c["name"] for c in inspector.get_columns("decisions")}
    assert {"card", "merchant", "amount", "ts", "fields", "entities"} <= columns
    assert not {"customer_id", "terminal_id", "tx_amount"} & columns
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
    row = store.get_decision("1")
    assert row["transaction_id"] == "1" and row["card"] == "1" and row["merchant"] == "7"
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


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"card": None}, "card", "missing"),
        ({"merchant": {"id": 1}}, "merchant", "expected text"),
        ({"transaction_id": "x" * 257}, "transaction_id", "1-256 characters"),
        ({"amount": "lots"}, "amount", "could not convert"),
        ({"ts": None, "tx_datetime": "yesterday"}, "tx_datetime", ""),
        ({"entities": ["card"]}, "entities", "expected an object"),
        ({"fields": "none"}, "fields", "expected an object"),
        ({"decided_at": None}, "decided_at", "missing"),
    ],
)
def test_unstorable_decision_is_refused_naming_the_field(change, field, problem):
    s = Store("sqlite://")
    try:
        with pytest.raises(StoreError, match=f"{field}: .*{problem}"):
            s.upsert_decisions([{**decision(1), **change}])
        assert s.count_decisions() == 0
    finally:
        s.close()


def test_label_survives_a_replayed_decision(store: Store):
    store.upsert_decisions([decision(5)])
    at = T0 + timedelta(days=1)
    row = store.record_label("5", 1, note="confirmed", analyst="ana", at=at)
    assert row["status"] == "labelled" and row["label"] == 1 and row["labelled_by"] == "ana"
    assert row["labelled_at"] == at
    # what the API needs to publish the Label: the decision's card and entity keys
    assert row["card"] == "2" and row["entities"] == {"card": "2", "terminal": "7"}
    store.upsert_decisions([decision(5)])
    again = store.get_decision("5")
    assert again["status"] == "labelled" and again["label_note"] == "confirmed"
    assert store.record_label("404", 0) is None
    store.record_label("5", 0)
    history = store.labels_for("5")
    assert [x["label"] for x in history] == [1, 0]
    assert history[0]["transaction_id"] == "5" and history[0]["card"] == "2"
    assert history[0]["entities"] == {"card": "2", "terminal": "7"}


def test_filters_and_newest_first(store: Store):
    store.upsert_decisions(
        [decision(i, "block" if i % 2 else "review", score=i / 100) for i in range(1, 21)]
        + [decision(100, "allow", 0.01)]
    )
    page = store.list_decisions(actions=["review", "block"], limit=500)
    ids = [r["transaction_id"] for r in page.items]
    assert ids == [str(i) for i in range(20, 0, -1)] and page.next_cursor is None
    page = store.list_decisions(actions=["block"], min_score=0.05, max_score=0.15)
    assert [r["transaction_id"] for r in page.items] == ["15", "13", "11", "9", "7", "5"]
    page = store.list_decisions(
        since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6), actions=["review"]
    )
    assert [r["transaction_id"] for r in page.items] == ["4"]
    store.record_label("4", 1)
    assert [r["transaction_id"] for r in store.list_decisions(status="labelled").items] == ["4"]
    assert len(store.list_decisions(status="open", limit=500).items) == 19
    assert [r["transaction_id"] for r in store.card_decisions("1", limit=2)] == ["100", "19"]
    page = store.list_decisions(card="2", actions=["block"], limit=500)
    assert [r["transaction_id"] for r in page.items] == ["17", "11", "5"]


def test_merchant_filter_and_search(store: Store):
    """`merchant`: that merchant's decisions; `search`: an exact transaction id, card or
    merchant (never a part of one)."""
    store.upsert_decisions(
        [
            decision(1, merchant="m-1", card="c-1"),
            decision(2, merchant="m-2", card="c-1"),
            decision(3, merchant="m-1", card="m-2"),  # a card that reads like a merchant
            decision(4, merchant="4", card="c-4"),  # a merchant that reads like an id
        ]
    )

    def ids(**filters) -> list[str]:
        return [d["transaction_id"] for d in store.list_decisions(**filters).items]

    assert ids(merchant="m-1") == ["3", "1"]
    assert ids(merchant="m-") == [] and ids(merchant="nobody") == []
    assert ids(search="c-1") == ["2", "1"]  # a card
    assert ids(search="m-2") == ["3", "2"]  # a merchant of one, the card of another
    assert ids(search="4") == ["4"]  # the transaction and its merchant: once
    assert ids(search=1) == ["1"]  # a transaction id, given as a number
    assert ids(search="c-") == []
    assert ids(search="m-2", merchant="m-1") == ["3"]  # with other filters: all of them


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
    assert seen == ["7", "6", "5", "4", "3", "2", "1"]
    assert [r["transaction_id"] for r in store.list_decisions(limit=2, offset=5).items] == [
        "2",
        "1",
    ]
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
        {
            "transaction_id": "1",
            "label": 1,
            "source": "chargeback",
            "known_at": known,
            "card": "1",
            "entities": {"card": "1", "terminal": "7"},
        },
        {"transaction_id": "2", "label": 0, "source": "replay", "known_at": known},
    ]
    assert store.add_stream_labels(labels) == 2
    assert store.add_stream_labels(labels) == 0  # the topic read again after a restart
    [chargeback] = store.labels_for("1")
    assert chargeback["card"] == "1" and chargeback["entities"] == {"card": "1", "terminal": "7"}
    [replayed] = store.labels_for("2")
    assert replayed["card"] is None and replayed["entities"] == {}
    assert store.latest_tx_datetime() == "2018-04-05 00:00:00"
    rows = store.training_rows("2018-04-01 00:00:00", "2018-04-05 00:00:00")
    assert [r["transaction_id"] for r in rows] == ["1", "2"]  # the end is exclusive
    assert rows[0]["features"] == {"TX_AMOUNT": 12.5} and rows[0]["model_version"] == "v1"
    assert set(rows[0]) == {
        "transaction_id",
        "card",
        "merchant",
        "amount",
        "ts",
        "tx_datetime",
        "fields",
        "entities",
        "features",
        "score",
        "model_version",
    }
    assert rows[0]["ts"] == 1522576800 and rows[0]["card"] == "1" and rows[0]["amount"] == 12.5
    window = ("2018-04-01 00:00:00", "2018-04-05 00:00:00")
    assert store.labels_known(*window) == {"1": 1, "2": 0}
    assert store.labels_known(*window, known_by=known - timedelta(seconds=1)) == {}
    # a later verdict on the same transaction wins
    later = {**labels[0], "label": 0, "source": "analyst", "known_at": known + timedelta(days=1)}
    store.add_stream_labels([later])
    assert store.labels_known(*window) == {"1": 0, "2": 0}
    assert store.labels_known(*window, known_by=known) == {"1": 1, "2": 0}
    assert store.actions(["1", 2, "404"]) == {"1": "review", "2": "review"}


# --------------------------------------------------------------------------- records v2

SPARKOV_TX = "2da90c7d74bd46a0caf3777415b3ebd3"  # a Sparkov trans_num


def sparkov_decision(tx_id: str, seconds: int = 0, **extra) -> dict:
    """A decision under configs/sparkov.toml: text ids, extra fields, three entities."""
    card, merchant = "4613314721966", "fraud_Rippin, Kub and Mann"
    return {
        **decision(0, "block", 0.999, decided_at=T0 + timedelta(seconds=seconds)),
        "transaction_id": tx_id,
        "card": card,
        "merchant": merchant,
        "amount": 4.97,
        "ts": 1546300818,
        "tx_datetime": "2019-01-01 00:00:18",
        "fields": {"category": "misc_net", "city_pop": 3495.0, "gender": None},
        "entities": {"card": card, "merchant": merchant, "category": None},
        "features": {"amount": 4.97, "category": "misc_net", "card_std_amount_30d": float("nan")},
        **extra,
    }


def test_text_ids_fields_and_entities_round_trip(store: Store):
    store.upsert_decisions([sparkov_decision(SPARKOV_TX)])
    row = store.get_decision(SPARKOV_TX)
    assert row["card"] == "4613314721966" and row["merchant"] == "fraud_Rippin, Kub and Mann"
    assert row["amount"] == 4.97 and row["ts"] == 1546300818
    assert row["tx_datetime"] == "2019-01-01 00:00:18"
    assert row["fields"] == {"category": "misc_net", "city_pop": 3495.0, "gender": None}
    assert row["entities"] == {
        "card": "4613314721966",
        "merchant": "fraud_Rippin, Kub and Mann",
        "category": None,
    }
    # a NaN feature (no history yet) is stored as null: PostgreSQL's JSON has no NaN
    assert row["features"] == {"amount": 4.97, "category": "misc_net", "card_std_amount_30d": None}
    assert [r["transaction_id"] for r in store.card_decisions("4613314721966")] == [SPARKOV_TX]
    assert store.card_decisions("4613314721966.0") == []  # ids are text, not numbers
    labelled = store.record_label(SPARKOV_TX, 1, analyst="ana")
    assert labelled["entities"]["merchant"] == "fraud_Rippin, Kub and Mann"
    [label] = store.labels_for(SPARKOV_TX)
    # the label reaches the entities the transaction has (no category key: left out)
    assert label["entities"] == {
        "card": "4613314721966",
        "merchant": "fraud_Rippin, Kub and Mann",
    }
    assert label["card"] == "4613314721966"


def test_ts_is_read_from_tx_datetime_when_missing(store: Store):
    d = decision(3, tx_datetime="2018-04-02 10:00:00")
    del d["ts"]
    store.upsert_decisions([d])
    assert store.get_decision("3")["ts"] == 1522663200


def test_cursor_paging_over_text_ids_with_separators(store: Store):
    ids = [f"x|{i}" for i in range(1, 8)]  # "|" is the cursor's own separator
    store.upsert_decisions([sparkov_decision(tx) for tx in ids])  # all decided at T0
    seen, cursor = [], None
    while True:
        page = store.list_decisions(limit=3, cursor=cursor)
        seen += [r["transaction_id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]

"""Store.decisions_between: decisions of an event-time window for drift monitoring, with an
evenly spread sample when the window holds more than asked (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

from aegis_app.serving.store import Store
from tests.aegis_app.serving.store.test_repository import decision

START = datetime(2018, 4, 1)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


def seed(store: Store, n: int) -> None:
    """Decision i happens i minutes after START; ids run against time to prove the order
    comes from tx_datetime."""
    store.upsert_decisions(
        [
            decision(
                10_000 - i,
                "allow",
                score=i / n,
                tx_datetime=at(i),
                features={"TX_AMOUNT": float(i)},
                model_version="v2" if i % 2 else "v1",
            )
            for i in range(n)
        ]
    )


def test_window_bounds_order_and_columns(store: Store):
    assert store.decisions_between() == []
    seed(store, 100)
    rows = store.decisions_between(at(10), at(20))
    assert [r["tx_datetime"] for r in rows] == [at(i) for i in range(19, 9, -1)]
    assert set(rows[0]) == {"tx_datetime", "score", "model_version", "features"}
    assert rows[0]["features"] == {"TX_AMOUNT": 19.0} and rows[0]["model_version"] == "v2"
    assert len(store.decisions_between(start=at(90))) == 10
    assert len(store.decisions_between(end=at(5))) == 5
    [latest] = store.decisions_between(limit=1)
    assert latest["tx_datetime"] == at(99)


def test_sample_spreads_over_the_window(store: Store):
    seed(store, 100)
    rows = store.decisions_between(at(0), at(100), limit=10)
    # The newest, then every 10th older one: the whole window, not its last ten minutes.
    assert [r["tx_datetime"] for r in rows] == [at(i) for i in range(99, -1, -10)]
    rows = store.decisions_between(at(0), at(100), limit=30)  # stride 4: 25 rows
    assert [r["tx_datetime"] for r in rows] == [at(i) for i in range(99, -1, -4)]
    assert len(store.decisions_between(at(0), at(100), limit=100)) == 100

"""What the integration tests share to feed a running worker and check what it decided:
a file's labels as replay publishes them, producing onto a topic, waiting for a worker
counter, and the decisions' features against the batch computation."""

from __future__ import annotations

import math
import time

import httpx
import pandas as pd
from aiokafka import AIOKafkaProducer

from aegis_app.core.config import Config
from aegis_app.core.labels import Label
from aegis_app.core.records import format_datetime
from aegis_app.core.timerules import label_known_at
from tables.engine import StreamEngine


def file_labels(frame: pd.DataFrame, config: Config) -> list[Label]:
    """The file's labels as replay publishes them: known `delay` days after each
    transaction, naming its entity keys."""
    engine = StreamEngine(config)
    out = []
    for record in frame.to_dict("records"):
        if record["label"] != record["label"] or record["label"] is None:
            continue
        keys = {name: key for name, key in engine.keys(record).items() if key is not None}
        known = label_known_at(int(record["ts"]), config.label_delay_days)
        out.append(
            Label(
                transaction_id=record["transaction_id"],
                label=int(record["label"]),
                source="chargeback",
                known_at=format_datetime(known),
                tx_datetime=format_datetime(int(record["ts"])),
                entities=keys,
                card=record["card"],
            )
        )
    return out


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_048_576)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def health(web: str, deadline: float | None = None) -> dict:
    """The worker's /health/. A worker busy starting (compiling, loading its model) on a
    machine shared with other tests may answer one poll late: asked again, until
    `deadline` (monotonic; default 60 s from now), rather than failing on the first."""
    deadline = time.monotonic() + 60 if deadline is None else deadline
    while True:
        try:
            return httpx.get(f"{web}/health/", timeout=10).json()
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def wait_for_count(web: str, name: str, expected: int, timeout: float) -> None:
    """Until the worker's /health/ counter `name` reaches `expected`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(web, deadline)["counts"].get(name, 0) >= expected:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not reach {expected}")


def wait_for_entity_states(web: str, hops: int, timeout: float) -> None:
    """Until the worker has written `hops` transaction and label hops into its entity
    states and its replicas have read every changelog record it wrote: what the card stage
    decides from then on sees them (a worker alone owns every partition)."""
    wait_for_count(web, "entity_hops_written", hops, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = health(web, deadline)
        if _replicas_current(now):
            return
        time.sleep(0.2)
    raise TimeoutError(f"replicas did not catch up: {now['state_replicas']}")


def _replicas_current(health: dict) -> bool:
    for entity, replica in health["state_replicas"].items():
        written = health["changelogs"][entity]
        if written["queued"] != written["acknowledged"]:
            return False
        for partition, offset in written["last_offsets"].items():
            if replica["next_offsets"].get(partition, 0) <= offset:
                return False
    return True


def feature_mismatches(
    decisions: list[dict], batch: pd.DataFrame, names: tuple[str, ...]
) -> list[tuple]:
    """(transaction id, feature, decided, batch) wherever a decision's feature differs from
    the batch's (`batch` indexed by transaction id): text equal, numbers within 1e-9, a
    NaN travelling as null."""
    mismatches = []
    for d in decisions:
        want = batch.loc[d["transaction_id"]]
        for name in names:
            have, expected = d["features"][name], want[name]
            if isinstance(expected, str) or expected is None:
                same = have == expected
            elif have is None:
                same = math.isnan(expected)
            else:
                same = math.isclose(have, expected, rel_tol=1e-9, abs_tol=1e-9)
            if not same:
                mismatches.append((d["transaction_id"], name, have, expected))
    return mismatches

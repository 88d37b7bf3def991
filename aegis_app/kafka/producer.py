"""Publishing transactions (and their delayed labels) onto Kafka: replay, generate, bench.

Labels are held back until the replayed clock reaches the moment they would have been
known (transaction time + label delay), so a replay never leaks a label early.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm

from aegis_app.core import codec
from aegis_app.core.labels import Label
from aegis_app.core.records import InvalidRecord, Transaction, format_datetime
from aegis_app.core.settings import LABELS_TOPIC, TRANSACTIONS_TOPIC
from aegis_app.core.timerules import label_known_at
from aegis_app.kafka import clients
from aegis_app.kafka.clients import Broker


class DeliveryFailed(RuntimeError):
    """A record the broker would not take after every attempt."""


class Deliveries:
    """Sends whose broker acknowledgement is still to be checked.

    `producer.flush()` waits for every batch but does not fail when one was refused, so a
    sender that never looks at its futures loses records silently. A failed send is sent
    again (up to `attempts` times): at-least-once delivery, which the workers' idempotent
    state and the store's upsert by transaction id absorb.
    """

    def __init__(self, attempts: int = 5) -> None:
        self.attempts = attempts
        self.resent = 0
        self._pending: list[tuple[asyncio.Future, Callable[[], Awaitable], int]] = []

    async def send(self, send: Callable[[], Awaitable[asyncio.Future]]) -> None:
        """Send a record (`send` queues it and returns its delivery future) and track it;
        the same `send` is called again if the broker refuses it."""
        self._pending.append((await send(), send, 1))

    async def check(self, wait: bool = False) -> None:
        """Forget acknowledged sends and resend failed ones; with `wait`, until none is left."""
        while self._pending:
            still: list[tuple[asyncio.Future, Callable[[], Awaitable], int]] = []
            for future, resend, attempt in self._pending:
                if not future.done():
                    if not wait:
                        still.append((future, resend, attempt))
                        continue
                    try:
                        await future
                    except KafkaError:
                        pass
                if future.cancelled() or future.exception() is not None:
                    error = "cancelled" if future.cancelled() else repr(future.exception())
                    if attempt >= self.attempts:
                        raise DeliveryFailed(f"not delivered after {attempt} attempts: {error}")
                    self.resent += 1
                    still.append((await resend(), resend, attempt + 1))
            self._pending = still
            if not wait:
                return


@dataclass
class ReplaySummary:
    sent: int = 0
    labels_sent: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    resent: int = 0  # sends the broker refused at first (then delivered)

    def as_dict(self) -> dict:
        return {
            "transactions_sent": self.sent,
            "labels_sent": self.labels_sent,
            "bad_rows": len(self.bad_rows),
            "resent": self.resent,
            "seconds": round(self.seconds, 2),
            "rate_per_s": round(self.sent / self.seconds, 1) if self.seconds else None,
        }


def label_for(tx: Transaction, delay_days: int) -> Label | None:
    if tx.tx_fraud is None:
        return None
    return Label(
        transaction_id=tx.transaction_id,
        label=tx.tx_fraud,
        source="chargeback",
        known_at=format_datetime(label_known_at(tx.ts, delay_days)),
        terminal_id=tx.terminal_id,
        tx_datetime=tx.tx_datetime,
        customer_id=tx.customer_id,
    )


def make_producer(broker_url: Broker) -> AIOKafkaProducer:
    return clients.producer(
        broker_url,
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks=1,
        enable_idempotence=False,
    )


async def send_transaction(producer: AIOKafkaProducer, tx: Transaction) -> asyncio.Future:
    """Queue one transaction, keyed by card (the card stage's partitioning)."""
    return await producer.send(
        TRANSACTIONS_TOPIC, value=codec.encode(tx), key=str(tx.customer_id).encode()
    )


async def send_label(producer: AIOKafkaProducer, label: Label) -> asyncio.Future:
    return await producer.send(
        LABELS_TOPIC, value=label.to_json(), key=str(label.transaction_id).encode()
    )


def publication_order(
    rows: Iterable[tuple[int, Transaction | InvalidRecord, dict]],
    label_delay_days: int | None,
) -> Iterator[tuple[str, object]]:
    """The replay's schedule: ("tx", Transaction), ("label", Label) or ("bad", (line, reason)).

    A label comes right before the first transaction at or after its known time (the
    replayed clock), never earlier; labels not yet known when the file ends come last.
    """
    pending: list[tuple[int, int, Label]] = []  # (known_at, transaction id, label)
    for line, record, _raw in rows:
        if isinstance(record, InvalidRecord):
            yield "bad", (line, str(record))
            continue
        while pending and pending[0][0] <= record.ts:
            yield "label", heapq.heappop(pending)[2]
        yield "tx", record
        if label_delay_days is not None:
            label = label_for(record, label_delay_days)
            if label is not None:
                known_at = label_known_at(record.ts, label_delay_days)
                heapq.heappush(pending, (known_at, record.transaction_id, label))
    while pending:
        yield "label", heapq.heappop(pending)[2]


async def replay(
    rows: Iterable[tuple[int, Transaction | InvalidRecord, dict]],
    broker_url: Broker,
    rate: float | None = None,
    label_delay_days: int | None = 7,
    total: int | None = None,
    progress: bool = True,
    on_bad_row=None,
) -> ReplaySummary:
    """Publish rows in order; report bad rows (line, reason); labels after their delay."""
    summary = ReplaySummary()
    producer = make_producer(broker_url)
    await producer.start()
    deliveries = Deliveries()
    started = time.monotonic()
    bar = tqdm(total=total, desc="replay", unit="tx", disable=not progress, mininterval=0.5)
    try:
        for kind, item in publication_order(rows, label_delay_days):
            if kind == "label":
                await deliveries.send(lambda item=item: send_label(producer, item))
                summary.labels_sent += 1
                continue
            bar.update(1)
            if kind == "bad":
                summary.bad_rows.append(item)
                if on_bad_row:
                    on_bad_row(*item)
                continue
            await deliveries.send(lambda item=item: send_transaction(producer, item))
            summary.sent += 1
            if summary.sent % 5000 == 0:
                await deliveries.check()  # keeps the list of pending sends short
            if rate:
                ahead = started + summary.sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        await deliveries.check(wait=True)
    finally:
        bar.close()
        await producer.stop()
    summary.resent = deliveries.resent
    summary.seconds = time.monotonic() - started
    return summary

"""Publishing onto Kafka: the producer every publisher uses, its delivery bookkeeping, and the
sends of a transaction and of a label (replay, the API, Kinesis, the benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from aegis_app.core.labels import Label
from aegis_app.core.settings import LABELS_TOPIC, TRANSACTIONS_TOPIC
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


def make_producer(broker_url: Broker, **options: Any) -> AIOKafkaProducer:
    """The publishers' producer; `options` override its aiokafka settings."""
    defaults = {
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "acks": 1,
        "enable_idempotence": False,
    }
    return clients.producer(broker_url, **{**defaults, **options})


async def send_transaction(
    producer: AIOKafkaProducer, payload: bytes, key: bytes
) -> asyncio.Future:
    """Queue one encoded transaction (RecordCodec.encode), keyed by RecordCodec.key: the
    card, the card stage's partitioning."""
    return await producer.send(TRANSACTIONS_TOPIC, value=payload, key=key)


async def send_label(producer: AIOKafkaProducer, label: Label) -> asyncio.Future:
    return await producer.send(
        LABELS_TOPIC, value=label.to_json(), key=str(label.transaction_id).encode()
    )

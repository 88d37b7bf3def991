"""A consumer that every process runs on its own: no consumer group (a group would hand
each record to one process only), assigned every partition of one topic, for as long as
it runs. Broker trouble is logged and retried; it never stops the caller.

Subclasses say where to start and what to do with the records (`listen`):
aegis_app/kafka/model_updates.py (from the end: wake-ups) and
aegis_app/kafka/rules_listener.py (from the beginning: the rules as they stand).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from aegis_app.kafka import clients
from aegis_app.kafka.clients import Broker

log = logging.getLogger(__name__)


class TopicListener:
    """Runs `listen` on a consumer assigned every partition of `topic`, reconnecting after
    any broker error. Its consumer is paced by the connection's fetch interval (give a
    KafkaConnection from Settings; a plain URL means no pacing)."""

    def __init__(self, broker_url: Broker, topic: str, retry_s: float = 2.0) -> None:
        self.connection = clients.connection_of(broker_url)
        self.topic = topic
        self.retry_s = retry_s
        self.received = 0
        # Set once `listen` says it is current (tests and health checks wait on it).
        self.ready = asyncio.Event()
        self.status = "starting"
        # More options for the consumer (a subclass's own, e.g. fetch_max_wait_ms).
        self.consumer_options: dict = {}

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - aiokafka raises many kinds; retry all
                self.ready.clear()
                self.status = f"retrying: {exc!r}"
                log.warning("%s listener: %r; retrying in %.0fs", self.topic, exc, self.retry_s)
                await asyncio.sleep(self.retry_s)

    async def listen(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Position `consumer` and handle its records until cancelled or an error."""
        raise NotImplementedError

    async def _consume(self) -> None:
        consumer = clients.consumer(
            self.connection,
            paced=True,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.consumer_options,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await self.listen(consumer, partitions)
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Every partition of the topic, waiting for it to exist (the worker creates it)."""
        while True:
            await consumer._client.force_metadata_update()  # no subscription: ask for all
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                return [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self.status = "waiting for topic"
            await asyncio.sleep(self.retry_s)


async def read_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """True once every partition was read up to its high watermark, as the last fetch
    reported it (not ListOffsets: on Tansu its end is the last batch's first offset + 1)."""
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True

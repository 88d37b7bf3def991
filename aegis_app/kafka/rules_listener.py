"""Every rule and list as it stands on aegis.rules, for a scorer (the worker's and the
API's): read from the beginning, without a consumer group, keeping the newest message
per key (the topic is compacted: that is what its key means, aegis_app/kafka/rule_updates.py).

Once the listener has read up to the end of the topic it hands every kept message to
`on_change` (also when there is none: "no published rules" is an answer a starting
scorer waits for), then again after each fetch that changed one. A message that does not
decode is counted and ignored; a tombstone (no value) removes its key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from aegis_app.core.settings import RULES_TOPIC
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.rule_updates import decode
from aegis_app.kafka.topic_listener import TopicListener, read_to_end

log = logging.getLogger(__name__)
# Called on the event loop with the newest rule and list message of every key.
ChangeCallback = Callable[[list[dict]], None]


class RuleUpdatesListener(TopicListener):
    def __init__(
        self,
        broker_url: Broker,
        on_change: ChangeCallback,
        topic: str = RULES_TOPIC,
        retry_s: float = 2.0,
    ) -> None:
        super().__init__(broker_url, topic, retry_s)
        self.on_change = on_change
        self.undecodable = 0

    async def listen(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        await consumer.seek_to_beginning(*partitions)
        newest: dict[bytes | None, dict] = {}  # read again in full after a reconnect
        self.status = "catching up"
        caught_up = False
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            changed = False
            for records in batch.values():
                for record in records:
                    self.received += 1
                    changed |= self._keep(newest, record)
            if not caught_up:
                if not await read_to_end(consumer, partitions):
                    continue
                caught_up = changed = True
                self.status = "listening"
                self.ready.set()
                log.info("read %d rule and list messages from %s", len(newest), self.topic)
            if changed:
                self._hand_over(list(newest.values()))

    def _keep(self, newest: dict[bytes | None, dict], record) -> bool:
        """Keep the record as its key's newest message; True if anything changed."""
        if record.value is None:  # a tombstone: the key is gone
            return newest.pop(record.key, None) is not None
        message = decode(record.value)
        if message is None:
            self.undecodable += 1
            log.warning(
                "%s: ignored a message that is not a rule or list at offset %s",
                self.topic,
                record.offset,
            )
            return False
        newest[record.key] = message
        return True

    def _hand_over(self, messages: list[dict]) -> None:
        try:
            self.on_change(messages)
        except Exception:  # a failing receiver must not tear down the consumer
            log.exception("rule-updates receiver failed")

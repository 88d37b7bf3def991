"""Aegis's Faust app: ``faust.App`` on Aegis's own transport, consumer and consumer thread.

Faust builds its Kafka consumer in layers: the App's transport (``App._new_transport``,
aiokafka driver for ``kafka://`` URLs) creates the consumer (``Transport.Consumer``), which
runs an aiokafka consumer in its own thread (``Consumer._new_consumer_thread``). Each layer
here is a subclass of the aiokafka driver's, so the fixes Aegis's delivery guarantees need
apply to this app's consumer only; a plain ``faust.App`` in the same process is unaffected:

- :class:`~aegis_app.kafka.faust_compat.TrueHighwaters`: changelog end offsets from the
  Fetch high watermark (the embedded broker's ListOffsets is too low; failover).
- :class:`~aegis_app.kafka.faust_compat.StaleAckGuard`: no ack for a message Faust skipped
  unprocessed during a rebalance.
- :class:`~aegis_app.kafka.seek_gate.SeekGatedConsumer` and ``SeekGatedConsumerThread``: no
  stream message from a stale fetch position after a rebalance (fast rejoin).
- :class:`~aegis_app.kafka.faust_compat.PausedNotFetched`: what Faust pauses is not
  fetched (an untaken fetch held the others back 100 ms at a time).
- :class:`~aegis_app.kafka.batches.BatchDeliveryConsumer`: the hot-path topics' messages
  go to batch tasks in whole fetches, past Faust's per-message stream layers.
- ``fetch_max_wait_ms``: how long a fetch may wait for data (Faust hard-codes 1,500 ms).
- ``fetch_interval_ms``: fetches to one broker spaced (aegis_app/kafka/fetch_pacing.py).

The settings travel as constructor arguments: AegisApp -> AegisTransport -> AegisConsumer ->
AegisConsumerThread. The private Faust/aiokafka names this relies on are listed and checked
in aegis_app/kafka/private_names.py; ``AegisApp`` runs that check when it is built.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport import by_url as transport_by_url
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaDriverConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport

from aegis_app.kafka import private_names
from aegis_app.kafka.batches import BatchDeliveryConsumer, Inbox
from aegis_app.kafka.faust_compat import PausedNotFetched, StaleAckGuard, TrueHighwaters
from aegis_app.kafka.fetch_pacing import FetchPacer, pace_fetches
from aegis_app.kafka.seek_gate import SeekGatedConsumer, SeekGatedConsumerThread


def _check_fetch_settings(fetch_max_wait_ms: int, fetch_interval_ms: float) -> None:
    if isinstance(fetch_max_wait_ms, bool) or not isinstance(fetch_max_wait_ms, int):
        raise ValueError(f"fetch_max_wait_ms must be an int (ms), got {fetch_max_wait_ms!r}")
    if fetch_max_wait_ms < 0:
        raise ValueError(f"fetch_max_wait_ms must be >= 0, got {fetch_max_wait_ms}")
    if not isinstance(fetch_interval_ms, int | float) or fetch_interval_ms < 0:
        raise ValueError(f"fetch_interval_ms must be a number >= 0 (ms), got {fetch_interval_ms!r}")


class AegisConsumerThread(
    PausedNotFetched, TrueHighwaters, SeekGatedConsumerThread, AIOKafkaConsumerThread
):
    """The thread running the worker's aiokafka consumer, with Aegis's fixes and settings."""

    def __init__(
        self, consumer: Any, *, fetch_max_wait_ms: int, fetch_interval_ms: float, **kwargs: Any
    ) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_interval_ms = fetch_interval_ms
        self.fetch_pacer: FetchPacer | None = None
        super().__init__(consumer, **kwargs)

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes fetch_max_wait_ms=1500. The embedded broker holds a fetch that long
        # when little data is waiting, so every hop (transactions -> by-entity ->
        # decisions) added up to 1.5 s: p50 719 ms at 200 tx/s, 68 ms with 50 ms here.
        # Read by start(), when the consumer creates its Fetcher.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()  # builds and starts the aiokafka consumer
        if self.fetch_interval_ms > 0:
            self.fetch_pacer = pace_fetches(self._ensure_consumer(), self.fetch_interval_ms)


class AegisConsumer(
    BatchDeliveryConsumer, StaleAckGuard, SeekGatedConsumer, AIOKafkaDriverConsumer
):
    """The worker's Faust consumer: stale acks refused, stale fetches dropped, the hot-path
    topics delivered in batches."""

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int, fetch_interval_ms: float, **kwargs: Any
    ) -> None:
        # Before Faust's __init__, which creates the consumer thread.
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_interval_ms = fetch_interval_ms
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> AegisConsumerThread:
        return AegisConsumerThread(
            self,
            loop=self.loop,
            beacon=self.beacon,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            fetch_interval_ms=self.fetch_interval_ms,
        )

    def stale_message_counts(self) -> dict[str, int]:
        """What the fixes held back so far (the worker's /health/ counts)."""
        return {
            "refused_stale_acks": self.refused_stale_acks,
            "stale_fetches_dropped": self.seek_gate.dropped,
        }


class AegisTransport(AIOKafkaTransport):
    """Faust's aiokafka transport, creating :class:`AegisConsumer` with the fetch settings."""

    Consumer = AegisConsumer

    def __init__(
        self,
        url: Any,
        app: Any,
        loop: Any = None,
        *,
        fetch_max_wait_ms: int,
        fetch_interval_ms: float,
    ) -> None:
        super().__init__(url, app, loop=loop)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_interval_ms = fetch_interval_ms

    def create_consumer(self, callback: Any, **kwargs: Any) -> Any:
        return super().create_consumer(
            callback,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            fetch_interval_ms=self.fetch_interval_ms,
            **kwargs,
        )


class AegisApp(faust.App):
    """``faust.App`` whose consumer is :class:`AegisConsumer` (see the module docstring).

    ``fetch_max_wait_ms``: longest a fetch waits for data; ``fetch_interval_ms``: least time
    between two fetches to one broker (0: not paced). Other options are Faust's own.
    """

    def __init__(
        self, id: str, *, fetch_max_wait_ms: int, fetch_interval_ms: float, **options: Any
    ) -> None:
        private_names.check()
        _check_fetch_settings(fetch_max_wait_ms, fetch_interval_ms)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_interval_ms = fetch_interval_ms
        self.batch_inboxes: dict[str, Inbox] = {}  # topic name -> its inbox
        super().__init__(id, **options)

    def deliver_in_batches(self, inbox: Inbox) -> None:
        """Hand `inbox`'s topics to it in whole fetches (aegis_app/kafka/batches.py)."""
        for topic in inbox.topics:
            self.batch_inboxes[topic] = inbox

    def _new_transport(self) -> AegisTransport:
        url = self.conf.broker_consumer[0]
        try:
            driver: Any = transport_by_url(url)
        except Exception as exc:  # noqa: BLE001 - Faust raises several kinds for a bad scheme
            driver = exc
        if driver is not AIOKafkaTransport:
            raise ValueError(
                f"AegisApp runs on Faust's aiokafka driver (broker kafka://host:port); "
                f"broker {url} selects {driver!r}"
            )
        return AegisTransport(
            self.conf.broker_consumer,
            self,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            fetch_interval_ms=self.fetch_interval_ms,
        )

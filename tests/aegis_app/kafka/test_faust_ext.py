"""AegisApp: Faust's App on Aegis's transport, consumer and consumer thread, with the fetch
settings passed down as constructor arguments; a plain faust.App beside it is unaffected."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as FaustAIOKafkaTransport

from aegis_app.kafka.faust_compat import SourceKeyRouter
from aegis_app.kafka.faust_ext import (
    AegisApp,
    AegisConsumer,
    AegisConsumerThread,
    AegisTransport,
)
from aegis_app.kafka.fetch_pacing import FetchPacer


def _app(name: str, broker: str = "kafka://127.0.0.1:1", **fetch) -> AegisApp:
    settings = {"fetch_max_wait_ms": 40, "fetch_interval_ms": 200, **fetch}
    return AegisApp(
        name,
        broker=broker,
        store="memory://",
        web_enabled=False,
        Router=SourceKeyRouter,
        **settings,
    )


def test_the_settings_reach_the_consumer_thread_through_each_layer():
    app = _app("ext-layers")
    assert type(app.transport) is AegisTransport
    assert type(app.consumer) is AegisConsumer
    thread = app.consumer._thread
    assert type(thread) is AegisConsumerThread
    assert (thread.fetch_max_wait_ms, thread.fetch_interval_ms) == (40, 200)
    assert isinstance(app.router, SourceKeyRouter)  # Faust's own options still apply
    assert app.consumer.stale_message_counts() == {
        "refused_stale_acks": 0,
        "stale_fetches_dropped": 0,
    }


def test_a_plain_faust_app_in_the_same_process_gets_fausts_classes():
    _app("ext-first")
    plain = faust.App("ext-plain", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert type(plain.transport) is FaustAIOKafkaTransport
    assert type(plain.consumer) is FaustAIOKafkaConsumer
    assert type(plain.consumer._thread) is AIOKafkaConsumerThread
    assert FaustAIOKafkaTransport.Consumer is FaustAIOKafkaConsumer


def test_the_fetch_wait_is_set_on_aegis_consumers_only():
    async def built_waits() -> tuple[int, int]:
        aegis = _app("ext-wait").consumer._thread
        plain = faust.App("ext-wait-plain", broker="kafka://127.0.0.1:1").consumer._thread
        ours = aegis._create_worker_consumer(aegis.transport)
        fausts = plain._create_worker_consumer(plain.transport)
        try:
            return ours._fetch_max_wait_ms, fausts._fetch_max_wait_ms
        finally:
            await ours.stop()
            await fausts.stop()

    assert asyncio.run(built_waits()) == (40, 1500)  # 1500: Faust's own


@pytest.mark.parametrize(
    ("fetch", "complaint"),
    [
        ({"fetch_max_wait_ms": -1}, "fetch_max_wait_ms"),
        ({"fetch_max_wait_ms": 0.5}, "fetch_max_wait_ms"),
        ({"fetch_interval_ms": -3}, "fetch_interval_ms"),
        ({"fetch_interval_ms": "200"}, "fetch_interval_ms"),
    ],
)
def test_bad_fetch_settings_are_refused_by_name(fetch, complaint):
    with pytest.raises(ValueError, match=complaint):
        _app("ext-bad", **fetch)


def test_a_broker_url_for_another_driver_is_refused_clearly():
    app = _app("ext-driver", broker="confluent://127.0.0.1:9092")
    with pytest.raises(ValueError, match="aiokafka driver.*confluent://127.0.0.1:9092"):
        app.transport  # noqa: B018 - built on first access


def test_the_started_thread_waits_and_paces_as_configured(broker, tmp_path):
    """Against the embedded broker: the consumer thread's aiokafka consumer, once started,
    has the configured fetch wait and its own Fetcher paced; interval 0 leaves it unpaced."""

    async def started(app: AegisApp) -> tuple[int, object, object]:
        thread = app.consumer._thread
        await thread.start()
        try:
            kafka = thread._ensure_consumer()
            fetcher = kafka._fetcher
            return fetcher._fetch_max_wait_ms, thread.fetch_pacer, fetcher._proc_fetch_request
        finally:
            await thread.stop()

    wait, pacer, send = asyncio.run(started(_app("ext-started", broker.url)))
    assert wait == 40
    assert isinstance(pacer, FetchPacer) and send is pacer and pacer.interval_ms == 200
    wait, pacer, send = asyncio.run(started(_app("ext-unpaced", broker.url, fetch_interval_ms=0)))
    assert pacer is None and not isinstance(send, FetchPacer)

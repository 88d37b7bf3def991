"""The one client factory: a connection from Settings, the keyword arguments every client
gets from it, each call site's own options, and pacing only where asked."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from aegis_app.core.settings import Settings
from aegis_app.kafka import clients
from aegis_app.kafka.clients import KafkaConnection, connection_of
from aegis_app.kafka.fetch_pacing import PacedConsumer


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("kafka://127.0.0.1:9092", ("127.0.0.1:9092",)),
        ("kafka://h1:9092;h2:9093", ("h1:9092", "h2:9093")),
        ("h1:1,h2:2", ("h1:1", "h2:2")),
        ("127.0.0.1:19092", ("127.0.0.1:19092",)),
        ("kafka://broker", ("broker:9092",)),  # Kafka's default port
    ],
)
def test_a_broker_url_becomes_every_bootstrap_server(url, servers):
    connection = KafkaConnection.from_url(url)
    assert connection.bootstrap_servers == servers
    assert connection.client_kwargs() == {"bootstrap_servers": list(servers)}
    assert connection.fetch_interval_ms == 0


@pytest.mark.parametrize("url", ["", "kafka://:9092", "kafka://h:port", "h:0", "h:70000"])
def test_a_bad_broker_url_names_what_is_wrong(url):
    with pytest.raises(ValueError, match="broker"):
        KafkaConnection.from_url(url)


def test_the_connection_comes_from_settings_with_its_fetch_interval():
    settings = Settings(kafka_broker="kafka://10.1.2.3:9094", fetch_interval_ms=200)
    connection = KafkaConnection.from_settings(settings)
    assert connection == KafkaConnection(("10.1.2.3:9094",), 200)
    assert str(connection) == "10.1.2.3:9094"
    assert connection.first_server == ("10.1.2.3", 9094)
    assert connection_of(connection) is connection
    assert connection_of("kafka://10.1.2.3:9094") == KafkaConnection(("10.1.2.3:9094",))
    with pytest.raises(ValueError, match="fetch_interval_ms"):
        KafkaConnection(("h:1",), -1)


def test_each_client_gets_the_connection_and_its_own_options():
    connection = KafkaConnection(("127.0.0.1:1", "127.0.0.2:2"), fetch_interval_ms=150)

    async def build() -> dict:
        built = {
            "producer": clients.producer(connection, linger_ms=5, acks=1),
            "consumer": clients.consumer(connection, "t1", "t2", group_id="g"),
            "paced": clients.consumer(connection, "t1", paced=True, group_id=None),
            "admin": clients.admin_client(connection, request_timeout_ms=1234),
            "client": clients.client(connection, retry_backoff_ms=50),
        }
        for name in ("producer", "consumer", "paced"):
            await built[name].stop()  # never started: only releases the client
        await built["client"].close()
        return built

    built = asyncio.run(build())
    producer, consumer, paced = built["producer"], built["consumer"], built["paced"]
    assert isinstance(producer, AIOKafkaProducer)
    assert producer.client._bootstrap_servers == ["127.0.0.1:1", "127.0.0.2:2"]
    assert isinstance(consumer, AIOKafkaConsumer)
    assert not isinstance(consumer, PacedConsumer)  # not paced unless asked
    assert consumer._group_id == "g"
    assert consumer._client._bootstrap_servers == ["127.0.0.1:1", "127.0.0.2:2"]
    assert consumer._subscription.subscription.topics == {"t1", "t2"}
    assert isinstance(paced, PacedConsumer) and paced.fetch_interval_ms == 150
    assert isinstance(built["admin"], AIOKafkaAdminClient)
    assert isinstance(built["client"], AIOKafkaClient)


def test_a_call_site_cannot_bring_its_own_connection_options():
    async def build() -> None:
        clients.producer("kafka://127.0.0.1:1", bootstrap_servers="elsewhere:9092")

    with pytest.raises(TypeError, match="bootstrap_servers.*KafkaConnection"):
        asyncio.run(build())

    async def build_consumer() -> None:
        clients.consumer("kafka://127.0.0.1:1", security_protocol="SSL")

    with pytest.raises(TypeError, match="security_protocol"):
        asyncio.run(build_consumer())


def test_every_client_gets_the_same_tls_and_sasl(tmp_path):
    from tests.aegis_app.kafka.tls_material import make_tls_files

    tls = make_tls_files(tmp_path)
    connection = KafkaConnection(
        ("127.0.0.1:1",),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="alice",
        sasl_password="pw-for-the-test",
        ssl_cafile=str(tls.ca),
    )

    async def build() -> list:
        producer = clients.producer(connection, acks=1)
        consumer = clients.consumer(connection, "t", group_id=None)
        paced = clients.consumer(connection, "t", paced=True, group_id=None)
        admin = clients.admin_client(connection)
        client = clients.client(connection)
        inner = [producer.client, consumer._client, paced._client, admin._client, client]
        for started in (producer, consumer, paced):
            await started.stop()
        await admin.close()
        await client.close()
        return inner

    for inner in asyncio.run(build()):
        assert inner._security_protocol == "SASL_SSL"
        assert inner._sasl_mechanism == "SCRAM-SHA-256"
        assert inner._sasl_plain_username == "alice"
        assert inner._sasl_plain_password.reveal() == "pw-for-the-test"
        assert inner._ssl_context is connection.ssl_context  # one context, built once

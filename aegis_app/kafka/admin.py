"""Kafka administration every Aegis process shares: wait for a broker, create topics.

Works against any Kafka-compatible broker. Notes on the embedded Tansu broker's quirks that
shaped it (no topic auto-creation by name, no validation in CreateTopics) are in
aegis_app/harness/embedded_broker.py.

Waiting for a broker retries while it is unreachable (it may be starting), but not when the
cluster refused this client's TLS or SASL (a wrong password, an untrusted certificate):
that raises :class:`BrokerSecurityError` at once, naming the cause.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from aegis_app.kafka import clients, security
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.security import KafkaSecurityError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_TOPIC_ALREADY_EXISTS = 36
T = TypeVar("T")


class BrokerError(RuntimeError):
    """The broker could not be started, reached or administered."""


class BrokerSecurityError(BrokerError, KafkaSecurityError):
    """The cluster refused this client's TLS or SASL (or is not trusted): not retried."""


class TopicMismatchError(BrokerError):
    """A topic exists with a partition count other than the one asked for."""


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop is already running."""

    async def _main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _main()).result()


async def _tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def metadata_once(bootstrap: Broker, timeout: float) -> BaseException | None:
    """One real Kafka round trip (ApiVersions, the SASL login if any, Metadata); None on
    success, else the error: a :class:`KafkaSecurityError` naming the cause when the
    cluster refused this client's TLS or SASL."""
    connection = clients.connection_of(bootstrap)
    host, port = connection.first_server
    if not await _tcp_open(host, port, timeout):
        return ConnectionRefusedError(f"nothing accepts TCP connections at {host}:{port}")
    client = clients.client(
        connection,
        request_timeout_ms=max(500, int(timeout * 1000)),
        retry_backoff_ms=50,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        if not client.cluster.brokers():
            return BrokerError("metadata lists no brokers")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"...
        return security.explain(exc, connection) or exc  # ...unless the login was refused
    finally:
        await client.close()


async def group_session_bounds(
    bootstrap: Broker, timeout: float = 5.0
) -> tuple[float | None, float | None]:
    """The shortest and longest consumer-group session the cluster accepts, in seconds
    (group.min/max.session.timeout.ms of one of its brokers); None for a bound it does not
    say (the embedded broker answers no DescribeConfigs and accepts any session)."""
    admin = clients.admin_client(bootstrap, request_timeout_ms=int(timeout * 1000))
    wanted = {"group.min.session.timeout.ms": None, "group.max.session.timeout.ms": None}
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        node = str(cluster["brokers"][0]["node_id"])
        resource = ConfigResource(ConfigResourceType.BROKER, node, configs=wanted)
        responses = await asyncio.wait_for(admin.describe_configs([resource]), timeout)
    except Exception as exc:  # noqa: BLE001 - a broker that cannot say sets no bound
        log.debug("the broker does not say its session bounds: %r", exc)
        return None, None
    finally:
        await admin.close()
    found: dict[str, float] = {}
    for response in responses:
        for _code, _message, _type, _name, entries in response.resources:
            for entry in entries:
                name, value = entry[0], entry[1]
                if name in wanted and value not in (None, ""):
                    found[name] = int(value) / 1000
    return found.get("group.min.session.timeout.ms"), found.get("group.max.session.timeout.ms")


# --------------------------------------------------------------------------- readiness


async def wait_for_broker_async(bootstrap: Broker, timeout: float = 30.0) -> None:
    """Return once a Kafka Metadata request to ``bootstrap`` succeeds; BrokerError on timeout.

    ``bootstrap`` is a :class:`~aegis_app.kafka.clients.KafkaConnection`, ``host:port`` or a
    ``kafka://host:port`` URL (the first host is probed for TCP first).
    """
    connection = clients.connection_of(bootstrap)
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            hint = ""
            if connection.security_protocol == security.PLAINTEXT:
                hint = (
                    "; if the cluster requires TLS or SASL, set "
                    f"{security.setting_names('kafka_security_protocol')}"
                )
            raise BrokerError(
                f"no Kafka broker answered a metadata request at {connection.describe()} "
                f"within {timeout:g}s (last error: {last!r}){hint}"
            )
        last = await metadata_once(connection, min(2.0, max(remaining, 0.1)))
        if last is None:
            return
        if isinstance(last, KafkaSecurityError):  # a refusal stays a refusal: no retry
            raise BrokerSecurityError(str(last)) from last
        await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def wait_for_broker(bootstrap: Broker, timeout: float = 30.0) -> None:
    """Sync wrapper of :func:`wait_for_broker_async`."""
    run_sync(lambda: wait_for_broker_async(bootstrap, timeout))


def check_credentials(bootstrap: Broker, timeout: float = 10.0) -> None:
    """For a process that runs while the broker is down (the API): one connection attempt
    that raises :class:`BrokerSecurityError` if the cluster refuses this client's TLS or
    SASL; any other outcome (an unreachable broker included) is left to the caller.
    Nothing is tried for a plaintext connection."""
    connection = clients.connection_of(bootstrap)
    if connection.security_protocol == security.PLAINTEXT:
        return
    last = run_sync(lambda: metadata_once(connection, timeout))
    if isinstance(last, KafkaSecurityError):
        raise BrokerSecurityError(str(last)) from last


# --------------------------------------------------------------------------- topics


def _check_topic_args(names: list[str], partitions: int, replication_factor: int) -> None:
    bad = [n for n in names if not _TOPIC_NAME.match(n) or n in (".", "..")]
    if bad:
        raise ValueError(f"illegal Kafka topic names (allowed: [A-Za-z0-9._-], 1-249): {bad}")
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")


async def _all_topics(admin: AIOKafkaAdminClient) -> dict[str, dict]:
    # describe_topics() without names asks for ALL topics; naming a missing topic in a
    # Metadata request would auto-create it on Tansu (and on Kafka with auto-create on).
    return {t["topic"]: t for t in await admin.describe_topics()}


def _partition_count(topic: dict) -> int:
    return len(topic.get("partitions") or [])


def _topic_ready(topic: dict | None, partitions: int | None) -> bool:
    if topic is None or topic.get("error_code", 0) != 0:
        return False
    parts = topic.get("partitions") or []
    if partitions is not None and len(parts) != partitions:
        return False
    return bool(parts) and all(p.get("error_code", 0) == 0 and p["leader"] >= 0 for p in parts)


async def ensure_topics_async(
    bootstrap: Broker,
    names: Iterable[str],
    partitions: int,
    timeout: float = 30.0,
    *,
    replication_factor: int = 1,
    strict: bool = True,
    configs: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Create the missing topics among ``names``; return ``{name: partition count}``.

    ``configs`` are the topic configs of the topics this creates (e.g.
    ``{"cleanup.policy": "compact"}``). Idempotent: topics that already exist are left
    alone. With ``strict`` (the default) an existing topic whose partition count differs
    from ``partitions`` raises :class:`TopicMismatchError` (Faust needs a changelog to
    match its source). Returns once metadata shows every topic with all partitions led, or
    raises BrokerError on timeout.
    """
    wanted = list(dict.fromkeys(names))
    _check_topic_args(wanted, partitions, replication_factor)
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        return max(deadline - time.monotonic(), 0.1)

    await wait_for_broker_async(bootstrap, remaining())
    if not wanted:
        return {}
    admin = clients.admin_client(
        bootstrap, request_timeout_ms=max(1000, int(min(remaining(), 10.0) * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), remaining())
        existing = await _all_topics(admin)
        mismatched = {
            n: _partition_count(existing[n])
            for n in wanted
            if n in existing and _partition_count(existing[n]) != partitions
        }
        if strict and mismatched:
            raise TopicMismatchError(
                f"topics exist with a partition count other than {partitions}: {mismatched}"
            )
        missing = [n for n in wanted if n not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(n, partitions, replication_factor, topic_configs=dict(configs or {}))
                    for n in missing
                ],
                timeout_ms=int(min(remaining(), 30.0) * 1000),
            )
            failures = []
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    failures.append(f"{name}: {for_code(code).__name__} ({message})")
            if failures:
                raise BrokerError("could not create topics: " + "; ".join(failures))
        expected = {n: (partitions if (strict or n in missing) else None) for n in wanted}
        while True:
            topics = await _all_topics(admin)
            not_ready = [n for n in wanted if not _topic_ready(topics.get(n), expected[n])]
            if not not_ready:
                return {n: _partition_count(topics[n]) for n in wanted}
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"topics not visible with {partitions} led partitions within "
                    f"{timeout:g}s: {not_ready}"
                )
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def ensure_topics(
    bootstrap: Broker,
    names: Iterable[str],
    partitions: int,
    timeout: float = 30.0,
    *,
    replication_factor: int = 1,
    strict: bool = True,
    configs: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Sync wrapper of :func:`ensure_topics_async`."""
    wanted = list(names)
    return run_sync(
        lambda: ensure_topics_async(
            bootstrap,
            wanted,
            partitions,
            timeout,
            replication_factor=replication_factor,
            strict=strict,
            configs=configs,
        )
    )

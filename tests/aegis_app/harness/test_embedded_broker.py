"""The embedded Tansu broker and topic administration (aegis_app/broker.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aegis_app.harness.embedded_broker import (
    EmbeddedBroker,
    PortInUseError,
    free_port,
    port_in_use,
    tansu_binary,
)
from aegis_app.kafka.admin import (
    BrokerError,
    TopicMismatchError,
    ensure_topics,
    ensure_topics_async,
    wait_for_broker,
)

pytestmark = pytest.mark.timeout(120)


def _names(*suffixes: str) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"test.{run}.{s}" for s in suffixes]


async def _partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


def test_binary_is_executable() -> None:
    path = tansu_binary()
    assert path.is_file() and os.access(path, os.X_OK)


def test_start_stop_frees_the_port(tmp_path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log")
    assert broker.url == f"kafka://127.0.0.1:{port}"
    assert broker.bootstrap == f"127.0.0.1:{port}"
    with broker:
        assert broker.running
        pid = broker.pid
        assert pid is not None
        assert port_in_use(port)
        wait_for_broker(broker.bootstrap, timeout=5)
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_in_use(port)
    assert "listening on" in (tmp_path / "tansu.log").read_text()
    # The same object can start again on the freed port.
    broker.start()
    try:
        wait_for_broker(broker.url, timeout=5)
    finally:
        broker.stop()
    broker.stop()  # idempotent


def test_port_in_use_is_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(PortInUseError, match=f"127.0.0.1:{broker.port} is already in use"):
        EmbeddedBroker(port=broker.port).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(taken)):
            EmbeddedBroker(port=taken).start()
    assert broker.running


def test_wait_for_broker_times_out_on_a_dead_port() -> None:
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        wait_for_broker(f"127.0.0.1:{free_port()}", timeout=0.5)


def test_ensure_topics_creates_with_partition_counts(broker: EmbeddedBroker) -> None:
    four = _names("a", "b")
    two = _names("c")
    assert ensure_topics(broker.bootstrap, four, partitions=4) == {n: 4 for n in four}
    assert ensure_topics(broker.url, two, partitions=2) == {n: 2 for n in two}
    counts = asyncio.run(_partition_counts(broker.bootstrap))
    assert {n: counts[n] for n in four + two} == {four[0]: 4, four[1]: 4, two[0]: 2}


def test_ensure_topics_is_idempotent(broker: EmbeddedBroker) -> None:
    old, new = _names("old", "new")
    ensure_topics(broker.bootstrap, [old], partitions=3)
    assert ensure_topics(broker.bootstrap, [old, new, old], partitions=3) == {old: 3, new: 3}
    assert ensure_topics(broker.bootstrap, [old, new], partitions=3) == {old: 3, new: 3}
    assert ensure_topics(broker.bootstrap, [], partitions=3) == {}


def test_ensure_topics_refuses_a_partition_mismatch(broker: EmbeddedBroker) -> None:
    (name,) = _names("mismatch")
    ensure_topics(broker.bootstrap, [name], partitions=2)
    with pytest.raises(TopicMismatchError, match=name):
        ensure_topics(broker.bootstrap, [name], partitions=4)
    assert ensure_topics(broker.bootstrap, [name], partitions=4, strict=False) == {name: 2}


def test_ensure_topics_validates_arguments(broker: EmbeddedBroker) -> None:
    # Tansu itself accepts all of these, so the client must refuse them.
    with pytest.raises(ValueError, match="partitions"):
        ensure_topics(broker.bootstrap, _names("zero"), partitions=0)
    with pytest.raises(ValueError, match="illegal"):
        ensure_topics(broker.bootstrap, ["bad name!"], partitions=1)
    with pytest.raises(ValueError, match="replication_factor"):
        ensure_topics(broker.bootstrap, _names("rf"), partitions=1, replication_factor=0)


def test_ensure_topics_async_and_sync_inside_a_running_loop(broker: EmbeddedBroker) -> None:
    first, second = _names("async", "sync-in-loop")

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        a = await ensure_topics_async(broker.bootstrap, [first], partitions=2)
        b = ensure_topics(broker.bootstrap, [second], partitions=2)  # runs in a thread
        return a, b

    assert asyncio.run(main()) == ({first: 2}, {second: 2})


def test_produce_consume_roundtrip(broker: EmbeddedBroker) -> None:
    (topic,) = _names("roundtrip")
    ensure_topics(broker.bootstrap, [topic], partitions=4)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(50)}

    async def main() -> dict[bytes, bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for key, value in sent.items():
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: dict[bytes, bytes] = {}
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(4)])
            async with asyncio.timeout(30):
                while len(got) < len(sent):
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        got.update({r.key: r.value for r in records})
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(main()) == sent


def test_a_broker_that_dies_while_starting_reports_its_log(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("aegis_app.harness.embedded_broker.tansu_binary", lambda: fake)
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "fake.log")
    with pytest.raises(BrokerError, match=r"(?s)exited with status 3.*boom: cannot start"):
        broker.start(timeout=10)
    assert not broker.running


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_foreground_stops_cleanly_on_a_signal(sig: signal.Signals) -> None:
    port = free_port()
    code = (
        "from aegis_app.harness.embedded_broker import run_foreground; "
        f"raise SystemExit(run_foreground({port}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"kafka://127.0.0.1:{port}" in line
        wait_for_broker(f"127.0.0.1:{port}", timeout=5)
        proc.send_signal(sig)
        try:
            status = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Seen once, not reproduced: say which of the session's processes still runs.
            ps = subprocess.run(
                ["ps", "-o", "pid,stat,wchan:20,etime,args", "--sid", str(proc.pid)],
                capture_output=True,
                text=True,
            )
            pytest.fail(f"still running 20 s after {sig.name}:\n{ps.stdout}")
        assert status == 0
        assert not port_in_use(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

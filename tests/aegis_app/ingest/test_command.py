"""`aegis ingest kinesis` as users meet it: one clear line and a non-zero exit for the
errors they will hit, and a clean stop on SIGTERM against the real embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from aegis_app.cli.main import main
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import TRANSACTIONS_TOPIC
from aegis_app.harness.embedded_broker import free_port
from aegis_app.harness.kinesis_local import MOTO_ENV
from aegis_app.harness.stack import aegis_command, read_topic
from aegis_app.serving.store import Store
from tests.aegis_app.ingest.conftest import REGION
from tests.aegis_app.ingest.streams import as_records, generated, put_all, sent_id, wait_until


def ingest(*args: str) -> list[str]:
    return ["ingest", "kinesis", *args]


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("aegis ingest kinesis: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_missing_stream_is_named(moto_server, aws_env, capsys):
    code = main(
        ingest("--stream", "no-such-stream", "--region", REGION, "--endpoint-url", moto_server.url)
    )
    assert code == 1
    assert "stream 'no-such-stream' not found" in error_of(capsys)


def test_no_credentials(moto_server, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(ingest("--stream", "s", "--region", REGION, "--endpoint-url", moto_server.url))
    assert code == 1
    assert "no AWS credentials found" in error_of(capsys)


def test_no_region(aws_env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert main(ingest("--stream", "s")) == 1
    assert "no AWS region" in error_of(capsys)


def test_an_unreachable_endpoint(aws_env, capsys):
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert main(ingest("--stream", "s", "--region", REGION, "--endpoint-url", nowhere)) == 1
    assert f"cannot reach Kinesis (region {REGION} at {nowhere})" in error_of(capsys)


def test_a_malformed_endpoint(aws_env, capsys):
    assert main(ingest("--stream", "s", "--endpoint-url", "127.0.0.1:4567")) == 1
    assert "endpoint URL '127.0.0.1:4567'" in error_of(capsys)


def test_an_unreachable_broker(kinesis, moto_server, stream_name, capsys):
    kinesis.create_stream(StreamName=stream_name, ShardCount=1)
    args = ("--stream", stream_name, "--region", REGION, "--endpoint-url", moto_server.url)
    broker = f"kafka://127.0.0.1:{free_port()}"
    assert main(ingest(*args, "--broker", broker, "--broker-timeout", "1")) == 1
    assert "Kafka broker unreachable" in error_of(capsys)


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ((), {}, "no stream: pass --stream or set AEGIS_KINESIS_STREAM"),
        (("--stream", "s", "--max-records", "0"), {}, "--max-records: expected 1 to 10000"),
        (("--stream", "s", "--poll-interval", "0"), {}, "--poll-interval: must be positive"),
        (("--stream", "s"), {"AEGIS_KINESIS_FROM": "sideways"}, "--from: expected one of"),
        ((), {"AEGIS_KINESIS_STREAM": "s", "AEGIS_KINESIS_MAX_RECORDS": "20000"}, "--max-records"),
    ],
)
def test_bad_options(args, env, words, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(ingest(*args)) == 2
    assert words in error_of(capsys)


def test_sigterm_flushes_checkpoints_and_exits_cleanly(
    kinesis, moto_server, stream_name, broker, tmp_path
):
    """The real command against moto and the embedded broker: records arrive on the topic,
    progress is shown, SIGTERM ends it with exit 0, a summary, and the shards checkpointed."""
    kinesis.create_stream(StreamName=stream_name, ShardCount=2)
    txs = generated(60, seed=21, first_id=7_000_000)
    where = put_all(kinesis, stream_name, as_records(txs))
    db_url = f"sqlite:///{tmp_path}/aegis.db"
    args = aegis_command(
        *ingest(
            "--stream", stream_name, "--region", REGION, "--endpoint-url", moto_server.url,
            "--broker", broker.url, "--db-url", db_url, "--poll-interval", "0.1",
            "--progress-interval", "0.5",
        )
    )  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **MOTO_ENV},
        text=True,
    )
    try:
        wanted = {str(tx.transaction_id) for tx in txs}
        records = read_topic(
            broker.url,
            TRANSACTIONS_TOPIC,
            lambda recs: wanted <= _ids(recs),
            timeout=60,
        )
        assert wanted <= _ids(records)
        store = Store(db_url, migrate=False)
        try:
            last: dict[str, str] = {}
            for shard_id, sequence in where:
                last[shard_id] = sequence
            wait_until(
                lambda: (
                    {
                        s: c["sequence_number"]
                        for s, c in store.kinesis_checkpoints(stream_name).items()
                    }
                    == last
                ),
                20,
                "checkpoints",
            )
        finally:
            store.close()
        time.sleep(1.0)  # at least one progress line (every 0.5 s)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stream"] == stream_name
    assert summary["forwarded"] == len(txs) and summary["dead_lettered"] == 0
    assert f"kinesis {stream_name}: " in err and "Traceback" not in err


def _ids(records) -> set[str]:
    """Transaction ids on the topic (the session's broker may hold other tests' records)."""
    ids = set()
    for record in records:
        try:
            ids.add(sent_id(record.value))
        except InvalidRecord:
            pass
    return ids

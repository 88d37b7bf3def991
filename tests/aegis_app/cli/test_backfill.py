"""`aegis backfill`: its options and errors, and the records it writes on a real (embedded)
broker: every key once, in its source partition, serialized as the worker's table does."""

from __future__ import annotations

import json
import uuid

import pytest

from aegis_app.cli.commands.backfill import parse_until
from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from aegis_app.core.source import SourceReader
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port
from aegis_app.harness.stack import read_topic
from aegis_app.worker.backfill import source_partition
from tables.engine import StreamEngine
from tables.engine.snapshot import build_states


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> str:
    """Ten days of a small generated history, one malformed row among them."""
    path = tmp_path_factory.mktemp("backfill") / "tx.csv"
    frame = simulator.generate(customers=30, terminals=60, days=10, seed=4)
    frame.loc[3, "TX_AMOUNT"] = -1.0  # a negative amount: reported and skipped
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    """A broker of this module's own: backfill creates every topic of the worker (the
    shared topics too) with its --partitions, which other tests' topics must not meet."""
    embedded = EmbeddedBroker(
        port=free_port(), log_path=tmp_path_factory.mktemp("backfill-broker") / "tansu.log"
    )
    try:
        embedded.start()
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def app_id(monkeypatch) -> str:
    """An app id of the test's own: the session broker's topics outlive the test."""
    name = f"aegis-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AEGIS_APP_ID", name)
    return name


def read_records(broker_url: str, topic: str, count: int) -> list:
    return read_topic(broker_url, topic, lambda records: len(records) >= count, timeout=30)


def test_until_reads_dates_and_times_as_utc():
    assert parse_until(None) is None
    assert parse_until("2018-04-20") == 1524182400
    assert parse_until("2018-04-20 12:00:00") == 1524182400 + 12 * 3600
    assert parse_until("2018-04-20T12:00:00+02:00") == 1524182400 + 10 * 3600


@pytest.mark.parametrize("bad", ["yesterday-ish", "2018-13-45", ""])
def test_an_unreadable_until_is_named_before_anything_runs(history, bad, capsys):
    assert main(["backfill", "--data", history, "--until", bad, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "aegis backfill: error: --until: cannot read" in err


def test_a_missing_file_is_named(tmp_path, capsys):
    assert main(["backfill", "--data", str(tmp_path / "nope.csv"), "--quiet"]) == 2
    assert "nope.csv: cannot read it" in capsys.readouterr().err


def test_no_transaction_before_until_is_an_error(history, capsys):
    assert main(["backfill", "--data", history, "--until", "2000-01-01", "--quiet"]) == 2
    assert "no transactions before 2000-01-01 00:00:00 to build" in capsys.readouterr().err


def test_data_is_required(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["backfill"])
    assert exited.value.code == 2
    assert "--data" in capsys.readouterr().err


def test_it_writes_each_state_once_where_the_worker_would(history, own_broker, app_id, capsys):
    broker = own_broker
    argv = ["backfill", "--data", history, "--broker", broker.url, "--quiet"]
    assert main([*argv, "--until", "2018-04-08", "--partitions", "3"]) == 0
    captured = capsys.readouterr()
    assert f"{history}:5: " in captured.err  # the malformed row, named by its line
    summary = json.loads(captured.out)
    assert summary["until"] == "2018-04-08 00:00:00"
    assert summary["as_of"] < "2018-04-08"

    config = load(resolve(None))
    frame, _ = SourceReader(config).read_file(history)
    frame = frame[frame["ts"] < parse_until("2018-04-08")]
    assert summary["rows"] == len(frame)
    built = build_states(frame, config)
    assert set(summary["entities"]) == set(StreamEngine(config).entities) == set(built)
    for entity, states in built.items():
        written = summary["entities"][entity]
        assert written["topic"] == f"{app_id}-{entity}_state-changelog"
        assert written["keys"] == len(states.states) and written["bytes"] == states.bytes
        records = read_records(broker.url, written["topic"], len(states.states))
        # Faust's table serializes a str key as JSON; the value is the packed state as is.
        got = {json.loads(r.key): (r.partition, r.value) for r in records}
        assert len(records) == len(got) == len(states.states)
        assert got == {k: (source_partition(k, 3), v) for k, v in states.states.items()}

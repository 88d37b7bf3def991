"""A Kinesis record's data to a wire message, and the dead letter of one that is not."""

from __future__ import annotations

import base64

import orjson
import pytest

from aegis_app.core import config as configs
from aegis_app.core.codec import RecordCodec
from aegis_app.core.files import simulator_config
from aegis_app.core.records import InvalidRecord
from aegis_app.ingest.conversion import dead_letter, kinesis_data, message_from_data

ROW = {
    "TRANSACTION_ID": 17,
    "TX_DATETIME": "2018-04-01 00:00:31",
    "CUSTOMER_ID": 596,
    "TERMINAL_ID": 3156,
    "TX_AMOUNT": 57.16,
    "TX_TIME_SECONDS": 31,
    "TX_TIME_DAYS": 0,
    "TX_FRAUD": 0,
    "TX_FRAUD_SCENARIO": 0,
}
LIMIT = 16_384
CODEC = RecordCodec(simulator_config())


def test_a_file_row_as_json_is_the_message_replay_sends():
    payload, key = message_from_data(orjson.dumps(ROW), CODEC, LIMIT)
    assert payload == CODEC.encode(ROW)
    assert key == b"596"
    record = CODEC.decode(payload)
    assert (record["transaction_id"], record["card"], record["amount"]) == ("17", "596", 57.16)


def test_the_label_is_optional_and_extra_keys_ignored():
    row = {k: v for k, v in ROW.items() if not k.startswith("TX_FRAUD")}
    payload, _ = message_from_data(orjson.dumps({**row, "SOMETHING_ELSE": [1, 2]}), CODEC, LIMIT)
    assert CODEC.decode(payload)["label"] is None


def test_kinesis_data_reads_back_to_the_same_message():
    data = kinesis_data({**ROW, "TX_FRAUD_SCENARIO": None})
    assert message_from_data(data, CODEC, LIMIT) == message_from_data(
        orjson.dumps(ROW), CODEC, LIMIT
    )
    assert "TX_FRAUD_SCENARIO" not in orjson.loads(data)  # missing values are left out


def test_records_in_another_schema_with_its_config():
    sparkov = RecordCodec(configs.load(configs.preset_dirs()[0] / "sparkov.toml"))
    row = {
        "trans_num": "2a2420bc51233f5769d30fa9c101ff7a",
        "trans_date_trans_time": "2019-01-07 13:04:46",
        "cc_num": 4599735407877245080,
        "merchant": "fraud_Medhurst Inc",
        "amt": 83.03,
        "category": "home",
        "is_fraud": 0,
    }
    payload, key = message_from_data(orjson.dumps(row), sparkov, LIMIT)
    assert key == b"4599735407877245080"  # a 19-digit card number, exact
    assert sparkov.decode(payload)["category"] == "home"
    with pytest.raises(InvalidRecord, match="amt: 'lots' is not a number"):
        message_from_data(orjson.dumps({**row, "amt": "lots"}), sparkov, LIMIT)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "data: empty"),
        (b"not json", "data: not JSON"),
        (b'{"TRANSACTION_ID": 1', "data: not JSON"),
        (b"\xff\xfe{}", "data: not JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"a string"', "got a string"),
        (b"null", "got null"),
        (b"12", "got a number"),
        (orjson.dumps({**ROW, "TX_AMOUNT": -5}), "TX_AMOUNT: -5 is not in 0 .. 1e9"),
        (orjson.dumps({**ROW, "TX_AMOUNT": "lots"}), "TX_AMOUNT: 'lots' is not a number"),
        (orjson.dumps({**ROW, "TX_DATETIME": "yesterday"}), "TX_DATETIME: 'yesterday' does not"),
        (orjson.dumps({**ROW, "CUSTOMER_ID": True}), "CUSTOMER_ID: expected an id"),
        (orjson.dumps({**ROW, "TX_FRAUD": 3}), "TX_FRAUD: expected 0 or 1"),
        (orjson.dumps({k: v for k, v in ROW.items() if k != "TERMINAL_ID"}), "TERMINAL_ID"),
        (orjson.dumps({**ROW, "TERMINAL_ID": "x" * 300}), "TERMINAL_ID: expected an id of"),
        (b"x" * (LIMIT + 1), f"{LIMIT + 1} bytes exceeds the {LIMIT}-byte limit"),
    ],
)
def test_bad_data_is_refused_with_a_reason(data, words):
    with pytest.raises(InvalidRecord) as refused:
        message_from_data(data, CODEC, LIMIT)
    assert words in str(refused.value)


def test_dead_letter_has_the_workers_fields_and_where_the_record_was():
    key, letter = dead_letter(
        "payments",
        "shardId-000000000002",
        "49590338271490256608559692538361571095921575989136588898",
        "596",
        b"not json",
        "data: not JSON",
        LIMIT,
        now_ms=1_800_000_000_000,
    )
    assert key == (
        b"kinesis:payments/shardId-000000000002/"
        b"49590338271490256608559692538361571095921575989136588898"
    )
    assert letter == {
        "reason": "data: not JSON",
        "source_topic": "kinesis:payments",
        "partition": None,
        "offset": None,
        "key_b64": base64.b64encode(b"596").decode(),
        "payload_b64": base64.b64encode(b"not json").decode(),
        "payload_bytes": 8,
        "refused_at_ms": 1_800_000_000_000,
        "shard_id": "shardId-000000000002",
        "sequence_number": "49590338271490256608559692538361571095921575989136588898",
    }
    orjson.dumps(letter)  # travels as JSON, like the worker's


def test_an_oversized_records_dead_letter_carries_its_head_and_full_size():
    data = b"{" + b" " * 1_000_000 + b"}"
    _, letter = dead_letter("s", "shardId-0", "1", "k", data, "too big", LIMIT)
    assert len(base64.b64decode(letter["payload_b64"])) == LIMIT
    assert letter["payload_bytes"] == len(data)
    assert letter["refused_at_ms"] > 0

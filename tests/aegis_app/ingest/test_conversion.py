"""A Kinesis record's data to a transaction, and the dead letter of one that is not."""

from __future__ import annotations

import base64

import orjson
import pytest

from aegis_app.core.records import InvalidRecord, from_file_row
from aegis_app.ingest.conversion import dead_letter, kinesis_data, transaction_from_data

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


def test_a_file_row_as_json_is_the_same_transaction_as_the_file_row():
    tx = transaction_from_data(orjson.dumps(ROW), LIMIT)
    assert tx == from_file_row(ROW)
    assert (tx.transaction_id, tx.customer_id, tx.tx_amount) == (17, 596, 57.16)


def test_label_fields_are_optional_and_extra_keys_ignored():
    row = {k: v for k, v in ROW.items() if not k.startswith("TX_FRAUD")}
    tx = transaction_from_data(orjson.dumps({**row, "SOMETHING_ELSE": [1, 2]}), LIMIT)
    assert tx.tx_fraud is None and tx.tx_fraud_scenario is None


def test_kinesis_data_reads_back_to_the_same_transaction():
    tx = transaction_from_data(orjson.dumps(ROW), LIMIT)
    assert transaction_from_data(kinesis_data(tx), LIMIT) == tx
    assert set(orjson.loads(kinesis_data(tx))) == {
        "TRANSACTION_ID",
        "TX_DATETIME",
        "CUSTOMER_ID",
        "TERMINAL_ID",
        "TX_AMOUNT",
        "TX_FRAUD",
        "TX_FRAUD_SCENARIO",
    }


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
        (orjson.dumps({**ROW, "TX_AMOUNT": -5}), "tx_amount: must not be negative"),
        (orjson.dumps({**ROW, "TX_AMOUNT": "lots"}), "tx_amount: expected a number"),
        (orjson.dumps({**ROW, "TX_DATETIME": "yesterday"}), "tx_datetime: cannot parse"),
        (orjson.dumps({**ROW, "CUSTOMER_ID": True}), "customer_id: expected an integer"),
        (orjson.dumps({**ROW, "TX_FRAUD": 3}), "tx_fraud: expected 0 or 1"),
        (orjson.dumps({k: v for k, v in ROW.items() if k != "TERMINAL_ID"}), "TERMINAL_ID"),
        (
            orjson.dumps(ROW).replace(
                b'"TRANSACTION_ID":17', b'"TRANSACTION_ID":99999999999999999999'
            ),
            "transaction_id: larger than the largest 64-bit id",
        ),
        (b"x" * (LIMIT + 1), f"{LIMIT + 1} bytes exceeds the {LIMIT}-byte limit"),
    ],
)
def test_bad_data_is_refused_with_a_reason(data, words):
    with pytest.raises(InvalidRecord) as refused:
        transaction_from_data(data, LIMIT)
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

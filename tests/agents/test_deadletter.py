"""Dead-letter records keep the raw bytes, the reason and where the record came from."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from agents.deadletter import dead_letter_record


def test_the_dead_letter_keeps_payload_reason_and_position():
    message = SimpleNamespace(partition=2, offset=41, key=b"7")
    key, record = dead_letter_record(b"\x00bad", "payload: empty", "aegis.transactions", message, 5)
    assert key == b"aegis.transactions/2/41"
    assert base64.b64decode(record["payload_b64"]) == b"\x00bad"
    assert base64.b64decode(record["key_b64"]) == b"7"
    assert record["reason"] == "payload: empty" and record["payload_bytes"] == 4
    assert record["refused_at_ms"] == 5


def test_a_missing_payload_and_message_are_recorded_as_such():
    key, record = dead_letter_record(None, "tombstone", "aegis.labels")
    assert key == b"aegis.labels/None/None"
    assert record["payload_b64"] is None and record["payload_bytes"] == 0

"""The messages that pass between the worker's stages, typed, with their wire form.

The card stage sends a :class:`TxHop` to the terminal stage on aegis.by-terminal (key:
terminal id); the label router sends a :class:`LabelHop` on the same topic, so a terminal's
transactions and labels arrive in one order. The terminal stage hands a
:class:`ScoreRequest` to the scorer; any stage that refuses a record produces a
:class:`Refusal`, which the agent turns into a dead letter. The wire form is JSON, as it
always was (``{"kind": "tx" | "label", ...}``), so workers of the previous version read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TX_KIND = "tx"
LABEL_KIND = "label"


@dataclass(frozen=True, slots=True)
class TxHop:
    """A validated transaction and its card features, on its way to its terminal."""

    tx: dict[str, Any]  # wire fields plus "ts" (epoch seconds)
    card: dict[str, float]  # the card features of this transaction
    ingested_ms: int  # broker timestamp of the input record, for end-to-end latency
    source_partition: int | None  # card partition it came from (event-time skew)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": TX_KIND,
            "tx": self.tx,
            "card": self.card,
            "ingested_ms": self.ingested_ms,
            "source_partition": self.source_partition,
        }


@dataclass(frozen=True, slots=True)
class LabelHop:
    """A fraud label, on its way to the terminal of its transaction."""

    transaction_id: int
    label: int
    tx_ts: int  # the transaction's time, epoch seconds
    known_at: int  # when the label became known, epoch seconds

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": LABEL_KIND,
            "label": {
                "transaction_id": self.transaction_id,
                "label": self.label,
                "tx_ts": self.tx_ts,
                "known_at": self.known_at,
            },
        }


def hop_from_wire(message: dict[str, Any]) -> TxHop | LabelHop:
    """The typed message of an aegis.by-terminal record (KeyError/TypeError if malformed)."""
    if message.get("kind") == LABEL_KIND:
        label = message["label"]
        return LabelHop(
            transaction_id=label["transaction_id"],
            label=label["label"],
            tx_ts=label["tx_ts"],
            known_at=label["known_at"],
        )
    return TxHop(
        tx=message["tx"],
        card=message["card"],
        ingested_ms=message.get("ingested_ms"),
        source_partition=message.get("source_partition"),
    )


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """A transaction with its full feature vector, waiting for its decision."""

    tx: dict[str, Any]
    features: dict[str, float]
    ingested_ms: int | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record a stage cannot process, and why (it becomes a dead letter)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rekey:
    """A transaction keyed by something other than its card: publish it again under
    ``card_key`` so that the card's state lives in exactly one partition."""

    card_key: str

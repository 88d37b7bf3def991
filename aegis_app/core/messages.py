"""The messages that pass between the worker's stages, typed, with their wire form.

The card stage computes the card's features and sends a :class:`TxHop` on aegis.by-entity,
keyed by the record's key for the next entity of the config (the merchant, then e.g. a
category); each entity stage adds its entity's features and passes the hop on, the last one
hands a :class:`ScoreRequest` to the scorer. The label router sends a :class:`LabelHop` on
the same topic for each entity with label-based features, so an entity's transactions and
labels arrive in one order. A stage that refuses a record produces a :class:`Refusal`,
which the agent turns into a dead letter. The wire form is JSON (``{"kind": "tx" |
"label", ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TX_KIND = "tx"
LABEL_KIND = "label"


@dataclass(frozen=True, slots=True)
class TxHop:
    """A checked transaction and the features computed so far, on its way to the state of
    the next entity in `pending`."""

    record: dict[str, Any]  # the normalised record, JSON-safe (NaN as None)
    features: dict[str, Any]  # the features of the entities already visited
    pending: list[str]  # entities still to visit, in order; the first is the hop's key
    ingested_ms: int | None  # broker timestamp of the input record, for end-to-end latency

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": TX_KIND,
            "record": self.record,
            "features": self.features,
            "pending": self.pending,
            "ingested_ms": self.ingested_ms,
        }

    def passed_on(self, features: dict[str, Any]) -> TxHop:
        """The hop to the next pending entity, with this entity's features added."""
        return TxHop(
            record=self.record,
            features={**self.features, **features},
            pending=self.pending[1:],
            ingested_ms=self.ingested_ms,
        )


@dataclass(frozen=True, slots=True)
class LabelHop:
    """A fraud label, on its way to one entity's state (the entity of its transaction)."""

    entity: str
    transaction_id: str
    label: int
    tx_ts: int  # the transaction's time, epoch seconds
    known_at: int  # when the label became known, epoch seconds

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": LABEL_KIND,
            "label": {
                "entity": self.entity,
                "transaction_id": self.transaction_id,
                "label": self.label,
                "tx_ts": self.tx_ts,
                "known_at": self.known_at,
            },
        }


def hop_from_wire(message: dict[str, Any]) -> TxHop | LabelHop:
    """The typed message of an aegis.by-entity record (KeyError/TypeError if malformed)."""
    if message.get("kind") == LABEL_KIND:
        label = message["label"]
        return LabelHop(
            entity=label["entity"],
            transaction_id=label["transaction_id"],
            label=label["label"],
            tx_ts=label["tx_ts"],
            known_at=label["known_at"],
        )
    return TxHop(
        record=message["record"],
        features=message["features"],
        pending=list(message["pending"]),
        ingested_ms=message.get("ingested_ms"),
    )


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """A transaction (normalised record) with its full feature vector, waiting for its
    decision."""

    tx: dict[str, Any]
    features: dict[str, Any]
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

"""The messages that pass between the worker's stages, typed, with their wire form.

The card stage computes the whole feature vector (the card's from its state, the other
entities' from its local replica of theirs) and hands a :class:`ScoreRequest` to the
scorer; off the decision path it sends one :class:`TxHop` per further entity on
aegis.by-entity, keyed by that entity's key (the merchant, e.g. a category), and the entity
stage adds the transaction to that entity's state. The label router sends a
:class:`LabelHop` on the same topic for each entity with label-based features, so an
entity's transactions and labels arrive in one order. A stage that refuses a record
produces a :class:`Refusal`, which the agent turns into a dead letter. The wire form is
JSON (``{"kind": "tx" | "label", ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TX_KIND = "tx"
LABEL_KIND = "label"


@dataclass(frozen=True, slots=True)
class TxHop:
    """A checked transaction on its way to the state of one entity other than the card,
    off the decision path: the card stage has decided it already (from its replica of
    that entity's state); the entity stage adds it to the state."""

    entity: str  # the entity whose state takes it; the hop is keyed by its key
    record: dict[str, Any]  # the normalised record, JSON-safe (NaN as None)

    def to_wire(self) -> dict[str, Any]:
        return {"kind": TX_KIND, "entity": self.entity, "record": self.record}


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
    if "entity" not in message:
        # The form before the one-hop path (record, features, pending entities): its
        # decision was left to the entity stages, which no longer make one.
        raise KeyError("entity: a hop in the chained form of earlier versions (OPERATIONS.md)")
    return TxHop(entity=message["entity"], record=message["record"])


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

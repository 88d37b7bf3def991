"""`aegis replay`: a file's transactions onto aegis.transactions, each label when it would
have been known.

Labels are held back until the replayed clock reaches the moment they would have been
known (transaction time + label delay), so a replay never leaks a label early. A label
names every entity key of its transaction (the feature engine's keys), so that it reaches
each entity's state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import Config
from aegis_app.core.files import Row, simulator_config
from aegis_app.core.labels import Label
from aegis_app.core.pacing import Pacer
from aegis_app.core.records import InvalidRecord, format_datetime
from aegis_app.core.timerules import label_known_at
from aegis_app.kafka.clients import Broker
from aegis_app.kafka.producer import Deliveries, make_producer, send_label, send_transaction
from tables.engine import StreamEngine


@dataclass
class ReplaySummary:
    sent: int = 0
    labels_sent: int = 0
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    resent: int = 0  # sends the broker refused at first (then delivered)

    def as_dict(self) -> dict:
        return {
            "transactions_sent": self.sent,
            "labels_sent": self.labels_sent,
            "bad_rows": len(self.bad_rows),
            "resent": self.resent,
            "seconds": round(self.seconds, 2),
            "rate_per_s": round(self.sent / self.seconds, 1) if self.seconds else None,
        }


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One transaction ready for aegis.transactions: its wire bytes, its key (the card) and
    its normalised record."""

    payload: bytes
    key: bytes
    record: dict[str, Any]

    @property
    def transaction_id(self) -> str:
        return self.record["transaction_id"]

    @property
    def card(self) -> str:
        return self.record["card"]

    @property
    def ts(self) -> int:
        return self.record["ts"]


class ReplayEncoder:
    """A config's records as they are published: transactions on the wire, and their labels
    naming every entity key of the transaction."""

    def __init__(self, config: Config) -> None:
        self.codec = RecordCodec(config)
        self.engine = StreamEngine(config)

    def outgoing(self, record: dict[str, Any], raw: dict[str, Any]) -> Outgoing:
        """The message of a checked record (InvalidRecord if it does not fit the wire)."""
        # RecordCodec.encode(raw) without checking the row a second time: `record` is
        # SourceReader.record(raw) already.
        payload = self.codec.encode_fields(self.codec.fields_of(record, raw))
        return Outgoing(payload, self.codec.key(record), record)

    def label(self, record: dict[str, Any], delay_days: int) -> Label | None:
        """The chargeback label of a record whose label is known, `delay_days` after it."""
        if record.get("label") is None:
            return None
        keys = self.engine.keys(record)
        return Label(
            transaction_id=record["transaction_id"],
            label=int(record["label"]),
            source="chargeback",
            known_at=format_datetime(label_known_at(record["ts"], delay_days)),
            tx_datetime=format_datetime(record["ts"]),
            entities={name: key for name, key in keys.items() if key is not None},
            card=record["card"],
        )


def publication_order(
    rows: Iterable[Row],
    label_delay_days: int | None,
    config: Config | None = None,
) -> Iterator[tuple[str, Any]]:
    """The replay's schedule: ("tx", Outgoing), ("label", Label) or ("bad", (line, reason)),
    rows being (line, normalised record or InvalidRecord, raw row) of files.iter_*.

    A label comes right before the first transaction at or after its known time (the
    replayed clock), never earlier; labels not yet known when the rows end come last.
    `config`: the rows' schema (default: the default preset, the simulator's).
    """
    encoder = ReplayEncoder(config if config is not None else simulator_config())
    pending: list[tuple[int, int, Label]] = []  # (known_at, arrival, label)
    for arrival, (line, record, raw) in enumerate(rows):
        if isinstance(record, InvalidRecord):
            yield "bad", (line, str(record))
            continue
        try:
            message = encoder.outgoing(record, raw)
        except InvalidRecord as exc:
            yield "bad", (line, str(exc))
            continue
        while pending and pending[0][0] <= record["ts"]:
            yield "label", heapq.heappop(pending)[2]
        yield "tx", message
        if label_delay_days is not None:
            label = encoder.label(record, label_delay_days)
            if label is not None:
                known_at = label_known_at(record["ts"], label_delay_days)
                heapq.heappush(pending, (known_at, arrival, label))
    while pending:
        yield "label", heapq.heappop(pending)[2]


async def replay(
    rows: Iterable[Row],
    broker_url: Broker,
    rate: float | None = None,
    label_delay_days: int | None = 7,
    total: int | None = None,
    progress: bool = True,
    on_bad_row: Callable[[int, str], None] | None = None,
    config: Config | None = None,
) -> ReplaySummary:
    """Publish rows (files.iter_*) in order; report bad rows (line, reason); labels
    `label_delay_days` after their transaction (None: no labels). `config`: the rows'
    schema (default: the default preset, the simulator's)."""
    summary = ReplaySummary()
    producer = make_producer(broker_url)
    await producer.start()
    deliveries = Deliveries()
    pacer = Pacer(rate)
    bar = tqdm(total=total, desc="replay", unit="tx", disable=not progress, mininterval=0.5)
    try:
        for kind, item in publication_order(rows, label_delay_days, config):
            if kind == "label":
                await deliveries.send(lambda item=item: send_label(producer, item))
                summary.labels_sent += 1
                continue
            bar.update(1)
            if kind == "bad":
                summary.bad_rows.append(item)
                if on_bad_row:
                    on_bad_row(*item)
                continue
            await deliveries.send(
                lambda item=item: send_transaction(producer, item.payload, item.key)
            )
            summary.sent += 1
            if summary.sent % 5000 == 0:
                await deliveries.check()  # keeps the list of pending sends short
            await pacer.wait(summary.sent)
        await producer.flush()
        await deliveries.check(wait=True)
    finally:
        bar.close()
        await producer.stop()
    summary.resent = deliveries.resent
    summary.seconds = pacer.elapsed()
    return summary

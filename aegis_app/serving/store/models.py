"""SQLAlchemy tables of the result store. The schema itself is created by the Alembic
migrations in ``migrations/versions``; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from aegis_app.core.labels import MAX_ID_CHARS

# Alert status: review/block decisions start "open"; a label makes any decision "labelled";
# allowed, unlabelled decisions have no status (they are not alerts).
OPEN, LABELLED = "open", "labelled"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    """One decision per transaction: the record's ids, amount and time under their
    normalised names (the config maps them to its columns), its extra fields, its entity
    keys, the score and the alert status."""

    __tablename__ = "decisions"

    transaction_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS), primary_key=True)
    card: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    merchant: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    amount: Mapped[float] = mapped_column(Float)
    ts: Mapped[int] = mapped_column(BigInteger)
    tx_datetime: Mapped[str] = mapped_column(String(32))
    fields: Mapped[dict] = mapped_column(JSON)
    entities: Mapped[dict] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict] = mapped_column(JSON)
    reasons: Mapped[list] = mapped_column(JSON)
    # Every rule that matched: [{"id", "version", "action", "shadow"}] (docs/DEVELOPING.md).
    rules: Mapped[list] = mapped_column(JSON, server_default="[]")
    model_version: Mapped[str] = mapped_column(String(64))
    features: Mapped[dict] = mapped_column(JSON)
    ingested_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    label_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labelled_by: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (
        Index("ix_decisions_action", "action"),
        Index("ix_decisions_status", "status"),
        Index("ix_decisions_score", "score"),
        Index("ix_decisions_decided_at", "decided_at", "transaction_id"),
        Index("ix_decisions_card", "card", "decided_at"),
        Index("ix_decisions_merchant", "merchant", "decided_at"),
        Index("ix_decisions_tx_datetime", "tx_datetime"),
    )


class DecisionRuleHitRow(Base):
    """One decision's match of one rule of the rules table: what "decisions of this rule"
    and the per-rule statistics read. `day` is the transaction's event day (UTC), the day
    a backtest counts it on."""

    __tablename__ = "decision_rule_hits"

    transaction_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS), primary_key=True)
    rule_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    shadow: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(16))
    day: Mapped[str] = mapped_column(String(10))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_decision_rule_hits_rule_day", "rule_id", "day"),)


# A stored transaction as queries read it back (the training and backtest rows).
TRANSACTION_COLUMNS = (
    DecisionRow.transaction_id,
    DecisionRow.card,
    DecisionRow.merchant,
    DecisionRow.amount,
    DecisionRow.ts,
    DecisionRow.tx_datetime,
    DecisionRow.fields,
)


class LabelRow(Base):
    """Every label: analyst verdicts given through the API (the decision keeps the latest)
    and the chargeback/replay labels the sink reads from aegis.labels, with the card and
    the entity keys the label reaches (aegis_app.core.labels.Label)."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(MAX_ID_CHARS))
    label: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    analyst: Mapped[str | None] = mapped_column(String(128), nullable=True)
    known_at: Mapped[datetime] = mapped_column(UTCDateTime)
    card: Mapped[str | None] = mapped_column(String(MAX_ID_CHARS), nullable=True)
    entities: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_labels_transaction_id", "transaction_id"),
        Index("ix_labels_transaction_source_known", "transaction_id", "source", "known_at"),
    )


# Kinesis sequence numbers are decimal strings: 0|[1-9][0-9]{0,128}.
KINESIS_SEQUENCE_LENGTH = 129


class KinesisCheckpointRow(Base):
    """How far `aegis ingest kinesis` has read each shard of a stream.

    `sequence_number` is the last record whose forwarding (and that of every record before
    it in the shard) the Kafka broker acknowledged; a restart reads after it. `started_at`
    is when reading began for a shard that had no record yet (the bridge started with
    `--from latest`); `finished` marks a closed shard read to its end, so its children may
    be read and it is never read again.
    """

    __tablename__ = "kinesis_checkpoints"

    stream_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    shard_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sequence_number: Mapped[str | None] = mapped_column(
        String(KINESIS_SEQUENCE_LENGTH), nullable=True
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Who made a change: "<role>:<name>" of the API token (aegis_app/serving/api/auth.py).
ACTOR_CHARS = 128
LIST_NAME_CHARS = 64


class RuleRow(Base):
    """A rule: its id and who created it. What it says is in its versions."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(ACTOR_CHARS))


class RuleVersionRow(Base):
    """Every version of a rule, one row per change (an edit or a move between states):
    the newest is the rule as it stands (models/rules/lifecycle.py)."""

    __tablename__ = "rule_versions"

    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    expression: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(ACTOR_CHARS))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ListVersionRow(Base):
    """Every version of a named list rules refer to (`card in lists.vip_cards`): its
    items (text), who set them, when and why; the newest is the list in force."""

    __tablename__ = "rule_lists"

    name: Mapped[str] = mapped_column(String(LIST_NAME_CHARS), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    items: Mapped[list] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(ACTOR_CHARS))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditRow(Base):
    """Every change made through the API: who (role:name), when, what and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(ACTOR_CHARS))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_at", "at"),)

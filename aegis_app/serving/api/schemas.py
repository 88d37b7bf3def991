"""Request and response models: the API's OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["allow", "review", "block"]
Status = Literal["open", "labelled"]
MAX_ID = 2**63 - 1  # Avro long and SQL BIGINT


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, naming the field when there is one")
    field: str | None = Field(None, description="The offending field or parameter")


class TransactionIn(BaseModel):
    """A card transaction to score (validated by aegis_app.core.records.validate)."""

    model_config = ConfigDict(extra="forbid")

    transaction_id: int = Field(ge=0, le=MAX_ID)
    tx_datetime: str = Field(
        description="UTC, 'YYYY-MM-DD HH:MM:SS' or ISO 8601", examples=["2018-04-01 00:00:31"]
    )
    customer_id: int = Field(ge=0, le=MAX_ID, description="the card")
    terminal_id: int = Field(ge=0, le=MAX_ID)
    tx_amount: float = Field(ge=0, le=1e9)
    merchant_category: str | None = Field(None, max_length=256)
    channel: str | None = Field(None, max_length=256)


class DecisionOut(BaseModel):
    transaction_id: int
    customer_id: int
    terminal_id: int
    tx_amount: float
    tx_datetime: str
    action: Action
    score: float = Field(description="ensemble score in [0, 1]")
    scores: dict[str, float] = Field(description="raw score per detector, and `ensemble`")
    reasons: list[str]
    model_version: str
    features: dict[str, float]
    ingested_ms: int | None = None
    decided_at: datetime


class TransactionDecisionOut(DecisionOut):
    published: bool = Field(description="the transaction is on aegis.transactions")


class AlertOut(DecisionOut):
    status: Status | None = Field(
        None, description="open (review/block, not labelled), labelled, or null (allowed)"
    )
    label: Literal["fraud", "legitimate"] | None = None
    label_note: str | None = None
    labelled_at: datetime | None = None
    labelled_by: str | None = None
    stored_at: datetime | None = None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")
    limit: int
    offset: int


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Literal["fraud", "legitimate"]
    note: str | None = Field(None, max_length=2000)
    analyst: str | None = Field(None, max_length=128)


class LabelOut(BaseModel):
    alert: AlertOut
    published: bool = Field(description="the label is on aegis.labels")
    known_at: str


class CardOut(BaseModel):
    card_id: int
    found: bool
    as_of: str | None = Field(None, description="time of the card's latest transaction")
    transactions_30d: int
    features: dict[str, float] | None = Field(
        None, description="card features at its latest transaction (stream state)"
    )
    recent_decisions: list[AlertOut]


class ModelVersionOut(BaseModel):
    version: str
    active: bool
    created_at: str
    code_version: str
    detectors: list[str]
    feature_names: list[str]
    thresholds: dict[str, float]
    training_window: dict
    holdout_metrics: dict


class ModelsOut(BaseModel):
    active_version: str | None
    versions: list[ModelVersionOut]


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, bool]
    failed: list[str]
    detail: dict[str, str]


class FeatureDriftOut(BaseModel):
    feature: str
    psi: float


class DriftWindowOut(BaseModel):
    start: str | None = Field(
        description="first event time in the window, 'YYYY-MM-DD HH:MM:SS' UTC (inclusive)"
    )
    end: str = Field(description="end of the window (exclusive)")
    n: int = Field(description="decisions in the window (up to the sample cap)")
    n_scores: int = Field(description="of which scored by the active model (score PSI)")
    sampled: bool = Field(description="the window held more decisions; the newest were used")
    score_psi: float | None = Field(description="PSI of the ensemble score; null if none")
    feature_psi: dict[str, float] = Field(description="PSI per feature")
    max_feature: str | None
    max_feature_psi: float | None
    top_features: list[FeatureDriftOut] = Field(description="largest feature PSI first")
    threshold: float
    level: Literal["stable", "moderate", "significant", "unknown"]
    enough_data: bool = Field(description="enough decisions for the window to alert")
    alert: bool = Field(description="score PSI or the largest feature PSI >= threshold")


class DriftOut(BaseModel):
    model_version: str = Field(description="the active model, whose training data is the reference")
    threshold: float = Field(description="PSI at which a window alerts (significant shift)")
    moderate: float = Field(description="PSI of a moderate shift")
    hours: int = Field(description="length of each window")
    latest_tx_datetime: str | None = Field(description="latest stored event time; null if none")
    reference_rows: int = Field(description="training rows behind the reference")
    alert: bool = Field(description="the newest window alerts")
    windows: list[DriftWindowOut] = Field(description="oldest first; the last ends at the latest")

"""Request and response models: the API's OpenAPI document is generated from these.

The transaction body is the user's own record, so its model is built from their config
(:func:`transaction_model`): the configured columns under their own names, typed by their
declared kinds. :class:`TransactionBody` checks a body against it before the source reader
(aegis_app.core.source) checks the values, so a 422 names the column either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from aegis_app.core.config import Config
from aegis_app.core.records import MAX_AMOUNT, InvalidRecord

Action = Literal["allow", "review", "block"]
Status = Literal["open", "labelled"]
MAX_ID_CHARS = 256  # aegis_app.core.source: ids and categorical values
MAX_BULK_LABELS = 500  # transactions one POST /v1/alerts/labels labels
# Pydantic error types that mean "not of the declared type or form" (answered with what is
# expected).
TYPE_ERRORS = ("_type", "_parsing", "literal_error", "union_tag_invalid", "pattern_mismatch")


# strftime directives as regular expressions, for the OpenAPI `pattern` of time and date
# columns (clients and schema-driven tests then write times the reader accepts).
DIRECTIVES = {
    "Y": "[0-9]{4}",
    "y": "[0-9]{2}",
    "m": "(0[1-9]|1[0-2])",
    "d": "(0[1-9]|[12][0-9]|3[01])",
    "H": "([01][0-9]|2[0-3])",
    "M": "[0-5][0-9]",
    "S": "[0-5][0-9]",
    "f": "[0-9]{1,6}",
    "z": "(Z|[+-][0-9]{2}:?[0-9]{2})",
    "%": "%",
}


REGEX_SYNTAX = frozenset("^$\\.*+?()[]{}|/")


def format_pattern(fmt: str) -> str | None:
    """A regular expression for the text of a strftime format (None when it uses a
    directive not listed in DIRECTIVES, such as month names)."""
    parts = ["^"]
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            directive = DIRECTIVES.get(fmt[i + 1 : i + 2])
            if directive is None:
                return None
            parts.append(directive)
            i += 2
        else:
            # only the regex syntax characters: "\\-" or "\\ " are errors in ECMAScript's
            # unicode mode, which JSON Schema validators may use
            parts.append("\\" + fmt[i] if fmt[i] in REGEX_SYNTAX else fmt[i])
            i += 1
    return "".join(parts) + "$"


def _with_pattern(keywords: dict[str, Any], fmt: str) -> dict[str, Any]:
    pattern = format_pattern(fmt)
    return {**keywords, "pattern": pattern} if pattern else keywords


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, naming the field when there is one")
    field: str | None = Field(None, description="The offending field or parameter")


# --------------------------------------------------------------------------- transactions


def _column_specs(config: Config) -> list[tuple[str, Any, Any, str, dict[str, Any]]]:
    """(column, annotation, default, what is expected, Field keywords) per configured column."""
    src = config.source
    id_expected = "an id (text or an integer)"
    specs: list[tuple[str, Any, Any, str, dict[str, Any]]] = [
        (column, str | int, ..., id_expected, {"description": what})
        for column, what in (
            (src.transaction_id, "the transaction id"),
            (src.card, "the card"),
            (src.merchant, "the merchant (or terminal)"),
        )
    ]
    specs += [
        (
            src.amount,
            float,
            ...,
            "a number",
            {"ge": 0, "le": MAX_AMOUNT, "description": "the amount"},
        ),
    ]
    stamp = src.timestamp
    if stamp.format in ("epoch_s", "epoch_ms"):
        unit = "seconds" if stamp.format == "epoch_s" else "milliseconds"
        specs.append(
            (stamp.field, float, ..., "a number", {"description": f"the time, epoch {unit}"})
        )
    else:
        example = datetime(2018, 4, 1, 0, 0, 31).strftime(stamp.format)
        specs.append(
            (
                stamp.field,
                str,
                ...,
                f"a time as {stamp.format!r}",
                _with_pattern(
                    {
                        "description": f"the time, format {stamp.format!r} ({stamp.timezone} "
                        "unless it carries an offset)",
                        "examples": [example],
                    },
                    stamp.format,
                ),
            )
        )
    if src.label:
        specs.append(
            (
                src.label,
                Literal[0, 1] | None,
                None,
                "0, 1 or null",
                {"description": "ground truth when known (1 fraud); never a feature"},
            )
        )
    for name, kind in src.fields.items():
        if kind == "latlon":
            for column, limit in zip(src.pairs[name], (90.0, 180.0)):
                part = "latitude" if limit == 90.0 else "longitude"
                specs.append(
                    (
                        column,
                        float | None,
                        None,
                        "a number or null",
                        {"ge": -limit, "le": limit, "description": f"{name}: {part}"},
                    )
                )
        elif kind == "numeric":
            specs.append((name, float | None, None, "a number or null", {}))
        elif kind == "boolean":
            specs.append((name, bool | None, None, "true, false or null", {}))
        elif kind == "date":
            fmt = src.date_formats[name]
            specs.append(
                (
                    name,
                    str | None,
                    None,
                    f"a date as {fmt!r}",
                    _with_pattern({"description": f"format {fmt!r}"}, fmt),
                )
            )
        else:
            specs.append((name, str | None, None, "text or null", {"max_length": MAX_ID_CHARS}))
    return specs


def transaction_model(config: Config) -> type[BaseModel]:
    """The body of POST /v1/transactions under this config: one field per configured
    column, under the column's own name. Other columns are allowed and ignored (a row of
    the user's file can be posted as it is)."""
    definitions: dict[str, Any] = {}
    for i, (column, annotation, default, _, keywords) in enumerate(_column_specs(config)):
        # Python names f0, f1, ...: a column may be any Avro name, including ones pydantic
        # keeps for itself (a leading underscore, `schema`, `json`).
        definitions[f"f{i}"] = (annotation, Field(default, alias=column, **keywords))
    source = config.path.name if config.path else "an inline config"
    model = create_model(
        "TransactionIn",
        __config__=ConfigDict(extra="ignore", populate_by_name=False),
        __doc__=f"A transaction in the schema of {source}.",
        **definitions,
    )
    return model


class TransactionBody:
    """Checks POST /v1/transactions bodies against the config's model."""

    def __init__(self, config: Config) -> None:
        specs = _column_specs(config)
        self.model = transaction_model(config)
        self.columns = frozenset(column for column, *_ in specs)
        self._expected = {column: expected for column, _, _, expected, _ in specs}

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema(by_alias=True)

    def check(self, body: Any) -> list[str]:
        """The body's columns this config does not read (ignored), or InvalidRecord
        naming the first column that is missing or not of its declared type."""
        if not isinstance(body, dict):
            raise InvalidRecord("body: expected a JSON object")
        try:
            self.model.model_validate(body)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            column = str(error["loc"][0]) if error["loc"] else "body"
            if error["type"] == "missing":
                raise InvalidRecord(f"{column}: missing") from None
            if error["type"].endswith(TYPE_ERRORS) and column in self._expected:
                value = _short(body.get(column))
                raise InvalidRecord(
                    f"{column}: expected {self._expected[column]}, got {value}"
                ) from None
            message = error["msg"][:1].lower() + error["msg"][1:]
            raise InvalidRecord(f"{column}: {message}, got {_short(body.get(column))}") from None
        return sorted(str(name) for name in body if name not in self.columns)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- decisions


class RuleHitOut(BaseModel):
    """A rule that matched a transaction."""

    id: int | str = Field(description="the rule's id (text: a check of the rules file)")
    version: int | None = Field(description="the rule version that ran (null: rules file)")
    action: str = Field(description="allow, review, block or tag")
    shadow: bool = Field(description="a shadow rule: recorded, the decision unchanged")


class RuleErrorOut(BaseModel):
    """A rule that could not be answered for a transaction (skipped)."""

    id: int | str
    version: int | None
    error: str


class DecisionOut(BaseModel):
    """A decision (the JSON on aegis.decisions): the record's ids, amount and time under
    their normalised names (the config maps them to its columns), its other configured
    fields, and the score, action and reasons."""

    transaction_id: str
    card: str = Field(description="the card (the config's `source.card` column)")
    merchant: str = Field(description="the merchant (the config's `source.merchant` column)")
    amount: float
    ts: int | None = Field(None, description="event time, epoch seconds UTC")
    tx_datetime: str = Field(description="event time, 'YYYY-MM-DD HH:MM:SS' UTC")
    fields: dict[str, str | float | None] = Field(
        default_factory=dict, description="the record's other configured fields"
    )
    entities: dict[str, str | None] = Field(
        default_factory=dict, description="the transaction's key for each entity of the config"
    )
    action: Action
    score: float = Field(description="ensemble score in [0, 1]")
    scores: dict[str, float] = Field(description="raw score per detector, and `ensemble`")
    reasons: list[str]
    rules: list[RuleHitOut] = Field(
        default_factory=list, description="every rule that matched, shadow ones flagged"
    )
    model_version: str
    features: dict[str, float | str | None] = Field(
        description="the config's features: numbers, text for categorical ones, null if missing"
    )
    ingested_ms: int | None = None
    decided_at: datetime


class TransactionDecisionOut(DecisionOut):
    rule_errors: list[RuleErrorOut] = Field(
        default_factory=list, description="rules that could not be answered (skipped)"
    )
    published: bool = Field(description="the transaction is on aegis.transactions")
    ignored_fields: list[str] = Field(
        default_factory=list, description="fields of the body that the config does not read"
    )


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


class LabelsIn(LabelIn):
    """One verdict for many alerts (each labelled as POST /v1/alerts/{id}/label does)."""

    transaction_ids: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] = Field(
        min_length=1,
        max_length=MAX_BULK_LABELS,
        description=f"1 to {MAX_BULK_LABELS} transaction ids; one given twice is labelled once",
    )


class LabelsOut(BaseModel):
    labelled: list[str] = Field(description="labelled, stored and published, in the order given")
    not_found: list[str] = Field(description="no stored decision: nothing labelled")
    published: int = Field(description="labels put on aegis.labels")


class LabelOut(BaseModel):
    alert: AlertOut
    published: bool = Field(description="the label is on aegis.labels")
    known_at: str


class CardOut(BaseModel):
    card: str
    found: bool = Field(description="the stream holds state for the card, or decisions exist")
    as_of: str | None = Field(None, description="time of the newest event in the card's state")
    events: int = Field(description="transactions in the card's state (its feature horizon)")
    features: dict[str, float | str | None] | None = Field(
        None, description="the card's features at its latest stored decision"
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

"""Request and response models of the rule, list and audit endpoints
(aegis_app/serving/api/rules.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aegis_app.serving.api.schemas import ErrorOut
from models.rules.expression import MAX_CHARS
from models.rules.legacy import MAX_PRIORITY

RuleAction = Literal["allow", "review", "block", "tag"]
RuleState = Literal["draft", "shadow", "active", "retired"]
LIST_NAME = r"^[a-z_][a-z0-9_]{0,63}$"
MAX_LIST_ITEMS = 10_000
MAX_ITEM_CHARS = 256
MAX_NOTE_CHARS = 2000
AUDIT_TARGET_CHARS = 300  # the audit_log.target column


class ChangeIn(BaseModel):
    """Why a change is made (kept with the version and in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)


class RuleIn(ChangeIn):
    expression: str = Field(
        min_length=1,
        max_length=MAX_CHARS,
        description="CEL over the transaction's fields and features, e.g. "
        "`amount > 5 * card_amount_mean_30d && card_count_1d >= 4`",
        examples=["amount > 1000 && card_count_1d >= 4"],
    )
    action: RuleAction = Field(
        description="block and allow are final; review asks for review at least; tag only "
        "adds the reason"
    )
    priority: int = Field(0, ge=0, le=MAX_PRIORITY, description="the highest matching wins")
    reason: str = Field(min_length=1, max_length=500, description="what a decision says")


class PeriodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date | None = Field(
        None, description="first event day (UTC); default: `days` before `end`"
    )
    end: date | None = Field(
        None, description="day after the last (exclusive); default: after the newest stored"
    )
    days: int | None = Field(
        None,
        ge=1,
        le=366,
        description="the period's length when `start` is not given; default: "
        "AEGIS_RULE_BACKTEST_DAYS",
    )


class BacktestIn(PeriodIn):
    pass


class ActivateIn(PeriodIn):
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)
    confirm: bool = Field(
        False, description="activate even if the backtest adds more alerts a day than the budget"
    )


class RuleVersionOut(BaseModel):
    rule_id: int
    version: int
    state: RuleState
    expression: str
    action: RuleAction
    priority: int
    reason: str
    changed_by: str = Field(description="role:name of the token that made this version")
    changed_at: datetime
    note: str | None


class RuleOut(RuleVersionOut):
    history: list[RuleVersionOut] = Field(description="every version, oldest first")


class RuleSummaryOut(RuleVersionOut):
    """A rule as it stands, with its live matches over every stored decision."""

    hits_active: int = Field(description="decisions it matched as an active rule")
    hits_shadow: int = Field(description="decisions it matched as a shadow rule")
    last_hit_day: str | None = Field(
        description="event day (UTC, YYYY-MM-DD) of its newest match; null: never matched"
    )


class RulePage(BaseModel):
    items: list[RuleSummaryOut]


class RuleNameOut(BaseModel):
    name: str = Field(description="a field or feature of the config, as a rule reads it")
    kind: str = Field(description="number, string, bool or latlon (read as .lat / .lon)")


class RuleNamesOut(BaseModel):
    items: list[RuleNameOut] = Field(description="in the config's order")
    lists: list[str] = Field(description="the lists a rule can read as lists.<name>")


class RuleHitDayOut(BaseModel):
    day: str = Field(description="event day (UTC), YYYY-MM-DD")
    version: int = Field(description="the rule version that matched")
    shadow: bool = Field(description="matched as a shadow rule (the decision unchanged)")
    hits: int


class RuleHitsOut(BaseModel):
    rule_id: int
    days: list[RuleHitDayOut] = Field(description="oldest first; days without a match left out")
    total_active: int = Field(description="matches as an active rule over these days")
    total_shadow: int = Field(description="matches as a shadow rule over these days")


class ExpressionErrorOut(ErrorOut):
    """A 422; when the expression is refused, where in it and why (`field`: expression)."""

    line: int | None = Field(None, description="1-based line of the problem in the expression")
    column: int | None = Field(None, description="1-based column")
    offset: int | None = Field(None, description="0-based character offset")


class DayOut(BaseModel):
    day: str
    rows: int
    hits: int
    added_alerts: int
    model_alerts: int


class ErrorExampleOut(BaseModel):
    transaction_id: str
    error: str


class BacktestOut(BaseModel):
    rule_id: int
    version: int
    start: date
    end: date = Field(description="exclusive")
    rows: int = Field(description="stored decisions in the period")
    hits: int
    errors: int = Field(description="decisions the rule could not answer (missing value, type)")
    error_examples: list[ErrorExampleOut]
    days: list[DayOut]
    added_alerts: int = Field(description="hits the stored decision allowed (review/block rule)")
    added_alerts_per_day: float = Field(description="per day with data")
    max_added_alerts_in_a_day: int
    model_alerts: int = Field(description="stored decisions that were review or block")
    overlap: int = Field(description="hits that were already alerts")
    overlap_share_of_hits: float | None
    overlap_share_of_model_alerts: float | None
    labelled_hits: int
    fraud_hits: int
    labelled_frauds: int
    precision: float | None = Field(description="fraud hits / labelled hits")
    recall: float | None = Field(description="fraud hits / labelled frauds")


class BudgetOut(ErrorOut):
    added_alerts_per_day: float
    budget: float
    start: date
    end: date


class ListIn(ChangeIn):
    items: list[Annotated[str, Field(min_length=1, max_length=MAX_ITEM_CHARS)]] = Field(
        max_length=MAX_LIST_ITEMS,
        description="values compared as text (card ids, merchants, categories...)",
    )


class ListOut(BaseModel):
    name: str
    version: int
    items: list[str]
    changed_by: str
    changed_at: datetime
    note: str | None


class ListSummaryOut(BaseModel):
    """A list as it stands, without its items."""

    name: str
    version: int
    size: int = Field(description="how many items it holds")
    changed_by: str
    changed_at: datetime
    note: str | None


class ListPage(BaseModel):
    items: list[ListSummaryOut]


class AuditEntryOut(BaseModel):
    """One change made through the API."""

    id: int = Field(description="grows with every entry")
    who: str = Field(description="role:name of the token that made the change")
    what: str = Field(
        description="the change: rule.create, rule.edit, rule.<state it moved to>, list.put, label"
    )
    when: datetime
    target: str = Field(description="what was changed: rule:3, list:vip_cards, transaction:42")
    note: str | None = Field(description="why, as the change said")
    details: dict[str, Any] = Field(description="the change itself (a rule version, a list's size)")


class AuditPage(BaseModel):
    items: list[AuditEntryOut] = Field(description="newest first")

"""The rule and list endpoints: write, backtest, shadow, activate and retire rules, read
their live hits, set the lists they read, and read the audit log. Every change is a new
version in the store with who and why (aegis_app/serving/store/rules.py), and every change
that alters what workers run is announced on aegis.rules (aegis_app/kafka/rule_updates.py).

A store change is made before its announcement; when the broker cannot take it the
answer is 503 and the same request again is safe: a rule already in the asked state is
announced again, unchanged.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from aegis_app.core.config import Config
from aegis_app.kafka.rule_updates import MAX_MESSAGE_BYTES, list_message, rule_message
from aegis_app.serving.api.auth import (
    ACTIVATE_RULES,
    DRAFT_RULES,
    READ,
    SET_LISTS,
    Authenticator,
    Principal,
)
from aegis_app.serving.api.config import ApiSettings
from aegis_app.serving.api.rule_schemas import (
    AUDIT_TARGET_CHARS,
    LIST_NAME,
    ActivateIn,
    AuditPage,
    BacktestIn,
    BacktestOut,
    BudgetOut,
    ChangeIn,
    ExpressionErrorOut,
    ListIn,
    ListOut,
    ListPage,
    PeriodIn,
    RuleHitsOut,
    RuleIn,
    RuleNamesOut,
    RuleOut,
    RulePage,
    RuleState,
    RuleVersionOut,
)
from aegis_app.serving.api.schemas import ErrorOut
from models.rules.backtest import backtest
from models.rules.expression import ExpressionError, compile_expression
from models.rules.lifecycle import LifecycleError
from models.rules.rule import ACTIVE, RETIRED, SHADOW, Rule
from models.rules.vocabulary import Vocabulary

MAX_BACKTEST_DAYS = 366
RuleId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
ListName = Annotated[
    str,
    Path(pattern=LIST_NAME, description="a CEL name: [a-z_][a-z0-9_]*", examples=["vip_cards"]),
]
E400 = {400: {"model": ErrorOut, "description": "the body cannot be read (not UTF-8 JSON)"}}
E401 = {401: {"model": ErrorOut, "description": "missing or wrong bearer token"}}
E403 = {403: {"model": ErrorOut, "description": "the token's role may not do this"}}
E404 = {404: {"model": ErrorOut, "description": "no such rule or list"}}
E409 = {409: {"model": ErrorOut, "description": "the rule's state does not allow this"}}
E422 = {422: {"model": ErrorOut, "description": "invalid input; `field` names it"}}
E422X = {
    422: {
        "model": ExpressionErrorOut,
        "description": "invalid input; for the expression, its line, column and the reason",
    }
}
E503 = {503: {"model": ErrorOut, "description": "store or broker unavailable"}}
# A rule no stored decision names (yet): what GET /v1/rules shows for its hits.
NO_HITS = {"hits_active": 0, "hits_shadow": 0, "last_hit_day": None}


def _error(status: int, detail: str, field: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "field": field, **extra})


def _expression_error(exc: ExpressionError) -> JSONResponse:
    return _error(
        422,
        f"expression: {exc}",
        "expression",
        line=exc.line,
        column=exc.column,
        offset=exc.offset,
    )


def _no_rule(rule_id: int) -> JSONResponse:
    return _error(404, f"no rule {rule_id}")


def rules_router(
    config: Config, api: ApiSettings, auth: Authenticator, parts: dict[str, Any]
) -> APIRouter:
    """The endpoints; `parts` holds the app's store and publisher (set at start-up)."""
    router = APIRouter()
    base = Vocabulary.from_config(config)
    # `who: Principal = Depends(...)` as a default: this module's string annotations
    # cannot name a local alias (FastAPI resolves them in the module's globals).
    reader = Depends(auth.require(READ))
    drafter = Depends(auth.require(DRAFT_RULES))
    activator = Depends(auth.require(ACTIVATE_RULES))
    list_setter = Depends(auth.require(SET_LISTS))

    def store():
        return parts["store"]

    async def vocabulary() -> Vocabulary:
        return base.with_lists(await run_in_threadpool(store().list_names))

    async def compiled(version: dict) -> Rule:
        expression = compile_expression(version["expression"], await vocabulary())
        return Rule(
            version["rule_id"],
            expression,
            version["action"],
            version["priority"],
            version["reason"],
            version["state"],
            version["version"],
        )

    async def announce(version: dict) -> None:
        rule = await compiled(version)
        key, value = rule_message(version, rule.expression.lists)
        await parts["publisher"].publish_rule_change(key, value)

    async def run_backtest(rule: Rule, period: PeriodIn) -> dict | JSONResponse:
        bounds = await _period(store(), period, api.rule_backtest_days)
        if isinstance(bounds, JSONResponse):
            return bounds
        start, end = bounds
        lo, hi = f"{start} 00:00:00", f"{end} 00:00:00"

        def work() -> dict:
            rows = store().backtest_rows(lo, hi)
            labels = store().labels_known(lo, hi)
            lists = store().list_items()
            return backtest(rule, rows, labels, base.with_lists(lists), lists)

        result = await run_in_threadpool(work)
        return {
            "rule_id": rule.rule_id,
            "version": rule.version,
            "start": start,
            "end": end,
            **result,
        }

    @router.get(
        "/v1/rules",
        response_model=RulePage,
        responses={**E401, **E403, **E422},
        summary="Every rule as it stands (its newest version) and its live hits",
    )
    async def list_rules(_: Principal = reader, state: RuleState | None = None):
        def work() -> tuple[list[dict], dict[int, dict]]:
            return store().list_rules(state), store().rule_hit_totals()

        rules, totals = await run_in_threadpool(work)
        return {"items": [{**rule, **totals.get(rule["rule_id"], NO_HITS)} for rule in rules]}

    @router.get(
        "/v1/rules/names",
        response_model=RuleNamesOut,
        responses={**E401, **E403},
        summary="What a rule can read under this config: its fields, features and lists",
    )
    async def rule_names(_: Principal = reader):
        known = await vocabulary()
        return {
            "items": [{"name": name, "kind": kind} for name, kind in known.names.items()],
            "lists": sorted(known.lists),
        }

    @router.post(
        "/v1/rules",
        response_model=RuleVersionOut,
        status_code=201,
        responses={**E400, **E401, **E403, **E422X},
        summary="Write a rule (a draft: not run until shadowed or activated)",
    )
    async def create_rule(body: RuleIn, who: Principal = drafter):
        try:
            compile_expression(body.expression, await vocabulary())
        except ExpressionError as exc:
            return _expression_error(exc)
        spec = body.model_dump(exclude={"note"})
        return await run_in_threadpool(store().create_rule, spec, who.actor, body.note)

    @router.get(
        "/v1/rules/{rule_id}",
        response_model=RuleOut,
        responses={**E401, **E403, **E404, **E422},
        summary="A rule with every version: who changed it, when and why",
    )
    async def get_rule(rule_id: RuleId, _: Principal = reader):
        history = await run_in_threadpool(store().rule_history, rule_id)
        if not history:
            return _no_rule(rule_id)
        return {**history[-1], "history": history}

    @router.put(
        "/v1/rules/{rule_id}",
        response_model=RuleVersionOut,
        responses={**E400, **E401, **E403, **E404, **E409, **E422X, **E503},
        summary="Change a draft, shadow or retired rule: a new draft version",
        description="An active rule is not edited in place: retire it first, or write a new "
        "rule. A shadow rule stops being shadowed until shadowed again.",
    )
    async def edit_rule(rule_id: RuleId, body: RuleIn, who: Principal = drafter):
        try:
            compile_expression(body.expression, await vocabulary())
        except ExpressionError as exc:
            return _expression_error(exc)
        before = await run_in_threadpool(store().get_rule, rule_id)
        spec = body.model_dump(exclude={"note"})
        try:
            version = await run_in_threadpool(
                store().edit_rule, rule_id, spec, who.actor, body.note
            )
        except LifecycleError as exc:
            return _error(409, str(exc), "state")
        if version is None:
            return _no_rule(rule_id)
        if before is not None and before["state"] == SHADOW:  # workers stop shadowing it
            await announce(version)
        return version

    @router.post(
        "/v1/rules/{rule_id}/backtest",
        response_model=BacktestOut,
        responses={**E400, **E401, **E403, **E404, **E422X},
        summary="Run the rule over the stored decisions of a period",
        description="Hits per day, the alerts it would add (hits the stored decision "
        "allowed), overlap with the stored alerts, precision and recall against the labels "
        "known now. Default period: AEGIS_RULE_BACKTEST_DAYS days up to the newest stored.",
    )
    async def backtest_rule(
        rule_id: RuleId, who: Principal = drafter, body: BacktestIn | None = None
    ):
        version = await run_in_threadpool(store().get_rule, rule_id)
        if version is None:
            return _no_rule(rule_id)
        try:
            rule = await compiled(version)
        except ExpressionError as exc:
            return _expression_error(exc)
        return await run_backtest(rule, body or BacktestIn())

    @router.get(
        "/v1/rules/{rule_id}/hits",
        response_model=RuleHitsOut,
        responses={**E401, **E403, **E404, **E422},
        summary="The rule's live matches per event day, active and shadow apart",
    )
    async def rule_hits(
        rule_id: RuleId,
        _: Principal = reader,
        start: Annotated[date | None, Query(description="first event day (UTC)")] = None,
        end: Annotated[date | None, Query(description="day after the last (exclusive)")] = None,
    ):
        if start is not None and end is not None and start >= end:
            return _error(422, "end: must be after start", "end")
        if await run_in_threadpool(store().get_rule, rule_id) is None:
            return _no_rule(rule_id)
        days = await run_in_threadpool(store().rule_hits_per_day, rule_id, _day(start), _day(end))
        return {
            "rule_id": rule_id,
            "days": days,
            "total_active": sum(d["hits"] for d in days if not d["shadow"]),
            "total_shadow": sum(d["hits"] for d in days if d["shadow"]),
        }

    async def move(rule_id: int, state: str, who: Principal, note: str | None) -> Any:
        try:
            found = await run_in_threadpool(store().move_rule, rule_id, state, who.actor, note)
        except LifecycleError as exc:
            return _error(409, str(exc), "state")
        if found is None:
            return _no_rule(rule_id)
        version, _ = found
        await announce(version)  # also when it was already there: a retry re-announces
        return version

    @router.post(
        "/v1/rules/{rule_id}/shadow",
        response_model=RuleVersionOut,
        responses={**E400, **E401, **E403, **E404, **E409, **E422, **E503},
        summary="Run a draft on live traffic without changing decisions",
    )
    async def shadow_rule(rule_id: RuleId, who: Principal = drafter, body: ChangeIn | None = None):
        return await move(rule_id, SHADOW, who, (body or ChangeIn()).note)

    @router.post(
        "/v1/rules/{rule_id}/activate",
        response_model=RuleVersionOut,
        responses={
            **E400,
            **E401,
            **E403,
            **E404,
            409: {
                "model": BudgetOut | ErrorOut,
                "description": "the rule is not in shadow, or its backtest adds more alerts "
                "a day than AEGIS_RULE_ALERT_BUDGET (send confirm: true)",
            },
            **E422X,
            **E503,
        },
        summary="Let a shadow rule decide",
    )
    async def activate_rule(
        rule_id: RuleId, who: Principal = activator, body: ActivateIn | None = None
    ):
        body = body or ActivateIn()
        version = await run_in_threadpool(store().get_rule, rule_id)
        if version is None:
            return _no_rule(rule_id)
        budget = api.rule_alert_budget
        if version["state"] != ACTIVE and budget is not None and not body.confirm:
            try:
                rule = await compiled(version)
            except ExpressionError as exc:
                return _expression_error(exc)
            result = await run_backtest(rule, body)
            if isinstance(result, JSONResponse):
                return result
            if result["added_alerts_per_day"] > budget:
                return _error(
                    409,
                    f"the backtest adds {result['added_alerts_per_day']:.1f} alerts a day "
                    f"({result['start']} to {result['end']}), more than the budget of "
                    f"{budget:g}: send confirm: true to activate anyway",
                    "confirm",
                    added_alerts_per_day=result["added_alerts_per_day"],
                    budget=budget,
                    start=str(result["start"]),
                    end=str(result["end"]),
                )
        return await move(rule_id, ACTIVE, who, body.note)

    @router.post(
        "/v1/rules/{rule_id}/retire",
        response_model=RuleVersionOut,
        responses={**E400, **E401, **E403, **E404, **E409, **E422, **E503},
        summary="Stop running a rule (every version is kept)",
    )
    async def retire_rule(
        rule_id: RuleId, who: Principal = activator, body: ChangeIn | None = None
    ):
        return await move(rule_id, RETIRED, who, (body or ChangeIn()).note)

    @router.get(
        "/v1/lists",
        response_model=ListPage,
        responses={**E401, **E403},
        summary="Every list as it stands: its version and size (not its items)",
    )
    async def list_lists(_: Principal = reader):
        return {"items": await run_in_threadpool(store().list_summaries)}

    @router.get(
        "/v1/lists/{name}",
        response_model=ListOut,
        responses={**E401, **E403, **E404, **E422},
        summary="A list rules read (`card in lists.vip_cards`)",
    )
    async def get_list(name: ListName, _: Principal = reader):
        found = await run_in_threadpool(store().get_list, name)
        if found is None:
            return _error(404, f"no list {name!r}")
        return found

    @router.put(
        "/v1/lists/{name}",
        response_model=ListOut,
        responses={**E400, **E401, **E403, **E422, **E503},
        summary="Set a list's items (a new version; running rules read it at once)",
    )
    async def put_list(name: ListName, body: ListIn, who: Principal = list_setter):
        items = sorted(set(body.items))
        # The list must fit one message on aegis.rules: checked before anything is stored.
        probe = {
            "name": name,
            "version": 0,
            "items": items,
            "changed_by": who.actor,
            "changed_at": datetime.now(UTC),
            "note": body.note,
        }
        size = len(list_message(probe)[1])
        if size > MAX_MESSAGE_BYTES:
            return _error(
                422,
                f"items: the list takes {size} bytes, more than the {MAX_MESSAGE_BYTES} "
                "one message on aegis.rules holds",
                "items",
            )
        found = await run_in_threadpool(store().put_list, name, items, who.actor, body.note)
        key, value = list_message(found)
        await parts["publisher"].publish_rule_change(key, value)
        return found

    @router.get(
        "/v1/audit",
        response_model=AuditPage,
        responses={**E401, **E403, **E422},
        summary="Who changed what, when and why (rules, lists, labels), newest first",
    )
    async def audit_log(
        _: Principal = reader,
        target: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=AUDIT_TARGET_CHARS,
                description="only the changes of this: rule:3, list:vip_cards, transaction:42",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ):
        entries = await run_in_threadpool(store().audit_log, limit, target)
        return {"items": [_audit_entry(entry) for entry in entries]}

    return router


def _day(value: date | None) -> str | None:
    """A day as the store keeps event days ('YYYY-MM-DD')."""
    return None if value is None else value.isoformat()


def _audit_entry(entry: dict) -> dict:
    return {
        "id": entry["id"],
        "who": entry["actor"],
        "what": entry["action"],
        "when": entry["at"],
        "target": entry["target"],
        "note": entry["note"],
        "details": entry["details"] or {},
    }


async def _period(store: Any, period: PeriodIn, days: int) -> tuple[date, date] | JSONResponse:
    """[start, end) in days: as asked, or `days` days up to the newest stored decision."""
    end = period.end
    try:
        if end is None:
            newest = await run_in_threadpool(store.latest_tx_datetime)
            last = date.fromisoformat(newest[:10]) if newest else datetime.now(UTC).date()
            end = last + timedelta(days=1)
        start = period.start or end - timedelta(days=period.days or days)
    except OverflowError:
        return _error(422, "end: out of range", "end")
    if start >= end:
        return _error(422, "end: must be after start", "end")
    if (end - start).days > MAX_BACKTEST_DAYS:
        return _error(422, f"start: a period is at most {MAX_BACKTEST_DAYS} days", "start")
    return start, end

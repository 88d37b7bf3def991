"""The FastAPI application: `create_app(settings, api_settings)` builds it (tests too)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, ORJSONResponse, Response
from starlette.concurrency import run_in_threadpool

from aegis_app.core.codec import RecordCodec
from aegis_app.core.config import Config
from aegis_app.core.labels import Label
from aegis_app.core.records import InvalidRecord, format_datetime
from aegis_app.core.settings import Settings
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.rules_listener import RuleUpdatesListener
from aegis_app.serving.api import drift
from aegis_app.serving.api.auth import LABEL, READ, SCORE, Authenticator, Principal
from aegis_app.serving.api.config import ApiSettings
from aegis_app.serving.api.metrics import Metrics, RequestTimer
from aegis_app.serving.api.rules import rules_router
from aegis_app.serving.api.schemas import (
    MAX_ID_CHARS,
    Action,
    AlertOut,
    AlertPage,
    CardOut,
    DriftOut,
    ErrorOut,
    HealthOut,
    LabelIn,
    LabelOut,
    LabelsIn,
    LabelsOut,
    ModelsOut,
    ModelVersionOut,
    ReadyOut,
    Status,
    TransactionBody,
    TransactionDecisionOut,
)
from aegis_app.serving.api.scoring import (
    ApiScorer,
    KafkaPublisher,
    Unavailable,
    WorkerState,
    features_from_states,
)
from aegis_app.serving.store.repository import BadCursor, Store
from aegis_app.serving.store.sink import DecisionSink
from models.decisions.policy import Rules
from models.lifecycle import registry
from tables.engine.plan import RecordError
from tables.engine.state import StateError
from tables.engine.stream import StreamEngine

log = logging.getLogger(__name__)

E401 = {401: {"model": ErrorOut, "description": "missing or wrong bearer token"}}
E403 = {403: {"model": ErrorOut, "description": "the token's role may not do this"}}
E422 = {422: {"model": ErrorOut, "description": "invalid input; `field` names it"}}
E400 = {400: {"model": ErrorOut, "description": "the body cannot be read (not UTF-8 JSON)"}}
E404 = {404: {"model": ErrorOut, "description": "no such alert (no stored decision)"}}
E503 = {503: {"model": ErrorOut, "description": "worker, model, broker or store unavailable"}}
# Seconds between refreshes of the aegis_drift_* gauges (one window, read in a thread).
DRIFT_REFRESH_S = 30.0


async def _timed(histogram: Any, stage: str, work: Any) -> Any:
    """Await `work`, recording its duration under `stage` (whether it succeeds or not)."""
    started = time.perf_counter()
    try:
        return await work
    finally:
        histogram.labels(stage=stage).observe(time.perf_counter() - started)


def _settle(task: asyncio.Future) -> None:
    """Retrieve a background task's outcome (it was already reported another way)."""
    if not task.cancelled():
        task.exception()


def _error(status: int, detail: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, "field": field})


def _alert(row: dict) -> dict:
    label = row.get("label")
    return {**row, "label": None if label is None else ("fraud" if label else "legitimate")}


def _known_at(moment: datetime) -> str:
    """When a label became known, as labels carry it ('YYYY-MM-DD HH:MM:SS' UTC)."""
    return format_datetime(int(moment.timestamp()))


def _field_of(error: InvalidRecord) -> str:
    """The column an InvalidRecord names (its message is "column: reason")."""
    return str(error).split(":", 1)[0]


def _description(config: Config) -> str:
    src = config.source
    name = config.path.name if config.path else "an inline config"
    return (
        "Real-time card-fraud decisions, alerts and analyst labels.\n\n"
        f"Transactions are posted in the schema of **{name}**. Decisions name the record's "
        f"parts by role: `transaction_id` is `{src.transaction_id}`, `card` is `{src.card}`, "
        f"`merchant` is `{src.merchant}`, `amount` is `{src.amount}`, and `ts` / "
        f"`tx_datetime` come from `{src.timestamp.field}`; the other configured columns are "
        "in `fields`, and `features` are the config's features by their names."
    )


def _keys_of_row(engine: StreamEngine, row: dict) -> dict[str, str | None]:
    """Entity keys of a stored decision that has none recorded (stored before records-v2
    kept them): read from its card, merchant and fields, as the stream would."""
    record = {"card": row.get("card"), "merchant": row.get("merchant"), **(row.get("fields") or {})}
    try:
        return engine.keys(record)
    except RecordError:  # an entity on a field the row does not hold
        return {}


def create_app(
    settings: Settings,
    api: ApiSettings | None = None,
    *,
    store: Store | None = None,
    publisher: Any = None,
    state: Any = None,
    run_sink: bool = True,
    metrics: Metrics | None = None,
    drift_refresh_s: float | None = DRIFT_REFRESH_S,
    config: Config | None = None,
    listen_for_rules: bool | None = None,
) -> FastAPI:
    """The API. Components not given are built from settings when the app starts:
    `store` (settings.db_url), `publisher` (KafkaPublisher on settings.kafka_broker),
    `state` (WorkerState on api.worker_url); `run_sink` runs the decision sink inside;
    the drift gauges are refreshed every `drift_refresh_s` seconds (None: never).
    `config` (default: the one settings name) is the schema of posted transactions and
    the features they are scored on. The scorer reads the rules on aegis.rules when
    `listen_for_rules` (default: when the app builds its own publisher, i.e. its broker is
    real); otherwise it runs the rules file's only."""
    api = api or ApiSettings.from_env(settings)
    metrics = metrics or Metrics()
    config = config or settings.load_config()
    codec = RecordCodec(config)
    engine = StreamEngine(config)
    body_check = TransactionBody(config)
    card_entity = engine.entity_of_column("card")
    card_features = [f.name for f in config.features if card_entity and f.entity == card_entity]

    scorer = ApiScorer(
        settings.model_dir,
        Rules.from_file(settings.rules_file),
        api.score_batch_size,
        config=config,
    )
    parts: dict[str, Any] = {"store": store, "publisher": publisher, "state": state}
    rules_listener = None
    if listen_for_rules if listen_for_rules is not None else publisher is None:
        rules_listener = RuleUpdatesListener(
            KafkaConnection.from_settings(settings), scorer.rules_changed
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = []
        if parts["store"] is None:
            parts["store"] = await run_in_threadpool(Store, settings.db_url)
            owned.append(parts["store"].close)
        if parts["state"] is None:
            parts["state"] = WorkerState(api.worker_url, api.worker_timeout_s)
            owned.append(parts["state"].close)
        if parts["publisher"] is None:
            parts["publisher"] = KafkaPublisher(KafkaConnection.from_settings(settings))
            try:
                await parts["publisher"].start()
            except Unavailable as exc:
                log.warning("%s (will retry on first use)", exc)
            owned.append(parts["publisher"].stop)
        await run_in_threadpool(scorer.maybe_reload, True)
        scorer.start()
        background = []
        if rules_listener is not None:
            background.append(asyncio.create_task(rules_listener.run(), name="aegis-api-rules"))
        sink = None
        if run_sink:
            sink = DecisionSink(
                KafkaConnection.from_settings(settings),  # its consumer paced as configured
                parts["store"],
                partitions=settings.partitions,
                metrics=metrics,
            )
            sink.start()
        app.state.sink = sink
        if drift_refresh_s is not None:
            background.append(asyncio.create_task(_refresh_drift(drift_refresh_s)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if sink is not None:
                await sink.stop()
            await scorer.stop()
            for close in reversed(owned):
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    async def _refresh_drift(every_s: float) -> None:
        """Keep the aegis_drift_* gauges current; a failed round is logged and retried."""
        last_error = None
        while True:
            try:
                await run_in_threadpool(
                    drift.refresh_gauges, metrics, parts["store"], settings.model_dir
                )
                last_error = None
            except Exception as exc:  # noqa: BLE001 - the store may be down for a while
                if str(exc) != last_error:  # once per distinct failure, not every round
                    log.warning("drift gauges not refreshed: %s", exc)
                last_error = str(exc)
            await asyncio.sleep(every_s)

    app = FastAPI(
        title="Aegis API",
        version="0.1.0",
        description=_description(config),
        lifespan=lifespan,
    )
    app.add_middleware(RequestTimer, metrics=metrics)
    app.state.config = config
    app.state.scorer = scorer
    app.state.metrics = metrics
    app.state.parts = parts
    app.state.sink = None

    # ------------------------------------------------------------------ errors

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        return _error(422, f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return _error(503, str(exc))

    # ------------------------------------------------------------------ auth

    auth = Authenticator(api.tokens(), api.open_reads)
    Scorer = [Depends(auth.require(SCORE))]
    Reader = [Depends(auth.require(READ))]
    # Endpoints that need the caller take `who: Principal = labeller`: a default,
    # because this module's string annotations cannot name a local alias.
    labeller = Depends(auth.require(LABEL))

    # ------------------------------------------------------------------ scoring

    @app.post(
        "/v1/transactions",
        response_model=TransactionDecisionOut,
        dependencies=Scorer,
        responses={**E401, **E403, **E422, **E503},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_check.json_schema()}},
            }
        },
        summary="Score a transaction now and hand it to the stream",
        description=(
            "Takes one transaction in the schema of the configured source (its own column "
            "names; other columns are ignored and listed in `ignored_fields`), scores it "
            "with the stream's own state and model and, at the same time, puts it on "
            "aegis.transactions (answered once the broker acknowledged it), where the "
            "stream records the official decision. A 503 can leave the transaction handed "
            "to the stream; retrying with the same transaction id is safe: every "
            "transaction is recorded and decided once."
        ),
    )
    async def post_transaction(request: Request):
        ingested_ms = int(time.time() * 1000)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _error(422, "body: not valid JSON", "body")
        try:
            ignored = body_check.check(body)  # the declared types, as the OpenAPI shows them
            record = codec.reader.record(body)  # the values: formats, ranges
            payload = codec.encode_fields(codec.fields_of(record, body))
        except InvalidRecord as exc:
            return _error(422, str(exc), _field_of(exc))
        stage = metrics.scoring_stage
        # The broker's ack does not depend on the decision, so it is awaited alongside the
        # features and the score rather than after them. Publishing first is safe for the
        # score: the stream answers a transaction it has already seen as the first time
        # (StreamEngine.observe), so the features are the same either way.
        publishing = asyncio.ensure_future(
            _timed(
                stage,
                "publish",
                parts["publisher"].publish_transaction(payload, codec.key(record)),
            )
        )
        try:
            features = await _timed(
                stage, "features", features_from_states(engine, parts["state"], record)
            )
            if scorer.bundle is None:
                await run_in_threadpool(scorer.maybe_reload, True)
                if scorer.bundle is None:
                    raise Unavailable(f"no model loaded: {scorer.last_error}")
            decision = await _timed(stage, "score", scorer.decide(record, features, ingested_ms))
        except BaseException:
            # Answered 503: the transaction may still reach the stream, which decides it
            # once; a retry with the same transaction id is recorded once too.
            publishing.add_done_callback(_settle)
            raise
        await publishing
        metrics.api_decisions.labels(action=decision["action"]).inc()
        metrics.count_rules(decision)
        # Built by the code the stream shares (models.decisions.decision), so it already has the
        # response's shape; skipping FastAPI's re-validation saves a good part of the
        # request's CPU (orjson writes NaN as null). tests/aegis_app/serving/api check it
        # against the schema.
        return ORJSONResponse({**decision, "published": True, "ignored_fields": ignored})

    # ------------------------------------------------------------------ reads

    @app.get(
        "/v1/cards/{card_id}",
        response_model=CardOut,
        dependencies=Reader,
        responses={**E401, **E403, **E422, **E503},
        summary="A card's state in the stream and its recent decisions",
    )
    async def get_card(
        card_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ):
        value = None
        if card_entity is not None:
            value = await parts["state"].state(card_entity, card_id)
        recent = await run_in_threadpool(parts["store"].card_decisions, card_id, limit)
        events, as_of = 0, None
        if value:
            try:
                events = engine.state_size(card_entity, value).events
                latest = engine.latest_event(card_entity, value)
            except StateError as exc:
                raise Unavailable(
                    f"worker answered a card state this config cannot read: {exc}"
                ) from None
            as_of = format_datetime(latest) if latest is not None else None
        features = None
        if recent:  # as the stream computed them for the card's latest decision
            stored = recent[0].get("features") or {}
            features = {name: stored.get(name) for name in card_features}
        return {
            "card": card_id,
            "found": bool(events or recent),
            "as_of": as_of,
            "events": events,
            "features": features,
            "recent_decisions": [_alert(row) for row in recent],
        }

    @app.get(
        "/v1/alerts",
        response_model=AlertPage,
        dependencies=Reader,
        responses={**E401, **E403, **E422, **E503},
        summary="Alerts (review and block unless `action` says otherwise), newest first",
    )
    async def list_alerts(
        action: Annotated[list[Action] | None, Query()] = None,
        status: Status | None = None,
        min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        card: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
        merchant: Annotated[
            str | None,
            Query(min_length=1, max_length=MAX_ID_CHARS, description="exactly this merchant"),
        ] = None,
        q: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_ID_CHARS,
                description="a search: the transaction id, card or merchant is exactly this",
            ),
        ] = None,
        rule: Annotated[
            int | None,
            Query(ge=1, le=2**31 - 1, description="decisions this rule (its id) matched"),
        ] = None,
        shadow: Annotated[
            bool | None,
            Query(
                description="with `rule`: only its shadow matches (true) or only its active "
                "ones (false)"
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ):
        if shadow is not None and rule is None:
            return _error(422, "shadow: only with rule", "shadow")
        try:
            page = await run_in_threadpool(
                parts["store"].list_decisions,
                actions=action or ["review", "block"],
                status=status,
                min_score=min_score,
                max_score=max_score,
                since=since,
                until=until,
                card=card,
                merchant=merchant,
                search=q,
                rule_id=rule,
                shadow=shadow,
                limit=limit,
                offset=offset,
                cursor=cursor,
            )
        except BadCursor as exc:
            return _error(422, str(exc), "cursor")
        except OverflowError:
            return _error(422, "since/until: out of range", "since")
        return {
            "items": [_alert(row) for row in page.items],
            "next_cursor": page.next_cursor,
            "limit": limit,
            "offset": offset,
        }

    @app.get(
        "/v1/alerts/{transaction_id}",
        response_model=AlertOut,
        dependencies=Reader,
        responses={**E401, **E403, **E404, **E422},
        summary="One alert (any stored decision) with everything",
    )
    async def get_alert(
        transaction_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    ):
        row = await run_in_threadpool(parts["store"].get_decision, transaction_id)
        if row is None:
            return _error(404, f"no alert for transaction {transaction_id}")
        return _alert(row)

    @app.post(
        "/v1/alerts/{transaction_id}/label",
        response_model=LabelOut,
        responses={**E400, **E401, **E403, **E404, **E422, **E503},
        summary="An analyst's verdict: stored, and published on aegis.labels",
    )
    async def label_alert(
        transaction_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        body: LabelIn,
        who: Principal = labeller,
    ):
        now = datetime.now(UTC)
        row = await label_one(transaction_id, body, who, now)
        if row is None:
            return _error(
                404, f"no stored decision for transaction {transaction_id!r}: nothing to label"
            )
        return {"alert": _alert(row), "published": True, "known_at": _known_at(now)}

    @app.post(
        "/v1/alerts/labels",
        response_model=LabelsOut,
        responses={**E400, **E401, **E403, **E422, **E503},
        summary="One analyst's verdict on many alerts: each stored and published on aegis.labels",
        description="Each transaction is labelled as POST /v1/alerts/{transaction_id}/label "
        "labels one (stored, audited, published); those without a stored decision are "
        "listed in `not_found`. A 503 can leave the first ones labelled: the same request "
        "again is safe (a label given twice keeps the latest).",
    )
    async def label_alerts(body: LabelsIn, who: Principal = labeller):
        now = datetime.now(UTC)
        labelled, not_found = [], []
        for transaction_id in dict.fromkeys(body.transaction_ids):  # each id once, in order
            row = await label_one(transaction_id, body, who, now)
            (not_found if row is None else labelled).append(transaction_id)
        return {"labelled": labelled, "not_found": not_found, "published": len(labelled)}

    async def label_one(
        transaction_id: str, body: LabelIn, who: Principal, now: datetime
    ) -> dict | None:
        """An analyst's label of one stored decision: stored (with the label history),
        audited and published on aegis.labels. The labelled decision; None (nothing done)
        when no decision is stored for the transaction."""
        value = 1 if body.label == "fraud" else 0
        analyst = body.analyst or who.name
        row = await run_in_threadpool(
            lambda: parts["store"].record_label(
                transaction_id, value, note=body.note, analyst=analyst, at=now
            )
        )
        if row is None:
            return None
        await run_in_threadpool(
            parts["store"].audit,
            who.actor,
            "label",
            f"transaction:{transaction_id}",
            body.note,
            {"label": body.label, "analyst": analyst},
        )
        # The stored decision's entity keys take the label to each entity's state.
        entities = row.get("entities") or _keys_of_row(engine, row)
        label = Label(
            transaction_id=str(row["transaction_id"]),
            label=value,
            source="analyst",
            known_at=_known_at(now),
            tx_datetime=row["tx_datetime"],
            entities={name: str(key) for name, key in entities.items() if key is not None},
            card=None if row.get("card") is None else str(row["card"]),
            note=body.note,
        )
        await parts["publisher"].publish_label(label)
        return row

    @app.get(
        "/v1/models",
        response_model=ModelsOut,
        dependencies=Reader,
        responses={**E401, **E403},
        summary="The active model version and every registered version with its metrics",
    )
    async def get_models():
        active = registry.active_version(settings.model_dir)
        manifests = await run_in_threadpool(registry.list_versions, settings.model_dir)
        versions = [
            ModelVersionOut(
                **{k: v for k, v in asdict(m).items() if k in ModelVersionOut.model_fields},
                active=m.version == active,
            )
            for m in manifests
        ]
        return {"active_version": active, "versions": versions}

    @app.get(
        "/v1/drift",
        response_model=DriftOut,
        dependencies=Reader,
        responses={**E401, **E403, **E422, **E503},
        summary="Population stability (PSI) of features and score vs the training data, "
        "per event-time window",
    )
    async def get_drift(
        hours: Annotated[int, Query(ge=1, le=24 * 31, description="window length")] = 24,
        windows: Annotated[int, Query(ge=1, le=90, description="number of windows")] = 7,
    ):
        try:
            reference = await run_in_threadpool(drift.active_reference, settings.model_dir)
        except drift.DriftUnavailable as exc:
            return _error(503, str(exc))
        return await run_in_threadpool(
            lambda: drift.compute(parts["store"], reference, hours=hours, windows=windows)
        )

    # ------------------------------------------------------------------ rules and lists

    app.include_router(rules_router(config, api, auth, parts))

    # ------------------------------------------------------------------ operations

    @app.get("/healthz", response_model=HealthOut, summary="The process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "some check failed"}},
        summary="Broker reachable, model loaded, store reachable",
    )
    async def readyz():
        publisher = parts["publisher"]
        store_ = parts["store"]
        broker_ok, store_ok = await asyncio.gather(
            publisher.ready() if publisher is not None else asyncio.sleep(0, False),
            run_in_threadpool(store_.ping) if store_ is not None else asyncio.sleep(0, False),
        )
        bundle = await run_in_threadpool(scorer.maybe_reload)
        checks = {"broker": bool(broker_ok), "model": bundle is not None, "store": bool(store_ok)}
        detail = {}
        if rules_listener is not None:  # the published rules read up to the end once
            checks["rules"] = rules_listener.ready.is_set()
            if not checks["rules"]:
                detail["rules"] = rules_listener.status
        if bundle is None:
            detail["model"] = scorer.last_error or "no model"
        if bundle is not None:
            detail["model_version"] = bundle.version
        failed = [name for name, ok in checks.items() if not ok]
        body = {"ready": not failed, "checks": checks, "failed": failed, "detail": detail}
        return JSONResponse(body, status_code=503 if failed else 200)

    @app.get(
        "/metrics",
        dependencies=Reader,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text format",
            },
            **E401,
            **E403,
        },
        response_class=Response,
        summary="Prometheus metrics",
    )
    async def get_metrics():
        bundle = scorer.bundle
        metrics.active_model.info({"version": bundle.version if bundle else ""})
        sink = app.state.sink
        if sink is not None and sink.lag is not None:
            metrics.sink_lag.set(sink.lag)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app

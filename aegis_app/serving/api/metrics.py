"""Prometheus metrics of `aegis api` (one registry per app, so tests can build many)."""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from models.decisions.decision import rule_outcomes

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "aegis_decisions",
            "Stream decisions stored by the sink, by action",
            ["action"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "aegis_decision_latency_seconds",
            "Stream decision latency: decided_at - ingested_ms",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_lag = Gauge(
            "aegis_sink_consumer_lag", "Decisions on aegis.decisions not yet stored", registry=r
        )
        self.dead_letters = Counter(
            "aegis_dead_letters", "Records seen on aegis.deadletter", registry=r
        )
        self.active_model = Info(
            "aegis_active_model", "Model version the API scores with", registry=r
        )
        self.api_decisions = Counter(
            "aegis_api_decisions",
            "Decisions computed by POST /v1/transactions",
            ["action"],
            registry=r,
        )
        # The rules of the API's own scoring (the workers count theirs on their /metrics).
        self.rule_hits = Counter(
            "aegis_api_rule_hits",
            "POST /v1/transactions decisions each rule version matched (active or shadow)",
            ["rule", "version", "mode"],
            registry=r,
        )
        self.rule_errors = Counter(
            "aegis_api_rule_errors",
            "POST /v1/transactions decisions a rule version could not be answered for",
            ["rule", "version"],
            registry=r,
        )
        # Where POST /v1/transactions spends its time: the workers' feature calls, the
        # model (queue wait included), the broker's ack of the transaction.
        self.scoring_stage = Histogram(
            "aegis_api_scoring_stage_seconds",
            "POST /v1/transactions time per stage (features, score, publish)",
            ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.request_latency = Histogram(
            "aegis_api_request_duration_seconds",
            "API request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Drift of the latest event-time window (aegis_app.serving.api.drift sets them).
        self.drift_score_psi = Gauge(
            "aegis_drift_score_psi",
            "PSI of the ensemble score, latest window vs training (NaN: not measured)",
            registry=r,
        )
        self.drift_score_psi.set(float("nan"))
        self.drift_feature_psi = Gauge(
            "aegis_drift_feature_psi",
            "PSI of each feature, latest window vs training",
            ["feature"],
            registry=r,
        )
        self.drift_alert = Gauge(
            "aegis_drift_alert",
            "1 when the latest window's score or feature PSI passes the drift threshold",
            registry=r,
        )
        self.drift_window_rows = Gauge(
            "aegis_drift_window_rows", "Decisions in the latest drift window", registry=r
        )

    def count_rules(self, decision: dict) -> None:
        for mode, rule, version, _error in rule_outcomes(decision):
            if mode == "error":
                self.rule_errors.labels(rule=rule, version=version).inc()
            else:
                self.rule_hits.labels(rule=rule, version=version, mode=mode).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: request latency by route template (bounded label cardinality)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def timed_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.request_latency.labels(
                method=scope.get("method", ""), route=path, status=str(status["code"])
            ).observe(time.perf_counter() - started)

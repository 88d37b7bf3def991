"""The worker's GET /metrics: its counters in the Prometheus text format.

A collector reads the counters when scraped (prometheus_client's extension point for
values kept elsewhere), so scoring only ever touches plain Counters:

- aegis_worker_events_total{event}: every count of /health/'s "counts";
- aegis_rule_hits_total{rule, version, mode}: matches of each rule version, ``mode``
  ``active`` (it decided) or ``shadow`` (recorded only); the rules file's rules have the
  version ``None``;
- aegis_rule_errors_total{rule, version}: transactions a rule could not be answered for
  (skipped; the model still decided them);
- aegis_rules_running{mode}: rules this worker runs; aegis_rule_skipped{rule, version}: 1
  for each published rule it could not compile (its config lacks a name the rule reads).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.counters import WorkerCounters
from models.rules.live import LiveRules

# aiohttp adds "; charset=utf-8" to a text response (and refuses it given here).
CONTENT_TYPE = "text/plain; version=0.0.4"


class WorkerCollector(Collector):
    def __init__(self, counters: WorkerCounters, rules: LiveRules) -> None:
        self.counters = counters
        self.rules = rules

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "aegis_worker_events", "What this worker has seen and done", labels=["event"]
        )
        for name, value in sorted(dict(self.counters.counts).items()):
            events.add_metric([name], value)
        yield events
        hits = CounterMetricFamily(
            "aegis_rule_hits",
            "Transactions each rule version matched (mode: active or shadow)",
            labels=["rule", "version", "mode"],
        )
        for (rule, version, mode), value in sorted(dict(self.counters.rule_hits).items()):
            hits.add_metric([rule, version, mode], value)
        yield hits
        errors = CounterMetricFamily(
            "aegis_rule_errors",
            "Transactions a rule version could not be answered for (skipped)",
            labels=["rule", "version"],
        )
        for (rule, version), value in sorted(dict(self.counters.rule_errors).items()):
            errors.add_metric([rule, version], value)
        yield errors
        running = GaugeMetricFamily(
            "aegis_rules_running", "Rules this worker runs", labels=["mode"]
        )
        rules = self.rules.rule_set.rules
        for mode in ("active", "shadow"):
            running.add_metric([mode], sum(1 for r in rules if r.state == mode))
        yield running
        skipped = GaugeMetricFamily(
            "aegis_rule_skipped",
            "1 for each published rule this worker could not compile",
            labels=["rule", "version"],
        )
        for rule in self.rules.skipped:
            skipped.add_metric([str(rule.rule_id), str(rule.version)], 1)
        yield skipped


def registry(counters: WorkerCounters, rules: LiveRules) -> CollectorRegistry:
    """A registry of its own per worker app (tests build many in one process)."""
    out = CollectorRegistry(auto_describe=False)
    out.register(WorkerCollector(counters, rules))
    return out


def render(metrics: CollectorRegistry) -> str:
    return generate_latest(metrics).decode()

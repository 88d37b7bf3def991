"""The worker's web view: an entity's table state (from whichever worker owns it), this
worker's recent alerts, health, and its counters for Prometheus (agents/metrics.py)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import faust

from aegis_app.core.records import format_datetime
from agents import metrics
from tables.engine.state import StateError

if TYPE_CHECKING:
    from agents.pipeline import Pipeline


def register(app: faust.App, pipeline: Pipeline) -> None:
    """Attach the web view's pages to `app`."""
    scorer, counters, engine = pipeline.scorer, pipeline.counters, pipeline.engine
    for entity, table in pipeline.states.items():
        _register_entity_views(app, engine, entity, table)

    @app.page("/alerts/")
    async def alerts_view(web, request):
        limit = int(request.query.get("limit", 50))
        return web.json({"alerts": list(counters.recent_alerts)[-limit:][::-1]})

    registry = metrics.registry(counters, scorer.rules)

    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.text(metrics.render(registry), content_type=metrics.CONTENT_TYPE)

    @app.page("/health/")
    async def health_view(web, request):
        bundle = scorer.bundle
        replicas_current = all(r.replica.caught_up.is_set() for r in pipeline.replicas.values())
        ready = bundle is not None and scorer.rules.ready and replicas_current
        assigned = sorted(f"{tp.topic}/{tp.partition}" for tp in app.consumer.assignment())
        return web.json(
            {
                "status": "ok" if ready else _waiting(bundle is None, scorer.rules.ready),
                "model_version": bundle.version if bundle else None,
                # When it was loaded, the last swap (old -> new, on announcement or poll), and
                # whether this worker hears model-update announcements.
                "model": scorer.model_status(),
                # The rules it runs, those it could not compile, and its aegis.rules reader.
                "rules": scorer.rules_status(),
                "counts": {
                    **counters.counts,
                    # refused_stale_acks, stale_fetches_dropped (aegis_app/kafka/faust_ext.py)
                    **app.consumer.stale_message_counts(),
                },
                "scoring_queue": scorer.waiting,  # transactions waiting to be scored
                # Hops to the other entities' states waiting to be sent with the next ones.
                "hops_waiting": len(pipeline.hop_sends) if pipeline.hop_sends else 0,
                # Card states' changelog records waiting likewise (the states are written).
                "card_changelog_waiting": (
                    len(pipeline.changelog_sends) if pipeline.changelog_sends else 0
                ),
                # The stages' inboxes (aegis_app/kafka/batches.py): fetched, not yet taken.
                "stage_inboxes": {
                    topic: {"waiting": len(inbox), "taken": inbox.taken, "skipped": inbox.skipped}
                    for topic, inbox in app.batch_inboxes.items()
                },
                "max_event_lateness_seconds": counters.max_lateness_seconds,
                # The replicas of other entities' states the card stage reads (how current),
                # and the changelog records this worker's tables wrote.
                "state_replicas": {
                    entity: replica.replica.health()
                    for entity, replica in pipeline.replicas.items()
                },
                "changelogs": {
                    entity: table.changelog_status() for entity, table in pipeline.states.items()
                },
                "assigned_partitions": assigned,
            },
            status=200 if ready else 503,
        )


def _waiting(for_model: bool, rules_ready: bool) -> str:
    if for_model:
        return "waiting_for_model"
    # The card stage decides nothing before its replicas have read their changelogs once.
    return "waiting_for_rules" if not rules_ready else "waiting_for_replicas"


def _register_entity_views(app: faust.App, engine, entity: str, table) -> None:
    """GET /state/{entity}/{key}/: the raw packed state, base64 (the API's synchronous
    scoring computes features from a copy of it); GET /entities/{entity}/{key}/: a
    summary people can read. Both answered by the worker that owns the key."""

    @app.page(f"/state/{entity}/{{key}}/", name=f"state_{entity}")
    @app.table_route(table=table, match_info="key")
    async def raw_state(web, request, key: str):
        value = table.get(key)
        encoded = base64.b64encode(value).decode() if value else None
        return web.json({"entity": entity, "key": key, "state": encoded})

    @app.page(f"/entities/{entity}/{{key}}/", name=f"entity_{entity}")
    @app.table_route(table=table, match_info="key")
    async def entity_view(web, request, key: str):
        value = table.get(key)
        if not value:
            return web.json({"entity": entity, "key": key, "found": False}, status=404)
        try:
            size = engine.state_size(entity, value)
            latest = engine.latest_event(entity, value)
        except StateError as exc:
            return web.json({"entity": entity, "key": key, "error": str(exc)}, status=500)
        return web.json(
            {
                "entity": entity,
                "key": key,
                "found": True,
                "events": size.events,
                "fraud_labels": size.labels,
                "state_bytes": size.bytes,
                "as_of": format_datetime(latest) if latest is not None else None,
            }
        )

"""The worker's web view: a card's table state (from whichever worker owns it),
this worker's recent alerts, and health."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from aegis_app.core.records import format_datetime
from aegis_app.core.timerules import DAY
from tables.features import WINDOWS_DAYS, CardState, TerminalState

if TYPE_CHECKING:
    from agents.pipeline import Pipeline


def _int_query(request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None:
        raise ValueError(f"{name}: missing")
    return int(raw)


def register(app: faust.App, pipeline: Pipeline) -> None:
    """Attach the web view's pages to `app`."""
    settings, scorer, counters = pipeline.settings, pipeline.scorer, pipeline.counters
    card_state, terminal_state = pipeline.card_state, pipeline.terminal_state

    @app.page("/cards/{card_id}/")
    @app.table_route(table=card_state, match_info="card_id")
    async def card_view(web, request, card_id: str):
        value = card_state.get(card_id)
        if value is None:
            return web.json({"card_id": card_id, "found": False}, status=404)
        state = CardState.from_value(value)
        latest = max(state.ts)
        windows = {}
        for w in WINDOWS_DAYS:
            amounts = [a for t, a in zip(state.ts, state.amounts) if t > latest - w * DAY]
            windows[f"{w}d"] = {
                "count": len(amounts),
                "mean_amount": sum(amounts) / len(amounts) if amounts else 0.0,
            }
        return web.json(
            {
                "card_id": card_id,
                "found": True,
                "as_of": format_datetime(latest),
                "windows": windows,
                "transactions": [
                    {
                        "transaction_id": i,
                        "tx_datetime": format_datetime(t),
                        "tx_amount": a,
                        "terminal_id": term,
                    }
                    for t, i, a, term in zip(state.ts, state.ids, state.amounts, state.terminals)
                ][-50:],
            }
        )

    @app.page("/state/cards/{card_id}/")
    @app.table_route(table=card_state, match_info="card_id")
    async def card_raw_state(web, request, card_id: str):
        """Raw CardState value (for the API's synchronous scoring with the same state)."""
        return web.json({"card_id": card_id, "state": card_state.get(card_id)})

    @app.page("/state/terminals/{terminal_id}/")
    @app.table_route(table=terminal_state, match_info="terminal_id")
    async def terminal_raw_state(web, request, terminal_id: str):
        """Raw TerminalState value."""
        return web.json({"terminal_id": terminal_id, "state": terminal_state.get(terminal_id)})

    def _served_here(table, key: str) -> bool:
        """Whether this worker actively owns `key` of `table` (as Faust's table_route decides)."""
        try:
            owner = app.router.key_store(table.name, key)
        except KeyError:  # no assignment yet
            return False
        # Compared as Faust's router compares worker URLs when it decides to forward.
        return app.router._urlident(owner) == app.router._urlident(app.conf.canonical_url)

    def _terminal_features(terminal_id: str, tx: int, ts: int) -> dict[str, float]:
        state = TerminalState.from_value(terminal_state.get(terminal_id))
        return state.observe(tx, ts, settings.label_delay_days)

    @app.page("/features/cards/{card_id}/")
    @app.table_route(table=card_state, match_info="card_id")
    async def card_features_view(web, request, card_id: str):
        """Card features of a transaction that is not in the stream yet (?tx=&ts=&amount=
        &terminal=), from this card's state; nothing is written back. The API's synchronous
        scoring uses it: a few numbers cross the wire instead of the whole state. With
        &with_terminal=1, the terminal's features too when this worker owns that terminal
        (one request instead of two)."""
        try:
            tx, ts = _int_query(request, "tx"), _int_query(request, "ts")
            terminal, amount = _int_query(request, "terminal"), float(request.query["amount"])
        except (KeyError, ValueError) as exc:
            return web.json({"error": f"bad query: {exc}"}, status=400)
        # A fresh deserialised value per get: observing it leaves the table untouched.
        features = CardState.from_value(card_state.get(card_id)).observe(tx, ts, amount, terminal)
        body = {"card_id": card_id, "features": features}
        if request.query.get("with_terminal") == "1" and _served_here(
            terminal_state, str(terminal)
        ):
            body["terminal_features"] = _terminal_features(str(terminal), tx, ts)
        return web.json(body)

    @app.page("/features/terminals/{terminal_id}/")
    @app.table_route(table=terminal_state, match_info="terminal_id")
    async def terminal_features_view(web, request, terminal_id: str):
        """Terminal features of a transaction not in the stream yet (?tx=&ts=)."""
        try:
            tx, ts = _int_query(request, "tx"), _int_query(request, "ts")
        except ValueError as exc:
            return web.json({"error": f"bad query: {exc}"}, status=400)
        features = _terminal_features(terminal_id, tx, ts)
        return web.json({"terminal_id": terminal_id, "features": features})

    @app.page("/alerts/")
    async def alerts_view(web, request):
        limit = int(request.query.get("limit", 50))
        return web.json({"alerts": list(counters.recent_alerts)[-limit:][::-1]})

    @app.page("/health/")
    async def health_view(web, request):
        bundle = scorer.bundle
        assigned = sorted(f"{tp.topic}/{tp.partition}" for tp in app.consumer.assignment())
        return web.json(
            {
                "status": "ok" if bundle is not None else "waiting_for_model",
                "model_version": bundle.version if bundle else None,
                # When it was loaded, the last swap (old -> new, on announcement or poll), and
                # whether this worker hears model-update announcements.
                "model": scorer.model_status(),
                "counts": {
                    **counters.counts,
                    # refused_stale_acks, stale_fetches_dropped (aegis_app/kafka/faust_ext.py)
                    **app.consumer.stale_message_counts(),
                },
                "scoring_queue": scorer.queue.qsize(),
                "event_time_skew_seconds": counters.event_time_skew_seconds(),
                "assigned_partitions": assigned,
            },
            status=200 if bundle is not None else 503,
        )

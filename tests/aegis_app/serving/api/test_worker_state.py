"""WorkerState asks for a card's and a terminal's features in one request when the card's
worker also owns the terminal, and in two when it does not. The worker is a small aiohttp
stand-in that answers like agents/views.py and counts the requests it gets."""

from __future__ import annotations

import asyncio

from aiohttp import web

from aegis_app.core.records import Transaction
from aegis_app.serving.api.scoring import Colocation, WorkerState
from tables.features import ALL_FEATURES

TERMINAL_FEATURES = [name for name in ALL_FEATURES if name.startswith("TERMINAL_ID_")]
CARD_FEATURES = [name for name in ALL_FEATURES if name.startswith("CUSTOMER_ID_")]
CARD = {name: 1.0 for name in CARD_FEATURES}
TERMINAL = {name: 2.0 for name in TERMINAL_FEATURES}


def transaction(i: int = 1) -> Transaction:
    return Transaction(
        transaction_id=i,
        tx_datetime="2026-05-01 10:00:00",
        customer_id=7,
        terminal_id=9,
        tx_amount=12.5,
        ts=1_777_629_600,
    )


async def features_with_fake_worker(owns_terminal: bool, calls: int) -> tuple[list, list]:
    """Feature dicts of `calls` transactions, and the paths/queries the worker saw."""
    seen: list[tuple[str, dict]] = []

    async def card(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query)))
        body = {"features": CARD}
        if request.query.get("with_terminal") == "1" and owns_terminal:
            body["terminal_features"] = TERMINAL
        return web.json_response(body)

    async def terminal(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query)))
        return web.json_response({"features": TERMINAL})

    app = web.Application()
    app.router.add_get("/features/cards/{id}/", card)
    app.router.add_get("/features/terminals/{id}/", terminal)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state = WorkerState(f"http://127.0.0.1:{port}")
    try:
        results = [await state.features(transaction(i), delay_days=7) for i in range(calls)]
    finally:
        await state.close()
        await runner.cleanup()
    return results, seen


def test_one_request_when_the_cards_worker_owns_the_terminal():
    results, seen = asyncio.run(features_with_fake_worker(owns_terminal=True, calls=3))
    assert [path for path, _ in seen] == ["/features/cards/7/"] * 3
    assert all(query["with_terminal"] == "1" for _, query in seen)
    for features in results:
        assert all(features[name] == 1.0 for name in CARD_FEATURES)
        assert all(features[name] == 2.0 for name in TERMINAL_FEATURES)
        assert features["TX_AMOUNT"] == 12.5


def test_the_terminal_is_asked_separately_and_the_features_are_the_same():
    combined, _ = asyncio.run(features_with_fake_worker(owns_terminal=True, calls=1))
    split, seen = asyncio.run(features_with_fake_worker(owns_terminal=False, calls=1))
    assert split == combined
    assert [path for path, _ in seen] == ["/features/cards/7/", "/features/terminals/9/"]


def test_after_mostly_split_answers_both_workers_are_asked_at_once():
    _, seen = asyncio.run(features_with_fake_worker(owns_terminal=False, calls=40))
    card_queries = [query for path, query in seen if path.startswith("/features/cards/")]
    assert len(card_queries) == 40 and len(seen) == 80
    # 32 combined tries to learn, then plain concurrent requests
    assert sum("with_terminal" in query for query in card_queries) == 32


def test_colocation_probes_now_and_then_and_switches_back():
    colocation = Colocation(window=8)
    for _ in range(4):  # learning: half a window of combined tries
        assert colocation.combine()
        colocation.record(False)
    decisions = [colocation.combine() for _ in range(16)]
    assert decisions.count(True) == 2  # one probe per window
    for _ in range(8):
        colocation.record(True)  # e.g. the other workers went away
    assert colocation.combine()

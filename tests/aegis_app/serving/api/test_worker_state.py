"""WorkerState reads each entity's packed state from the worker web view
(GET /state/{entity}/{key}/ -> {"entity", "key", "state": base64 | null}) and the API's
features from those states are the stream's. The worker is a small aiohttp stand-in that
answers like agents/views.py, with states made by StreamEngine.observe."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from aegis_app.core import config as config_files
from aegis_app.core.source import SourceReader
from aegis_app.serving.api.scoring import Unavailable, WorkerState, features_from_states
from tables.engine.stream import StreamEngine

CONFIGS = Path(__file__).resolve().parents[4] / "configs"
SPARKOV = config_files.load(CONFIGS / "sparkov.toml")
ROW = {
    "trans_num": "t-1",
    "cc_num": "4599735407877245080",
    "merchant": "fraud_Welch, Rath and Koepp",
    "amt": 38.52,
    "trans_date_trans_time": "2019-01-07 13:04:44",
    "category": "entertainment",
    "gender": "M",
    "state": "MI",
    "city_pop": 75830,
    "dob": "1974-12-28",
    "lat": 42.4969,
    "long": -83.2911,
    "merch_lat": 41.68,
    "merch_long": -82.61,
}


def history() -> tuple[StreamEngine, dict[tuple[str, str], bytes]]:
    """The states the stream holds after two earlier transactions of the card."""
    engine, reader = StreamEngine(SPARKOV), SourceReader(SPARKOV)
    states: dict[tuple[str, str], bytes] = {}
    earlier = [
        {**ROW, "trans_num": "t-0", "trans_date_trans_time": "2019-01-07 12:00:00", "amt": 5.0},
        {**ROW, "trans_num": "t-00", "trans_date_trans_time": "2019-01-07 13:00:00"},
    ]
    for raw in earlier:
        record = reader.record(raw)
        keys = engine.keys(record)
        _, new = engine.observe(record, {name: states.get((name, keys[name])) for name in keys})
        states.update({(name, keys[name]): value for name, value in new.items()})
    return engine, states


async def with_worker(
    states: dict[tuple[str, str], bytes],
    use: Callable[[WorkerState, list[tuple[str, str]]], Awaitable],
    answer: Callable[[web.Request], web.Response] | None = None,
):
    """Run `use(worker_state, seen)` against a fake worker holding `states`; `seen` gets
    the (entity, key) of each request as the worker decoded them."""
    seen: list[tuple[str, str]] = []

    async def state_view(request: web.Request) -> web.Response:
        entity, key = request.match_info["entity"], request.match_info["key"]
        seen.append((entity, key))
        if answer is not None:
            return answer(request)
        value = states.get((entity, key))
        encoded = base64.b64encode(value).decode() if value else None
        return web.json_response({"entity": entity, "key": key, "state": encoded})

    app = web.Application()
    app.router.add_get("/state/{entity}/{key}/", state_view)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    worker = WorkerState(f"http://127.0.0.1:{port}", timeout=5.0)
    try:
        return await use(worker, seen)
    finally:
        await worker.close()
        await runner.cleanup()


def test_features_from_the_workers_states_are_the_streams():
    engine, states = history()
    record = SourceReader(SPARKOV).record(ROW)

    async def use(worker, seen):
        return await features_from_states(engine, worker, record), seen

    features, seen = asyncio.run(with_worker(states, use))
    keys = engine.keys(record)
    expected, _ = engine.observe(record, {name: states.get((name, keys[name])) for name in keys})
    assert features == expected
    assert features["card_count_1d"] == 3.0
    # every entity asked once, by its key as the worker decodes it: the merchant's comma
    # and spaces arrive intact
    assert sorted(seen) == sorted(keys.items())
    assert ("merchant", "fraud_Welch, Rath and Koepp") in seen


def test_a_key_with_a_slash_stays_in_its_path_segment():
    key = "a/b c?d#e%"

    async def use(worker, seen):
        return await worker.state("merchant", key), seen

    value, seen = asyncio.run(with_worker({("merchant", key): b"\x01\x02"}, use))
    assert value == b"\x01\x02" and seen == [("merchant", key)]
    assert WorkerState.path("merchant", key) == "/state/merchant/a%2Fb%20c%3Fd%23e%25/"


def test_no_state_is_none_and_a_missing_key_is_not_asked():
    async def use(worker, seen):
        return await worker.states({"card": "9", "category": None}), seen

    states, seen = asyncio.run(with_worker({}, use))
    assert states == {"card": None, "category": None} and seen == [("card", "9")]


@pytest.mark.parametrize(
    "answer,why",
    [
        (lambda r: web.json_response({"error": "boom"}, status=500), "HTTP 500"),
        (lambda r: web.Response(text="<html>"), "unreadable"),
        (lambda r: web.json_response({"entity": "card"}), "unreadable"),
        (lambda r: web.json_response({"state": "not base64!"}), "not base64"),
    ],
)
def test_a_bad_answer_is_unavailable_naming_why(answer, why):
    async def use(worker, seen):
        with pytest.raises(Unavailable) as caught:
            await worker.state("card", "9")
        return str(caught.value)

    message = asyncio.run(with_worker({}, use, answer))
    assert why in message and "/state/card/9/" in message


def test_an_unreachable_worker_is_unavailable():
    async def scenario():
        worker = WorkerState("http://127.0.0.1:1", timeout=2.0)
        try:
            with pytest.raises(Unavailable, match="unreachable"):
                await worker.state("card", "9")
        finally:
            await worker.close()

    asyncio.run(scenario())

"""The stages' batch loop: take a fetch's worth of one topic's messages, process them
together, acknowledge them (aegis_app/kafka/batches.py says why and how)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import faust

from aegis_app.core.settings import Settings
from aegis_app.kafka.batches import Inbox

log = logging.getLogger(__name__)


def batch_inbox(app: faust.App, settings: Settings, topic: faust.TopicT) -> Inbox:
    """An inbox for `topic`'s messages, which the worker's consumer then fills instead of
    handing them to a Faust stream; `topic` is subscribed as an agent's would be."""
    inbox = Inbox(
        app,
        topic.topics,
        max_batch=settings.stage_batch_size,
        max_buffered=4 * settings.stage_batch_size,
    )
    app.topics.add(topic)  # subscribed, assigned and committed like an agent's topic
    app.deliver_in_batches(inbox)
    return inbox


async def run_batches(
    app: faust.App,
    inbox: Inbox,
    handle: Callable[[list], Awaitable[object]],
    acknowledge: bool = True,
) -> None:
    """Forever: the next batch, `handle(batch)`, then acknowledge it (unless `handle` does,
    `acknowledge=False`). A record `handle` cannot process is its own business (a dead
    letter); anything else crashes the worker, as a crashed Faust agent does, so its
    supervisor restarts it and nothing more is acknowledged."""
    while True:
        messages = await inbox.take()
        try:
            await handle(messages)
        except Exception as exc:
            log.exception("batch of %d messages failed", len(messages))
            await app.crash(exc)
            raise
        if acknowledge:
            inbox.done(messages)

"""Publishing a chaos or soak stream: transactions, labels and poison records at a fixed
rate, each fault fired (in a thread) once the stream reaches its position."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aegis_app.core.pacing import Pacer
from aegis_app.core.settings import TRANSACTIONS_TOPIC
from aegis_app.harness.chaos.poison import Poison
from aegis_app.harness.chaos.stack import ChaosStack
from aegis_app.ingest.replay import Outgoing
from aegis_app.kafka.producer import Deliveries, make_producer, send_label, send_transaction


@dataclass
class Sent:
    transactions: list[Outgoing] = field(default_factory=list)
    poison: list[tuple[Poison, int, int]] = field(default_factory=list)  # (record, part, offset)
    labels: int = 0
    seconds: float = 0.0
    resent: int = 0  # sends the broker refused at first, then delivered


async def _stream(
    stack: ChaosStack,
    items: list[tuple[str, object]],
    rate: float,
    actions: dict[int, Callable[[], None]],
    on_item: Callable[[int], None] | None = None,
) -> Sent:
    """Publish `items` ("tx": Outgoing | "poison": Poison | "label": Label) at `rate` per
    second; run `actions[i]`
    (blocking callables, in threads) once item i has been queued; `on_item(i)` inline."""
    sent = Sent()
    producer = make_producer(stack.broker.url)  # max request 1 MiB: the huge poison fits
    await producer.start()
    tasks: list[asyncio.Task] = []
    poison_futures: list[tuple[Poison, asyncio.Future]] = []
    pacer = Pacer(rate)
    # A send the broker refuses is sent again: the loss this harness looks for is Aegis's,
    # not a record that never reached the topic.
    deliveries = Deliveries()
    try:
        for i, (kind, item) in enumerate(items):
            if kind == "tx":
                await deliveries.send(
                    lambda item=item: send_transaction(producer, item.payload, item.key)
                )
                sent.transactions.append(item)
            elif kind == "label":
                await deliveries.send(lambda item=item: send_label(producer, item))
                sent.labels += 1
            else:
                future = await producer.send(TRANSACTIONS_TOPIC, value=item.payload, key=item.key)
                poison_futures.append((item, future))
            if on_item is not None:
                on_item(i)
            action = actions.get(i)
            if action is not None:
                tasks.append(asyncio.create_task(asyncio.to_thread(action)))
            await pacer.wait(i + 1)
        await producer.flush()
        await deliveries.check(wait=True)
        sent.resent = deliveries.resent
        for poison, future in poison_futures:
            meta = await future
            sent.poison.append((poison, meta.partition, meta.offset))
        sent.seconds = pacer.elapsed()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            if not task.done():
                await asyncio.wait([task], timeout=60)
        await producer.stop()
    return sent


def interleave(
    txs: list[Outgoing], poison: list[Poison], seed: int = 0
) -> list[tuple[str, object]]:
    """Transactions in order with the poison records scattered among them at random."""
    rng = random.Random(seed + 1)
    slots = sorted(rng.randrange(len(txs) + 1) for _ in poison)
    items: list[tuple[str, object]] = []
    p = 0
    for i, tx in enumerate(txs):
        while p < len(slots) and slots[p] <= i:
            items.append(("poison", poison[p]))
            p += 1
        items.append(("tx", tx))
    items.extend(("poison", x) for x in poison[p:])
    return items

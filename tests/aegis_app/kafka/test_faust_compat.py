"""The guard against Faust acking a message it skipped unprocessed during a rebalance."""

from __future__ import annotations

from types import SimpleNamespace

from aegis_app.kafka import faust_compat
from aegis_app.kafka.faust_compat import skipped_unprocessed


def message(tracked: bool, generation_id: int | None) -> SimpleNamespace:
    return SimpleNamespace(tracked=tracked, generation_id=generation_id)


def test_only_untracked_messages_from_a_rebalance_lose_their_ack():
    # fetched before the latest rebalance and skipped by the stream: no ack
    assert skipped_unprocessed(message(False, 3), generation_id=4, flow_active=True)
    # read while flow control is paused (a rebalance in progress): no ack
    assert skipped_unprocessed(message(False, 4), generation_id=4, flow_active=False)
    # processed messages keep their ack, whenever it comes (Faust waits for them)
    assert not skipped_unprocessed(message(True, 3), generation_id=4, flow_active=False)
    # an untracked message of the current generation, flow running: a normal ack
    assert not skipped_unprocessed(message(False, 4), generation_id=4, flow_active=True)


def test_the_guard_wraps_faust_consumer_ack():
    from faust.transport.consumer import Consumer

    assert faust_compat.install()
    assert getattr(Consumer.ack, "__wrapped__", None) is not None
    app = SimpleNamespace(
        consumer_generation_id=2, flow_control=SimpleNamespace(is_active=lambda: True)
    )
    before = faust_compat.refused_stale_acks
    # refused before Faust's own bookkeeping is touched (the fake consumer has none)
    assert Consumer.ack(SimpleNamespace(app=app), message(False, 1)) is False
    assert faust_compat.refused_stale_acks == before + 1

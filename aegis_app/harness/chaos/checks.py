"""The chaos run's checks, from the topics (and the result store, when the decision sink is
there): every valid transaction decided exactly once after de-duplication by transaction id,
every poison record on aegis.deadletter with a reason, the features of every decision equal
to the batch recomputation (tables.engine.compute_features on the normalised records
actually sent), each sampled card's entity state equal to the state the stream engine builds
from the same records when read through any worker's web view (faust table_route), and no
worker crashed. `summarize` gathers them all.

The data is the simulator's, so the config is the default preset (files.simulator_config),
which the chaos stack's workers run too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
from aiokafka import TopicPartition

from aegis_app.core.config import Config
from aegis_app.core.files import simulator_config
from aegis_app.core.settings import DECISIONS_TOPIC, TRANSACTIONS_TOPIC
from aegis_app.harness.chaos.data import card_partition, frame_of
from aegis_app.harness.chaos.stack import ChaosStack
from aegis_app.harness.chaos.streaming import Sent
from aegis_app.ingest.replay import Outgoing
from aegis_app.kafka import clients
from tables.engine import StreamEngine, compute_features
from tables.engine import state as packed
from tables.engine.keys import id_hash


def card_entity(engine: StreamEngine) -> str:
    """The entity whose state is kept per card (e.g. "card")."""
    entity = engine.entity_of_column("card")
    if entity is None:
        raise ValueError('the config keeps no state per card ([entities] card = "card")')
    return entity


def batch_card_states(txs: list[Outgoing], config: Config | None = None) -> dict[str, bytes]:
    """Every card's entity state after all of `txs`, built by the stream engine from the
    records in the order given (each card's arrival order: its partition keeps it)."""
    engine = StreamEngine(config or simulator_config())
    entity = card_entity(engine)
    states: dict[str, bytes] = {}
    for tx in txs:
        key = engine.keys(tx.record)[entity]
        if key is None:
            continue
        _, state = engine.observe_entity(entity, tx.record, states.get(key))
        if state is not None:
            states[key] = state
    return states


def state_events(engine: StreamEngine, entity: str, state: bytes | None) -> list[tuple]:
    """A state's events as (time, id hash, cells...) sorted: what it holds, whatever the
    order the events arrived in (labels are not compared: the chaos stream sends none)."""
    decoded = packed.decode(engine.plan.entities[entity], state)
    rows = np.vstack([decoded.ts.astype(np.uint64), decoded.cells]).T
    return sorted(tuple(int(v) for v in row) for row in rows)


def feature_family(name: str, config: Config | None = None) -> str:
    """The entity a feature is kept for (e.g. "card", "terminal"), or "transaction"."""
    for feature in (config or simulator_config()).features:
        if feature.name == name:
            return feature.entity or "transaction"
    return "transaction"


def _same(got: Any, want: Any) -> bool:
    """A decision's feature value against the batch value: numbers within 1e-9 (None and
    NaN both mean missing), categories as text."""
    if isinstance(want, str) or isinstance(got, str):
        return got == want
    got_missing = got is None or (isinstance(got, float) and math.isnan(got))
    want_missing = want is None or (isinstance(want, float) and math.isnan(want))
    if got_missing or want_missing:
        return got_missing and want_missing
    return math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-9)


def check_features(
    txs: list[Outgoing],
    decisions: list[dict],
    labelled: pd.DataFrame | None,
    config: Config | None = None,
):
    """Decisions (every copy) whose features differ from the batch computation.
    `labelled`: the normalised frame of the sent records with their labels, when labels
    were sent too (default: the records without labels)."""
    config = config or simulator_config()
    frame = labelled if labelled is not None else frame_of(txs)
    batch = compute_features(frame, config)
    batch.index = frame["transaction_id"].astype(str).to_numpy()
    names = list(config.feature_names)
    by_family: Counter[str] = Counter()
    examples = []
    bad_decisions = 0
    for d in decisions:
        tx_id = str(d.get("transaction_id"))
        if tx_id not in batch.index:
            continue
        want = batch.loc[tx_id]
        features = d.get("features") or {}
        wrong = [name for name in names if not _same(features.get(name), want[name])]
        if wrong:
            bad_decisions += 1
            by_family.update({feature_family(n, config) for n in wrong})
            if len(examples) < 3:
                examples.append(
                    {n: (features.get(n), want[n]) for n in wrong[:3]} | {"transaction_id": tx_id}
                )
    return bad_decisions, dict(by_family), examples


def _state_of(answer: dict) -> bytes | None:
    encoded = answer.get("state")
    return None if encoded is None else base64.b64decode(encoded, validate=True)


def check_card_states(
    stack: ChaosStack,
    txs: list[Outgoing],
    sample: int = 60,
    seed: int = 0,
    config: Config | None = None,
) -> dict:
    """Sampled cards' entity state through every alive worker's web view
    (GET /state/{entity}/{key}/) vs the state the stream engine builds from the same records.

    A worker that does not own the card's partition answers through faust's table_route
    (it forwards the request to the owner), so `routed` counts those answers.
    """
    config = config or simulator_config()
    engine = StreamEngine(config)
    entity = card_entity(engine)
    expected = batch_card_states(txs, config)
    ids = {id_hash(tx.transaction_id): tx.transaction_id for tx in txs}
    rng = random.Random(seed)
    cards = rng.sample(sorted(expected), min(sample, len(expected)))
    owners = stack.owners()
    alive = [w for w in stack.workers.values() if w.alive]
    checked = mismatched = routed = unanswered = 0
    examples = []
    with httpx.Client(timeout=10) as client:
        for card in cards:
            want = state_events(engine, entity, expected[card])
            owner = owners.get(card_partition(card, stack.partitions))
            for worker in alive:
                try:
                    response = client.get(f"{worker.url}/state/{entity}/{card}/")
                    got = state_events(engine, entity, _state_of(response.json()))
                except (httpx.HTTPError, ValueError, binascii.Error):
                    unanswered += 1
                    continue
                checked += 1
                if worker.name != owner:
                    routed += 1
                if got != want:
                    mismatched += 1
                    if len(examples) < 3:
                        got_ids = {row[1] for row in got}
                        want_ids = {row[1] for row in want}
                        examples.append(
                            {
                                "card": card,
                                "asked": worker.name,
                                "owner": owner,
                                "missing_ids": sorted(ids.get(h, h) for h in want_ids - got_ids),
                                "extra_ids": sorted(str(ids.get(h, h)) for h in got_ids - want_ids),
                                "same_ids": got_ids == want_ids,
                            }
                        )
    return {
        "cards": len(cards),
        "answers": checked,
        "routed_answers": routed,
        "mismatched": mismatched,
        "unanswered": unanswered,
        "examples": examples,
    }


def check_store(db_url: str, expected_ids: set[str], timeout: float) -> dict:
    """The result store's view: rows per transaction id, waiting for the sink to catch up."""
    from aegis_app.serving.store import Store

    store = Store(db_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            ids = [str(i) for i in store.transaction_ids()]
            if expected_ids <= set(ids) or time.monotonic() >= deadline:
                break
            time.sleep(1)
        counts = Counter(ids)
        return {
            "rows": len(ids),
            "missing": len(expected_ids - set(ids)),
            "unexpected": len(set(ids) - expected_ids),
            "doubled": sum(1 for c in counts.values() if c > 1),
        }
    finally:
        store.close()


async def read_all_async(broker_url: str, topic: str, timeout: float) -> list:
    """Every record of `topic`, up to the end of each partition as of the read.

    The end is the Fetch high watermark: on the embedded broker ListOffsets(LATEST) is too
    low (see aegis_app/kafka/faust_compat.py), so end_offsets() cannot tell when to stop.
    """
    consumer = clients.consumer(
        broker_url,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assignment:
            return records
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for messages in batch.values():
                records.extend(messages)
            done = True
            for tp in assignment:
                highwater = consumer.highwater(tp)
                if highwater is None or await consumer.position(tp) < highwater:
                    done = False
            if done and not batch:
                break
    finally:
        await consumer.stop()
    return records


def read_all(broker_url: str, topic: str, timeout: float = 60) -> list:
    return asyncio.run(read_all_async(broker_url, topic, timeout))


def wait_decided(
    broker_url: str,
    expected: set[str],
    timeout: float,
    give_up: Callable[[], bool] | None = None,
) -> list:
    """aegis.decisions, re-read until every expected transaction id is on it, the timeout,
    or `give_up()` says waiting is pointless (a worker that should run has died)."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_all(broker_url, DECISIONS_TOPIC)
        seen = {r.key.decode(errors="replace") for r in records if r.key}
        if expected <= seen or time.monotonic() >= deadline:
            return records
        if give_up is not None and give_up():
            return records
        time.sleep(3)


def _lost_by_partition(transactions: list[Outgoing], lost: set[str], partitions: int = 4) -> dict:
    """Count of lost transactions per aegis.transactions partition (keyed by card, as the
    producer partitions them)."""
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    every = list(range(partitions))
    counts: Counter[int] = Counter()
    for tx in transactions:
        if tx.transaction_id in lost:
            counts[choose(tx.key, every, every)] += 1
    return {str(p): n for p, n in sorted(counts.items())}


def summarize(
    stack: ChaosStack,
    sent: Sent,
    decision_records: list,
    letter_records: list,
    labelled: pd.DataFrame | None = None,
    store_timeout: float = 60,
    card_sample: int = 60,
) -> dict:
    valid_ids = {tx.transaction_id for tx in sent.transactions}
    decisions = [json.loads(r.value) for r in decision_records]
    per_id: dict[str, list[dict]] = defaultdict(list)
    for d in decisions:
        per_id[str(d["transaction_id"])].append(d)
    decided = valid_ids & set(per_id)
    conflicting = sum(
        1
        for copies in per_id.values()
        if len({(c["action"], json.dumps(c["features"], sort_keys=True)) for c in copies}) > 1
    )
    # Dead letters: each poison record is known by where it landed (partition, offset).
    letters = [json.loads(r.value) for r in letter_records]
    lettered: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for letter in letters:
        if letter.get("source_topic") == TRANSACTIONS_TOPIC:
            lettered[(letter["partition"], letter["offset"])].append(letter)
    poison_missing = []
    poison_bad_payload = 0
    reasons: Counter[str] = Counter()
    for poison, partition, offset in sent.poison:
        found = lettered.get((partition, offset))
        if not found:
            poison_missing.append(poison.kind)
            continue
        letter = found[0]
        if not letter.get("reason"):
            poison_missing.append(poison.kind)
        if base64.b64decode(letter.get("payload_b64") or "") != poison.payload:
            poison_bad_payload += 1
        reasons[poison.kind] += 1
    poison_keys = {(p, o) for _, p, o in sent.poison}
    bad_decisions, by_family, examples = check_features(sent.transactions, decisions, labelled)
    result = {
        "sent": len(valid_ids),
        "source_resends": sent.resent,
        "decided": len(decided),
        "lost": len(valid_ids - decided),
        # Where the lost ones were: their aegis.transactions partitions and first ids.
        "lost_by_partition": _lost_by_partition(
            sent.transactions, valid_ids - decided, stack.partitions
        ),
        "lost_ids_sample": sorted(valid_ids - decided)[:20],
        "doubled_after_dedup": 0,  # by construction on the topic view; the store's own below
        "topic_duplicates": len(decisions) - len(per_id),
        "conflicting_duplicates": conflicting,
        "unexpected_decisions": len(set(per_id) - valid_ids),
        "poison_sent": len(sent.poison),
        "dead_lettered": len(poison_keys & set(lettered)),
        "dead_letter_duplicates": sum(len(v) - 1 for v in lettered.values()),
        "poison_not_dead_lettered": len(poison_missing),
        "dead_letter_payload_mismatches": poison_bad_payload,
        "poison_kinds": dict(sorted(reasons.items())),
        "feature_mismatches": bad_decisions,
        "feature_mismatches_by_family": by_family,
        "feature_mismatch_examples": examples,
    }
    result["card_state"] = check_card_states(stack, sent.transactions, card_sample)
    if stack.db_url is not None:
        store = check_store(stack.db_url, valid_ids, store_timeout)
        result["store"] = store
        result["doubled_after_dedup"] = store["doubled"]
        result["store_checked"] = True
    else:
        result["store_checked"] = False
    alive = [w.name for w in stack.workers.values() if w.alive]
    result["workers_alive"] = len(alive)
    result["workers_expected_up"] = sum(1 for w in stack.workers.values() if w.expected_up)
    result["workers_crashed"] = stack.crashed()
    result["crash_log_lines"] = stack.crash_lines()
    return result

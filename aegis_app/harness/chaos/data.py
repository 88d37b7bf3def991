"""Test data for the chaos and soak runs: generated transactions (the simulator's, in the
default preset's schema), their frames, the partition of a card's key, and a model version
the workers can load."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from aiokafka.partitioner import murmur2

from aegis_app.core.files import good_rows, iter_frame, simulator_config
from aegis_app.harness import simulator
from aegis_app.harness.bench import TX_PER_DAY
from aegis_app.ingest.replay import Outgoing, ReplayEncoder

log = logging.getLogger(__name__)


def ensure_model(model_dir: Path, customers: int = 2000, days: int = 60) -> str:
    """An active model version the workers can load; trains a small one if there is none
    or if the active one no longer loads (the bundle format may have moved on) or reads other
    features than the default preset's (the schema of the data the chaos runs send)."""
    from models.lifecycle import registry

    config = simulator_config()
    version = registry.active_version(model_dir)
    if version:
        try:
            bundle = registry.load(model_dir, version)
            if tuple(bundle.feature_names) != config.feature_names:
                raise ValueError("its features are not the default preset's")
            bundle.score(np.zeros((1, len(bundle.feature_names))))  # loads is not enough
            return version
        except Exception as exc:  # noqa: BLE001 - any refusal means: train a fresh one
            log.warning(
                "model %s in %s does not load (%s); training a new one", version, model_dir, exc
            )
    from models.lifecycle.experiment import train
    from models.lifecycle.training import default_train_window

    frame = simulator.generate(customers=customers, terminals=2 * customers, days=days, seed=1)
    delay = config.label_delay_days
    window = default_train_window(frame["TX_DATETIME"], 7, delay)  # 7 days of training
    return train(frame, model_dir, window, delay_days=delay, config=config).version


def chaos_transactions(n: int, seed: int = 0) -> list[Outgoing]:
    """N transactions of the default population (5,000 cards), in time order, encoded as
    `aegis replay` sends them (the default preset's wire format, keyed by card)."""
    days = max(2, math.ceil(n / TX_PER_DAY) + 1)
    frame = simulator.generate(days=days, seed=seed).head(n)
    encoder = ReplayEncoder(simulator_config())
    return [encoder.outgoing(record, raw) for record, raw in good_rows(iter_frame(frame))]


def soak_frame(n: int, event_days: int, seed: int = 0) -> pd.DataFrame:
    """About `n` transactions spread over `event_days` days (a small population)."""
    customers = max(20, round(n / (event_days * 1.9)))
    frame = simulator.generate(
        customers=customers, terminals=customers * 2, days=event_days, seed=seed
    )
    return frame.head(n).reset_index(drop=True)


def frame_of(txs: list[Outgoing]) -> pd.DataFrame:
    """The sent transactions' normalised records as a frame (what the feature engine's batch
    path reads), without labels."""
    frame = pd.DataFrame([tx.record for tx in txs])
    frame["label"] = np.nan
    return frame


def card_partition(card: str | int, partitions: int) -> int:
    """The partition of a card's key (Kafka's default partitioner, as the producers use)."""
    return (murmur2(str(card).encode()) & 0x7FFFFFFF) % partitions

"""Test data for the chaos and soak runs: generated transactions (the simulator's), their
frames, the partition of a card's key, and a model version the workers can load."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from aiokafka.partitioner import murmur2

from aegis_app.core.files import iter_frame
from aegis_app.core.records import Transaction
from aegis_app.core.timerules import DEFAULT_LABEL_DELAY_DAYS
from aegis_app.harness import simulator
from aegis_app.harness.bench import TX_PER_DAY

log = logging.getLogger(__name__)


def ensure_model(model_dir: Path, customers: int = 2000, days: int = 60) -> str:
    """An active model version the workers can load; trains a small one if there is none
    or if the active one no longer loads (the bundle format may have moved on)."""
    from models.lifecycle import registry

    version = registry.active_version(model_dir)
    if version:
        try:
            bundle = registry.load(model_dir, version)
            bundle.score(np.zeros((1, len(bundle.feature_names))))  # loads is not enough
            return version
        except Exception as exc:  # noqa: BLE001 - any refusal means: train a fresh one
            log.warning(
                "model %s in %s does not load (%s); training a new one", version, model_dir, exc
            )
    from models.lifecycle.experiment import train
    from models.lifecycle.training import default_train_window

    frame = simulator.generate(customers=customers, terminals=2 * customers, days=days, seed=1)
    delay = DEFAULT_LABEL_DELAY_DAYS
    window = default_train_window(frame["TX_DATETIME"], 7, delay)  # 7 days of training
    return train(frame, model_dir, window, delay_days=delay).version


def chaos_transactions(n: int, seed: int = 0) -> list[Transaction]:
    """N transactions of the default population (5,000 cards), in time order."""
    days = max(2, math.ceil(n / TX_PER_DAY) + 1)
    frame = simulator.generate(days=days, seed=seed).head(n)
    return [record for _, record, _ in iter_frame(frame)]


def soak_frame(n: int, event_days: int, seed: int = 0) -> pd.DataFrame:
    """About `n` transactions spread over `event_days` days (a small population)."""
    customers = max(20, round(n / (event_days * 1.9)))
    frame = simulator.generate(
        customers=customers, terminals=customers * 2, days=event_days, seed=seed
    )
    return frame.head(n).reset_index(drop=True)


def frame_of(txs: list[Transaction]) -> pd.DataFrame:
    """The sent transactions as a simulator-schema frame, without labels."""
    return pd.DataFrame(
        {
            "TRANSACTION_ID": [t.transaction_id for t in txs],
            "TX_DATETIME": pd.to_datetime([t.tx_datetime for t in txs]),
            "CUSTOMER_ID": [t.customer_id for t in txs],
            "TERMINAL_ID": [t.terminal_id for t in txs],
            "TX_AMOUNT": [t.tx_amount for t in txs],
        }
    )


def card_partition(card: int, partitions: int) -> int:
    """The partition of a card's key (Kafka's default partitioner, as the producers use)."""
    return (murmur2(str(card).encode()) & 0x7FFFFFFF) % partitions

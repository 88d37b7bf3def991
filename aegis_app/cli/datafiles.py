"""Transaction files for the commands that read one (train, evaluate, thresholds): in the
simulator's schema with the Handbook's features (their original path, unchanged), or in the
schema a config declares (its source reader and the feature engine)."""

from __future__ import annotations

import sys
from pathlib import Path

from aegis_app.core.settings import Settings


def user_schema(settings: Settings):
    """The command's config when it is not the simulator's schema with the Handbook's
    features (those keep their own, unchanged path), else None."""
    from aegis_app.core import config as configs
    from tables.features import ALL_FEATURES

    config = configs.load(configs.resolve(settings.config))
    src = config.source
    handbook = config.feature_names == ALL_FEATURES and (
        src.transaction_id,
        src.card,
        src.merchant,
        src.amount,
        src.timestamp.field,
    ) == ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_DATETIME")
    return None if handbook else config


def load_configured(path: Path, config):
    """A file in the config's schema, as the protocol's view of its normalised rows."""
    from aegis_app.core.source import SourceReader
    from models.lifecycle.experiment import protocol_view

    normalised, errors = SourceReader(config).read_file(path)
    for line, reason in errors[:20]:
        print(f"{path}:{line}: {reason}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} bad row(s) skipped", file=sys.stderr)
    return protocol_view(normalised)

"""Rows of a frame as a client posts them to POST /v1/transactions (load runs, tests)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from aegis_app.core.config import Config
from aegis_app.core.source import SourceReader


def request_bodies(frame: pd.DataFrame, config: Config, id_base: int | None = None) -> list[dict]:
    """JSON bodies of the frame's rows: the config's columns (not the label), times in the
    configured format; with `id_base`, a fresh transaction id per row (id_base and up)."""
    src = config.source
    missing = SourceReader(config).missing_columns(frame.columns)
    if missing:
        raise ValueError(f"the rows lack the config's columns {', '.join(missing)}")
    columns = [c for c in src.columns() if c in frame.columns and c != src.label]
    out = []
    for i, row in enumerate(frame[columns].itertuples(index=False, name=None)):
        body = {
            column: _json_value(value, src.timestamp.format) for column, value in zip(columns, row)
        }
        if id_base is not None:
            body[src.transaction_id] = str(id_base + i)
        out.append(body)
    return out


def _json_value(value: Any, time_format: str) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.strftime(time_format) if "%" in time_format else int(value.timestamp())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

"""Drives the stream engine the way a worker would: one state per (entity, key), kept as
the bytes the engine returns; labels routed to the states of their transaction's keys."""

from __future__ import annotations

import math
from typing import Any

from tables.engine import StreamEngine


class Driver:
    def __init__(self, engine: StreamEngine) -> None:
        self.engine = engine
        self.states: dict[tuple[str, str], bytes] = {}

    def observe(self, record: dict) -> dict[str, Any]:
        keys = self.engine.keys(record)
        current = {e: self.states.get((e, k)) for e, k in keys.items() if k is not None}
        features, new_states = self.engine.observe(record, current)
        assert set(new_states) == set(current)
        for entity, blob in new_states.items():
            self.states[(entity, keys[entity])] = blob
        return features

    def label(self, record: dict, fraud: bool, known_at: int) -> None:
        for key in self.engine.label_keys(record):
            self.states[key] = self.engine.observe_label(
                key[0],
                self.states.get(key),
                record["transaction_id"],
                record["ts"],
                known_at,
                fraud,
            )


def same(got: Any, want: Any) -> bool:
    """Equal text/None, or floats within 1e-9 (relative or absolute), NaN equal to NaN."""
    if isinstance(want, str) or want is None or isinstance(got, str) or got is None:
        return got == want
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def mismatches(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [
        f"{name}: got {got[name]!r}, want {want[name]!r}"
        for name in want
        if not same(got[name], want[name])
    ]


def assert_rows_equal(got: list[dict], want: list[dict], what: str, exact: bool = False) -> None:
    """Rows of features equal: within 1e-9 (`same`), or bit for bit (NaN equal to NaN)."""
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        bad = (
            [f"{n}: got {g[n]!r}, want {w[n]!r}" for n in w if not identical(g[n], w[n])]
            if exact
            else mismatches(g, w)
        )
        assert not bad, f"{what}, row {i}: " + "; ".join(bad)


def identical(got: Any, want: Any) -> bool:
    if isinstance(got, float) and isinstance(want, float) and math.isnan(got):
        return math.isnan(want)
    return type(got) is type(want) and got == want

"""Random configs and normalised record sequences for the engine's property tests, and the
stream run the way a worker runs it."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from aegis_app.core.config import KINDS, LABEL_KINDS, PAIR_KINDS, TRANSACTION_KINDS, parse
from aegis_app.core.timerules import DAY
from tables.engine import StreamEngine
from tests.tables.engine.driver import Driver

START = 1_522_540_800  # 2018-04-01 00:00:00 UTC
YEAR = 365 * DAY

# The Handbook's 15 reference features in its order, then Aegis's own six.
HANDBOOK_FEATURES = (
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(
        name
        for w in (1, 7, 30)
        for name in (f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW")
    ),
    *(
        name
        for w in (1, 7, 30)
        for name in (f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW", f"TERMINAL_ID_RISK_{w}DAY_WINDOW")
    ),
    "TX_HOUR",
    "CUSTOMER_ID_SECONDS_SINCE_PREV_TX",
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY",
    "CUSTOMER_ID_AMOUNT_ZSCORE_30DAY",
    "CUSTOMER_ID_NB_TERMINALS_1DAY_WINDOW",
    "CUSTOMER_ID_NEW_TERMINAL_30DAY",
)

SOURCE = {
    "transaction_id": "id",
    "card": "card",
    "merchant": "merchant",
    "amount": "amount",
    "label": "label",
    "timestamp": "ts",
    "fields": {
        "channel": "categorical",
        "score": "numeric",
        "online": "boolean",
        "dob": "date",
        "home": {"type": "latlon", "lat": "hlat", "lon": "hlon"},
        "shop": {"type": "latlon", "lat": "slat", "lon": "slon"},
    },
}
NUMERIC_FIELDS = ("amount", "score")
COMPARED_FIELDS = ("merchant", "card", "channel", "score", "online")


# --------------------------------------------------------------------------- strategies


@st.composite
def feature_specs(draw, entities: list[str], label_delay: int) -> dict:
    kind = draw(st.sampled_from(KINDS))
    spec: dict = {"kind": kind}
    if kind not in TRANSACTION_KINDS and kind not in PAIR_KINDS:
        spec["entity"] = draw(st.sampled_from(entities))
        spec["window_days"] = draw(st.one_of(st.integers(1, 30), st.sampled_from([0.25, 1.5])))
        if kind in LABEL_KINDS:
            spec["delay_days"] = label_delay + draw(st.sampled_from([0, 0, 1, 3]))
        else:
            spec["delay_days"] = draw(st.sampled_from([0, 0, 0, 1, 2, 7]))
    if kind in ("sum", "mean", "std", "min", "max", "ratio", "zscore"):
        spec["field"] = draw(st.sampled_from(NUMERIC_FIELDS))
    elif kind in ("distinct", "novelty"):
        spec["field"] = draw(st.sampled_from(COMPARED_FIELDS))
    elif kind == "value":
        spec["field"] = draw(st.sampled_from(["amount", "score", "online"]))
    elif kind == "category":
        spec["field"] = draw(st.sampled_from(["channel", "online"]))
    elif kind == "distance":
        spec["field"], spec["other"] = "home", "shop"
    elif kind == "age":
        spec["field"] = "dob"
    elif kind == "night":
        spec["night_end_hour"] = draw(st.integers(0, 23))
    if kind == "since_previous":
        default = draw(st.sampled_from([None, 0, 30 * DAY]))
        if default is not None:
            spec["default"] = default
    return spec


@st.composite
def configs(draw, label_delays=(0, 1, 7), delayed_everywhere=False):
    """Random features over 2-3 entities; `delayed_everywhere` adds a delayed count to
    each entity, so that each keeps one label delay of slack for late arrivals."""
    label_delay = draw(st.sampled_from(label_delays))
    entities = {"card": "card", "merchant": "merchant"}
    if draw(st.booleans()):
        entities["channel"] = "channel"
    specs = draw(st.lists(feature_specs(list(entities), label_delay), min_size=1, max_size=8))
    if delayed_everywhere:
        specs += [
            {"kind": "count", "entity": e, "window_days": 1, "delay_days": 1} for e in entities
        ]
    for i, spec in enumerate(specs):
        spec["name"] = f"f{i}_{spec['kind']}"
    return parse(
        {
            "source": SOURCE,
            "labels": {"delay_days": label_delay},
            "entities": entities,
            "features": specs,
        }
    )


@st.composite
def records(draw, max_size=25):
    """Time-ordered normalised records: few keys, same-second ties, missing values."""
    n = draw(st.integers(1, max_size))
    steps = draw(
        st.lists(
            # Steps around a day put events on and next to the windows' bounds.
            st.sampled_from([0, 0, 1, 600, 3 * 3600, DAY - 1, DAY, DAY + 1, 5 * DAY, 9 * DAY]),
            min_size=n,
            max_size=n,
        )
    )
    times = START + np.cumsum(steps)
    out = []
    for i in range(n):
        out.append(
            {
                "transaction_id": draw(st.sampled_from([f"tx-{i}", f"{i:032x}" * 4])),
                "card": draw(st.sampled_from(["c1", "c2", "4" * 19])),
                "merchant": draw(st.sampled_from(["m1", "m2", "m3"])),
                "amount": draw(st.sampled_from([0.0, 1.0, 12.34, 12.34, 50.5, 99.99, 1e6])),
                "ts": int(times[i]),
                "label": draw(st.sampled_from([0, 0, 1, None])),
                "channel": draw(st.sampled_from(["web", "pos", None])),
                "score": draw(st.sampled_from([1.5, -2.0, 0.0, math.nan])),
                "online": draw(st.sampled_from([0.0, 1.0, math.nan])),
                "dob": draw(st.sampled_from([START - 30 * YEAR, START - 71 * YEAR, None])),
                "home.lat": draw(st.sampled_from([48.85, -33.9, math.nan])),
                "home.lon": 2.35,
                "shop.lat": 51.5,
                "shop.lon": draw(st.sampled_from([-0.12, 151.2])),
            }
        )
    return out


@st.composite
def stream_cases(draw):
    """A config, the records, and the stream's arrival sequence: each record, sometimes
    followed by a redelivery of a same-second record already observed."""
    config = draw(configs())
    rows = draw(records())
    sequence = []
    for i, row in enumerate(rows):
        sequence.append(row)
        if draw(st.integers(0, 4)) == 0:
            peers = [r for r in rows[: i + 1] if r["ts"] == row["ts"]]
            sequence.append(draw(st.sampled_from(peers)))
    corrections = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    return config, rows, sequence, corrections


def run_stream(config, sequence, corrections=None) -> list[dict]:
    """The stream's features for each record of `sequence`, labels delivered at their
    known_at (before any transaction at or after it), sometimes preceded by a wrong label
    that the right one replaces."""
    driver = Driver(StreamEngine(config))
    delay = config.label_delay_days * DAY
    firsts: list[dict] = []
    for record in sequence:
        if all(record["transaction_id"] != r["transaction_id"] for r in firsts):
            firsts.append(record)
    pending = sorted(
        ((r["ts"] + delay, n, r) for n, r in enumerate(firsts) if r["label"] is not None),
        key=lambda item: (item[0], item[1]),
    )
    out = []
    for record in sequence:
        while pending and pending[0][0] <= record["ts"]:
            known_at, n, labelled = pending.pop(0)
            if corrections and corrections[n % len(corrections)]:
                driver.label(labelled, not labelled["label"], known_at)
            driver.label(labelled, bool(labelled["label"]), known_at)
        out.append(driver.observe(record))
    return out

"""Pure data shaping of the analyst page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from aegis_app.core.config import load, resolve
from dashboard import shaping
from tests.dashboard.sample_data import decisions, metrics_text, models_body

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HANDBOOK = shaping.RecordNames.of(load(resolve(None)))
SPARKOV = shaping.RecordNames.of(load(CONFIGS / "sparkov.toml"))


def test_record_names_come_from_the_config():
    assert (HANDBOOK.transaction_id, HANDBOOK.card, HANDBOOK.merchant, HANDBOOK.amount) == (
        "TRANSACTION_ID",
        "CUSTOMER_ID",
        "TERMINAL_ID",
        "TX_AMOUNT",
    )
    assert HANDBOOK.timestamp == "TX_DATETIME" and HANDBOOK.fields == ()
    assert SPARKOV.card == "cc_num" and SPARKOV.merchant == "merchant" and SPARKOV.amount == "amt"
    assert SPARKOV.timestamp == "trans_date_trans_time"
    assert "category" in SPARKOV.fields and "home" in SPARKOV.fields
    assert SPARKOV.features[0] == "amount" and len(SPARKOV.features) == len(set(SPARKOV.features))
    # a config column named like one of the page's own titles keeps its role beside it
    clash = shaping.RecordNames(amount="Score")
    assert clash.queue_columns()[4] == "Score (amount)"
    assert len(set(clash.queue_columns())) == len(clash.queue_columns())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fraud", "fraud"),
        ("legitimate", "legitimate"),
        (1, "fraud"),
        (0, "legitimate"),
        (True, "fraud"),
        (None, None),
        (float("nan"), None),
        ("what", None),
    ],
)
def test_normalise_label(raw, expected):
    assert shaping.normalise_label(raw) == expected


def test_query_params_only_narrowing_filters():
    now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert shaping.query_params(["review", "block"], "All", (0.0, 1.0), "Any time", now) == {}
    params = shaping.query_params(["block"], "Open", (0.25, 0.9), "Last hour", now)
    assert params == {
        "action": "block",
        "status": "open",
        "min_score": 0.25,
        "max_score": 0.9,
        "since": "2026-11-24T19:00:00+00:00",
    }
    assert shaping.query_params([], "Labelled", (0.0, 1.0), "Any time")["status"] == "labelled"


def test_queue_frame_columns_and_values():
    rows = decisions(5)
    frame = shaping.queue_frame(rows, HANDBOOK)
    assert list(frame.columns) == [
        "TRANSACTION_ID",
        "Decided",
        "Action",
        "Score",
        "TX_AMOUNT",
        "CUSTOMER_ID",
        "Label",
        "Top reason",
    ]
    assert list(frame["TRANSACTION_ID"]) == [r["transaction_id"] for r in rows]
    assert list(frame["CUSTOMER_ID"]) == [r["card"] for r in rows]
    assert list(frame["TX_AMOUNT"]) == [r["amount"] for r in rows]
    assert frame["Action"].iloc[0] == rows[0]["action"]
    assert set(frame["Label"]) <= {"open", "fraud", "legitimate"}
    assert frame["Decided"].notna().all()
    assert shaping.queue_frame([], HANDBOOK).empty


def test_queue_frame_keeps_text_ids_as_text():
    rows = decisions(3, flavour="sparkov")
    frame = shaping.queue_frame(rows, SPARKOV)
    assert list(frame.columns)[0] == "trans_num" and "cc_num" in frame and "amt" in frame
    # card numbers and hex ids are shown as given, never as numbers
    assert list(frame["cc_num"]) == [r["card"] for r in rows]
    assert list(frame["trans_num"]) == [r["transaction_id"] for r in rows]


def test_alert_option_mentions_id_action_score_and_label():
    row = {
        "transaction_id": "17",
        "action": "block",
        "score": 0.9987,
        "amount": 12.5,
        "card": "5",
        "label": "fraud",
    }
    text = shaping.alert_option(row, HANDBOOK)
    assert text == "#17 · block · score 0.999 · 12.50 · CUSTOMER_ID 5 · labelled fraud"
    assert "cc_num 5" in shaping.alert_option(row, SPARKOV)


def test_parse_prometheus_and_throughput():
    samples = shaping.parse_prometheus(
        metrics_text(allow=100, review=7, block=3) + 'other{a="x y"} 2\n# comment\nbad line\n'
    )
    counts = shaping.throughput_counts(samples)
    assert counts == {"transactions": 110.0, "alerts": 10.0, "review": 7.0, "block": 3.0}
    assert shaping.metric_sum(samples, "other", a="x y") == 2.0


def test_rates_per_minute_and_counter_reset():
    history = [
        (0.0, {"transactions": 0, "alerts": 0}),
        (30.0, {"transactions": 300, "alerts": 3}),
        (60.0, {"transactions": 50, "alerts": 1}),  # API restarted: counters start over
    ]
    rates = shaping.rates_per_minute(history)
    tx = rates[rates["Series"] == "transactions"]["Per minute"].tolist()
    assert tx == [600.0, 100.0]
    assert shaping.rates_per_minute(history[:1]).empty


def test_alerts_per_minute_counts_by_action():
    rows = [
        {"decided_at": "2026-11-24T20:00:05+00:00", "action": "review"},
        {"decided_at": "2026-11-24T20:00:55+00:00", "action": "review"},
        {"decided_at": "2026-11-24T20:01:10+00:00", "action": "block"},
        {"decided_at": None, "action": "block"},
    ]
    frame = shaping.alerts_per_minute(rows)
    assert frame["Alerts"].tolist() == [2, 1]
    assert frame["Minute"].iloc[0] == pd.Timestamp("2026-11-24T20:00:00Z")
    assert shaping.alerts_per_minute([]).empty


def test_precision_over_time():
    rows = [
        {"decided_at": "2026-11-24T20:00:00+00:00", "label": "fraud"},
        {"decided_at": "2026-11-24T20:00:30+00:00", "label": "legitimate"},
        {"decided_at": "2026-11-24T20:05:00+00:00", "label": "fraud"},
        {"decided_at": "2026-11-24T20:06:00+00:00", "label": None},
    ]
    frame = shaping.precision_over_time(rows)
    assert frame["Labelled"].tolist() == [2, 1]
    assert frame["Precision"].tolist() == [0.5, 1.0]
    assert frame["Cumulative precision"].tolist() == pytest.approx([0.5, 2 / 3])
    assert shaping.precision_over_time([{"label": None}]).empty
    assert shaping.labelled_summary(rows) == {"labelled": 3, "fraud": 2, "precision": 2 / 3}


def test_precision_buckets_widen_for_long_spans():
    rows = [
        {"decided_at": f"2026-11-{day:02d}T12:00:00+00:00", "label": "fraud"}
        for day in range(1, 29)
    ]
    frame = shaping.precision_over_time(rows)
    assert len(frame) <= 12 and frame["Labelled"].sum() == 28


def test_active_model_metrics_and_curve():
    body = models_body()
    active = shaping.active_model(body)
    assert active["version"] == body["active_version"]
    metrics = shaping.metrics_frame(active["holdout_metrics"])
    assert metrics["Metric"].tolist() == ["AUC ROC", "Average precision", "Card precision@100"]
    curve = shaping.pr_curve_frame(active["holdout_metrics"])
    assert list(curve.columns) == ["Recall", "Precision"] and len(curve) == 21
    assert shaping.pr_curve_frame({"auc_roc": 0.8}) is None
    assert shaping.active_model({"active_version": None, "versions": []}) is None
    nested = shaping.metrics_frame({"logistic_regression": {"auc_roc": 0.8}})
    assert nested["Metric"].tolist() == ["logistic_regression / AUC ROC"]


def test_find_pr_curve_png(tmp_path):
    folder = tmp_path / "versions" / "v1"
    folder.mkdir(parents=True)
    assert shaping.find_pr_curve_png(tmp_path, "v1") is None
    (folder / "calibration.png").write_bytes(b"x")
    (folder / "pr_curve.png").write_bytes(b"x")
    assert shaping.find_pr_curve_png(tmp_path, "v1").name == "pr_curve.png"
    (folder / "pr_thresholds.png").write_bytes(b"x")
    assert shaping.find_pr_curve_png(tmp_path, "v1").name == "pr_thresholds.png"
    assert shaping.find_pr_curve_png(tmp_path, "v2") is None
    assert shaping.find_pr_curve_png(None, "v1") is None


def test_detail_frames():
    row = decisions(1)[0]
    scores = shaping.scores_frame(row["scores"])
    assert set(scores["Model"]) == set(row["scores"])
    # features by their configured names, in the config's order
    feats = shaping.features_frame(row["features"], HANDBOOK.features)
    order = [n for n in HANDBOOK.features if n in row["features"]]
    assert feats["Feature"].tolist() == order and order[0] == "TX_AMOUNT"
    extra = shaping.features_frame({"zzz": 1.0, "TX_HOUR": 3.0}, HANDBOOK.features)
    assert extra["Feature"].tolist() == ["TX_HOUR", "zzz"]
    recent = shaping.recent_frame([row], HANDBOOK)
    assert list(recent.columns) == [
        "TRANSACTION_ID",
        "TX_DATETIME",
        "TERMINAL_ID",
        "TX_AMOUNT",
        "Action",
        "Score",
        "Label",
    ]
    assert recent["TRANSACTION_ID"].tolist() == [row["transaction_id"]]
    assert recent["TERMINAL_ID"].tolist() == [row["merchant"]]
    assert shaping.recent_frame(None, HANDBOOK).empty


def test_fields_frame():
    row = decisions(1, flavour="sparkov")[0]
    frame = shaping.fields_frame({**row["fields"], "gender": None})
    assert dict(zip(frame["Field"], frame["Value"])) == {
        "category": row["fields"]["category"],
        "city_pop": "3,495",
        "gender": "—",
    }
    assert shaping.fields_frame({}).empty

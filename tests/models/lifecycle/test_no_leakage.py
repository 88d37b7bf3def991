"""`aegis evaluate` cannot see the future: removing every label dated on or after the first
test day leaves every test-window score unchanged."""

from __future__ import annotations

import pandas as pd
import pytest

from aegis_app.harness import simulator
from models.lifecycle.evaluation import Split, without_labels_from
from models.lifecycle.experiment import evaluate


@pytest.fixture(scope="module")
def frame():
    return simulator.generate(customers=600, terminals=1200, days=75, seed=11)


def test_scores_do_not_change_without_future_labels(frame, tmp_path):
    split = Split(pd.Timestamp("2018-05-20"))  # train 05-20..26, delay, test 06-03..09
    evaluate(frame, split, scores_out=tmp_path / "all.csv")
    evaluate(without_labels_from(frame, split.test_start), split, scores_out=tmp_path / "blind.csv")
    with_labels = pd.read_csv(tmp_path / "all.csv")
    blind = pd.read_csv(tmp_path / "blind.csv")
    assert len(with_labels) > 1000
    assert set(with_labels.columns) >= {"TRANSACTION_ID", "ensemble"}
    pd.testing.assert_frame_equal(with_labels, blind, check_exact=True)


def test_training_labels_do_matter(frame, tmp_path):
    """The check above could pass vacuously if labels were ignored altogether."""
    split = Split(pd.Timestamp("2018-05-20"))
    evaluate(frame, split, scores_out=tmp_path / "all.csv")
    evaluate(
        without_labels_from(frame, split.train_start + pd.Timedelta(days=3)),
        split,
        scores_out=tmp_path / "fewer.csv",
    )
    with_labels = pd.read_csv(tmp_path / "all.csv")
    fewer = pd.read_csv(tmp_path / "fewer.csv")
    assert not with_labels["ensemble"].equals(fewer["ensemble"])

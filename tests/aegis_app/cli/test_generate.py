"""`aegis generate --out FILE` writes the file's config beside it, and the two agree."""

from __future__ import annotations

import json

import pandas as pd

from aegis_app.cli.main import main
from aegis_app.core.config import load, resolve
from aegis_app.core.source import SourceReader


def test_generate_writes_a_matching_config(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AEGIS_CONFIG", raising=False)
    out = tmp_path / "tx.csv"
    args = ["generate", "--customers", "30", "--terminals", "60", "--days", "4", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    config = load(summary["config"])
    assert summary["config"] == str(tmp_path / "tx.config.toml")
    assert config.feature_names == load(resolve(None)).feature_names
    assert len(config.feature_names) == 21
    reader = SourceReader(config)
    good, bad = reader.frame(pd.read_csv(out, dtype=reader.csv_dtypes()))
    assert bad == [] and len(good) == summary["transactions"] > 0


def test_a_file_too_short_to_train_on_says_how_many_days_it_needs(tmp_path, capsys):
    out = tmp_path / "short.csv"
    args = ["generate", "--customers", "30", "--terminals", "60", "--days", "3", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(out), "--model-dir", str(tmp_path / "m"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the file holds 3 day(s)" in err and "needs at least 14" in err
    split = ["--train-start", "2018-04-01", "--quiet"]
    assert main(["evaluate", "--data", str(out), *split]) == 2
    assert "the split needs transactions from 2018-04-01 to 2018-04-21" in capsys.readouterr().err

"""`--config FILE` (or AEGIS_CONFIG) on every command: checked before the command runs,
and handed on to everything the command starts."""

from __future__ import annotations

import os

from aegis_app.cli.commands import models as models_command
from aegis_app.cli.main import build_parser, leaf_parsers, main


def test_every_command_takes_config():
    leaves = dict(leaf_parsers(build_parser()))
    assert ("worker",) in leaves and ("evaluate",) in leaves
    without = [
        " ".join(path) for path, p in leaves.items() if "--config" not in p._option_string_actions
    ]
    assert without == []


def test_a_broken_config_stops_the_command_with_the_key_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AEGIS_CONFIG", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('[source]\ntransaction_id = "id"\n')
    assert main(["models", "--config", str(bad), "--model-dir", str(tmp_path)]) == 2
    assert "source.card: missing" in capsys.readouterr().err


def test_the_checked_config_reaches_the_command_and_the_caller_keeps_its_own(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("AEGIS_CONFIG", raising=False)
    seen = []
    monkeypatch.setattr(
        models_command, "run_list", lambda args: seen.append(os.environ["AEGIS_CONFIG"]) or 0
    )
    assert main(["models", "--model-dir", str(tmp_path)]) == 0
    assert seen and seen[0].endswith("configs/handbook.toml")
    assert "AEGIS_CONFIG" not in os.environ  # restored: the caller had none
    monkeypatch.setenv("AEGIS_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["models", "--model-dir", str(tmp_path)]) == 2
    assert "cannot read the config file" in capsys.readouterr().err

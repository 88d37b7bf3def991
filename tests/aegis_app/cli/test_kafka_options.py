"""The TLS / SASL options on every command that talks to a Kafka cluster: no password
option, a bad setting named before anything connects, and a refused login named without
the password anywhere in the command's output or logs."""

from __future__ import annotations

import logging

import pytest

from aegis_app.cli.kafka_options import FIELDS
from aegis_app.cli.main import build_parser, leaf_parsers, main
from tests.aegis_app.kafka.fake_sasl_broker import FakeSaslBroker

PASSWORD = "n0t-in-any-output-7f3a"


def test_every_command_with_a_broker_takes_the_tls_and_sasl_options():
    leaves = dict(leaf_parsers(build_parser()))
    with_broker = {p for p, parser in leaves.items() if "--broker" in parser._option_string_actions}
    assert {("worker",), ("replay",), ("api",), ("sink",), ("promote",), ("bench",)} <= with_broker
    options = {"--" + field.replace("_", "-") for field in FIELDS}
    missing = {
        " ".join(path): sorted(options - leaves[path]._option_string_actions.keys())
        for path in with_broker
    }
    assert {name: gone for name, gone in missing.items() if gone} == {}
    for parser in leaves.values():
        assert "--kafka-sasl-password" not in parser._option_string_actions  # `ps` shows it


def test_a_missing_ca_file_stops_the_command_naming_the_setting(tmp_path, capsys):
    data = tmp_path / "tx.csv"
    data.write_text("TRANSACTION_ID\n")
    code = main(
        [
            "replay",
            str(data),
            "--broker",
            "kafka://127.0.0.1:1",
            "--kafka-security-protocol",
            "ssl",
            "--kafka-ssl-cafile",
            str(tmp_path / "missing-ca.pem"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "aegis replay: error: AEGIS_KAFKA_SSL_CAFILE / --kafka-ssl-cafile:" in err
    assert "missing-ca.pem does not exist" in err


def test_a_refused_login_is_named_and_the_password_is_nowhere(tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    data = tmp_path / "tx.csv"
    data.write_text(
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT\n"
        "1,2018-04-01 00:00:01,1,1,10.0\n"
    )
    with FakeSaslBroker("alice", "the-real-one", ("PLAIN",)) as broker:
        code = main(
            [
                "replay",
                str(data),
                "--quiet",
                "--broker",
                f"kafka://{broker.bootstrap}",
                "--kafka-security-protocol",
                "SASL_PLAINTEXT",
                "--kafka-sasl-username",
                "alice",
                "--kafka-sasl-password-file",
                str(password_file),
            ]
        )
        assert broker.logins and broker.logins[0] == ("PLAIN", "alice", False)
    out, err = capsys.readouterr()
    assert code == 1
    assert "aegis replay: error: the Kafka broker at" in err
    assert "refused the SASL login of user 'alice' (PLAIN)" in err
    assert "SaslAuthenticateRequest(<redacted>)" in caplog.text  # DEBUG was on
    assert PASSWORD not in out + err + caplog.text


@pytest.mark.parametrize("command", [["sink"], ["promote", "v1"]])
def test_the_options_reach_the_settings(command, tmp_path, capsys):
    code = main(
        [
            *command,
            "--kafka-security-protocol",
            "SASL_SSL",
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-512",
            "--kafka-sasl-username",
            "alice",
            "--kafka-sasl-password-file",
            str(tmp_path / "no-such-password"),
        ]
    )
    assert code == 2  # the file named by the option was read (and is missing)
    assert "--kafka-sasl-password-file: cannot read" in capsys.readouterr().err

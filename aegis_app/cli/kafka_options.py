"""The TLS and SASL command-line options, shared by every `aegis` command that talks to Kafka.

Each option overrides its AEGIS_* variable (the Settings field of the same name). There is
no option for the password: a command line shows in `ps` and in shell history, so it comes
from AEGIS_KAFKA_SASL_PASSWORD or a file (--kafka-sasl-password-file, e.g. a Docker secret).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aegis_app.core.settings import KAFKA_SECURITY_FIELDS
from aegis_app.kafka.security import MECHANISMS, PROTOCOLS

# Settings fields that have an option here (the option is --<field with dashes>).
FIELDS = KAFKA_SECURITY_FIELDS


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    """Add the TLS / SASL options to a command's parser (as one group in its --help)."""
    group = parser.add_argument_group(
        "Kafka TLS and SASL",
        "how to reach a cluster that requires them (README: Connecting to your cluster); "
        "the password only from AEGIS_KAFKA_SASL_PASSWORD or a file, never on the command line",
    )
    group.add_argument(
        "--kafka-security-protocol",
        type=str.upper,
        choices=PROTOCOLS,
        help="PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL (AEGIS_KAFKA_SECURITY_PROTOCOL)",
    )
    group.add_argument(
        "--kafka-sasl-mechanism",
        type=str.upper,
        choices=MECHANISMS,
        help="PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512 (AEGIS_KAFKA_SASL_MECHANISM)",
    )
    group.add_argument(
        "--kafka-sasl-username", metavar="USER", help="SASL user (AEGIS_KAFKA_SASL_USERNAME)"
    )
    group.add_argument(
        "--kafka-sasl-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the SASL password (AEGIS_KAFKA_SASL_PASSWORD_FILE; "
        "AEGIS_KAFKA_SASL_PASSWORD, if set, wins)",
    )
    group.add_argument(
        "--kafka-ssl-cafile",
        type=Path,
        metavar="PEM",
        help="CA certificate(s) the brokers' certificates must chain to "
        "(AEGIS_KAFKA_SSL_CAFILE; default: the system's CAs)",
    )
    group.add_argument(
        "--kafka-ssl-certfile",
        type=Path,
        metavar="PEM",
        help="client certificate for mutual TLS (AEGIS_KAFKA_SSL_CERTFILE)",
    )
    group.add_argument(
        "--kafka-ssl-keyfile",
        type=Path,
        metavar="PEM",
        help="client private key for mutual TLS (AEGIS_KAFKA_SSL_KEYFILE)",
    )


def kafka_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The Settings overrides the options give (None: not given, the variable holds);
    empty for a command without these options."""
    return {name: getattr(args, name, None) for name in FIELDS}

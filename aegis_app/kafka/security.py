"""TLS and SASL for Kafka clients: the accepted values, the TLS context, a password that
does not print, and the translation of a refused login or an untrusted certificate into
one clear error.

aiokafka reports these badly: a client's ``start()`` logs the cause and raises a bare
``KafkaConnectionError("Unable to bootstrap from [...]")``, and a SCRAM login the broker
refuses ends in ``KeyError: 'v'`` (aiokafka reads the server signature the refusal lacks).
:func:`explain` names the cause instead, and :func:`diagnose` opens one connection to find
it when all aiokafka said was "unable to bootstrap". Neither is worth retrying: a wrong
password or an untrusted certificate stays wrong, so callers fail at once
(:class:`KafkaSecurityError`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aegis_app.kafka.clients import KafkaConnection

PLAINTEXT = "PLAINTEXT"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_MECHANISM = "PLAIN"
# How long the connection that looks for the cause of a failed start may take.
DIAGNOSE_TIMEOUT_S = 5.0
_MASK = "********"


def setting_names(field: str) -> str:
    """'AEGIS_KAFKA_SSL_CAFILE / --kafka-ssl-cafile' for a Settings field (the password has
    no command-line option: it would show in `ps`)."""
    env = f"AEGIS_{field.upper()}"
    if field == "kafka_sasl_password":
        return f"{env} (or AEGIS_KAFKA_SASL_PASSWORD_FILE / --kafka-sasl-password-file)"
    return f"{env} / --{field.replace('_', '-')}"


class KafkaSettingsError(ValueError):
    """A TLS or SASL setting is unusable; found before any connection is tried."""


class KafkaSecurityError(RuntimeError):
    """The cluster refused this client's credentials or certificate, or the client does not
    trust the cluster's certificate: retrying will not help."""


class Secret(str):
    """A password: a ``str`` for the Kafka client, ``********`` wherever it is printed,
    formatted or logged. :meth:`reveal` gives the plain text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(_MASK)

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return format(_MASK, spec)

    def reveal(self) -> str:
        return str.__str__(self)


def ssl_context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """A client TLS context: the broker's certificate checked against `cafile` (the system's
    CAs without one) and its host name checked; `certfile`/`keyfile` for mutual TLS."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSettingsError(
            f"{setting_names('kafka_ssl_cafile')}: {cafile} holds no usable PEM CA "
            f"certificate ({exc})"
        ) from None
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSettingsError(
                f"{setting_names('kafka_ssl_certfile')} / {setting_names('kafka_ssl_keyfile')}:"
                f" cannot load the client certificate {certfile} with key "
                f"{keyfile or '(in the certificate file)'} ({exc})"
            ) from None
    return context


# --------------------------------------------------------------------------- log redaction


class SaslRequestRedaction(logging.Filter):
    """aiokafka logs every request it sends at DEBUG, SASL PLAIN's password included
    (``SaslAuthenticateRequest(sasl_auth_bytes=b'user\\x00user\\x00password')``): such a
    record keeps its line, without the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_sasl_request(a) for a in record.args):
            record.args = tuple(
                "SaslAuthenticateRequest(<redacted>)" if _is_sasl_request(a) else a
                for a in record.args
            )
        return True


def _is_sasl_request(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticateRequest")


def redact_sasl_in_logs() -> None:
    """Install :class:`SaslRequestRedaction` on aiokafka's connection logger (once)."""
    logger = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, SaslRequestRedaction) for f in logger.filters):
        logger.addFilter(SaslRequestRedaction())


# --------------------------------------------------------------------------- explaining


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _in_scram_client(exc: BaseException) -> bool:
    """Was `exc` raised by aiokafka's SCRAM client (aiokafka.conn.ScramAuthenticator)?"""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_globals.get(
            "__name__"
        ) == "aiokafka.conn" and frame.f_code.co_qualname.startswith("ScramAuthenticator."):
            return True
    return False


def _who(connection: KafkaConnection) -> str:
    return f"user {connection.sasl_username!r} ({connection.sasl_mechanism})"


def _explain_one(exc: BaseException, connection: KafkaConnection) -> str | None:
    from aiokafka import errors as kafka_errors  # here: the command line starts without it

    server = connection.bootstrap_servers[0]
    if isinstance(exc, ssl.SSLCertVerificationError):
        ca = connection.ssl_cafile or "the system's CAs"
        return (
            f"the TLS certificate of the Kafka broker at {server} is not trusted: "
            f"{exc.verify_message or exc}. Checked against {ca}; give the CA that signed the "
            f"broker's certificate with {setting_names('kafka_ssl_cafile')}"
        )
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        reason = exc.reason or str(exc)
        if reason in {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"}:
            return (
                f"no TLS at {server} ({reason}): is it a plaintext listener? "
                f"({setting_names('kafka_security_protocol')} is {connection.security_protocol})"
            )
        return (
            f"the TLS handshake with the Kafka broker at {server} failed: {reason} (client "
            f"certificate: {connection.ssl_certfile or 'none'}, "
            f"{setting_names('kafka_ssl_certfile')})"
        )
    if isinstance(
        exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError
    ):
        said = f": {exc.args[0]}" if exc.args and isinstance(exc.args[0], str) else ""
        return (
            f"the Kafka broker at {server} refused the SASL login of {_who(connection)}"
            f"{said}. Check {setting_names('kafka_sasl_username')} and "
            f"{setting_names('kafka_sasl_password')}"
        )
    if isinstance(
        exc,
        kafka_errors.UnsupportedSaslMechanismError | kafka_errors.AuthenticationMethodNotSupported,
    ):
        said = f" ({exc.args[0]})" if exc.args and isinstance(exc.args[0], str) else ""
        return (
            f"the Kafka broker at {server} does not accept SASL mechanism "
            f"{connection.sasl_mechanism} on this listener{said}; set "
            f"{setting_names('kafka_sasl_mechanism')} to one it accepts, or check that the "
            f"listener has SASL enabled"
        )
    if isinstance(exc, kafka_errors.IllegalSaslStateError):
        return f"the SASL exchange with the Kafka broker at {server} failed: {exc}"
    if isinstance(exc, KeyError | ValueError) and _in_scram_client(exc):
        if isinstance(exc, KeyError):
            detail = "its final SCRAM message carries an error instead of a server signature"
        else:
            detail = str(exc)
        return (
            f"the Kafka broker at {server} refused the SASL login of {_who(connection)}: "
            f"wrong user name or password ({detail}). Check "
            f"{setting_names('kafka_sasl_username')} and {setting_names('kafka_sasl_password')}"
        )
    return None


def explain(exc: BaseException, connection: KafkaConnection) -> KafkaSecurityError | None:
    """A :class:`KafkaSecurityError` naming the cause if `exc` (or what caused it) is a TLS
    or SASL refusal; None for anything else (an unreachable broker may come back)."""
    if isinstance(exc, KafkaSecurityError):
        return exc
    if connection.security_protocol == PLAINTEXT:
        return None
    for link in _chain(exc):
        message = _explain_one(link, connection)
        if message is not None:
            return KafkaSecurityError(message)
    return None


async def diagnose(
    connection: KafkaConnection, timeout: float = DIAGNOSE_TIMEOUT_S
) -> KafkaSecurityError | None:
    """Open one connection to the first bootstrap server (TLS handshake, ApiVersions, SASL
    login) and explain why it failed; None if it worked or failed for another reason."""
    from aiokafka.conn import create_conn

    if connection.security_protocol == PLAINTEXT:
        return None
    host, port = connection.first_server
    options: dict[str, Any] = dict(connection.client_kwargs())
    del options["bootstrap_servers"]
    try:
        conn = await asyncio.wait_for(
            create_conn(host, port, request_timeout_ms=int(timeout * 1000), **options), timeout
        )
    except Exception as exc:  # noqa: BLE001 - aiokafka raises OSError, KafkaError, KeyError...
        return explain(exc, connection)
    conn.close()
    return None

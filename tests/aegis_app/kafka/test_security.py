"""TLS and SASL at the client level: settings to connection to aiokafka's keyword arguments
(and Faust's credentials), a clear error for each bad setting before any connection, the
password never printed or logged, and a refused login or an untrusted certificate turned
into one error naming the cause, at once. The servers here are on 127.0.0.1: a minimal
SASL listener (tests/aegis_app/kafka/fake_sasl_broker.py) and a TLS socket; the real
broker behind TLS, and Tansu's SCRAM refusal, are in tests/integration/test_kafka_tls.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from aegis_app.core.settings import Settings
from aegis_app.kafka import admin, clients, security
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.kafka.security import KafkaSecurityError, KafkaSettingsError, Secret
from tests.aegis_app.kafka.fake_sasl_broker import FakeSaslBroker
from tests.aegis_app.kafka.tls_material import make_tls_files

PASSWORD = "Tr0ub4dor-and-3"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("other-tls"), label="someone-else")


def sasl(broker: str, mechanism: str, password: str = PASSWORD, **extra) -> KafkaConnection:
    return KafkaConnection(
        (broker,),
        security_protocol=extra.pop("security_protocol", "SASL_PLAINTEXT"),
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password=password,
        **extra,
    )


# --------------------------------------------------------------------------- settings


def test_the_security_settings_come_from_aegis_variables(monkeypatch, tls, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("from-the-file\n")
    monkeypatch.setenv("AEGIS_KAFKA_BROKER", "kafka://127.0.0.1:9093")
    monkeypatch.setenv("AEGIS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("AEGIS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("AEGIS_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("AEGIS_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("AEGIS_KAFKA_SSL_CAFILE", str(tls.ca))
    connection = KafkaConnection.from_settings(Settings.from_env())
    assert connection.security_protocol == "SASL_SSL"
    assert connection.sasl_password.reveal() == "from-the-file"  # the newline dropped
    kwargs = connection.client_kwargs()
    assert kwargs["bootstrap_servers"] == ["127.0.0.1:9093"]
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "alice"
    assert kwargs["sasl_plain_password"].encode() == b"from-the-file"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # A password given directly wins over the file.
    monkeypatch.setenv("AEGIS_KAFKA_SASL_PASSWORD", "given-directly")
    direct = KafkaConnection.from_settings(Settings.from_env())
    assert direct.sasl_password.reveal() == "given-directly"


def test_plaintext_gives_aiokafka_nothing_but_the_servers():
    connection = KafkaConnection.from_settings(Settings(kafka_broker="kafka://h:1"))
    assert connection.client_kwargs() == {"bootstrap_servers": ["h:1"]}
    assert connection.security_summary() == ""


def test_ssl_alone_sends_no_sasl_options(tls):
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=tls.ca,
        kafka_sasl_username="ignored",  # SASL settings mean nothing without SASL
    )
    kwargs = KafkaConnection.from_settings(settings).client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    assert "sasl_plain_username" not in kwargs and "sasl_mechanism" not in kwargs


@pytest.mark.parametrize(
    ("changes", "named", "says"),
    [
        ({"kafka_security_protocol": "TLS"}, "--kafka-security-protocol", "unknown"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"},
            "AEGIS_KAFKA_SASL_MECHANISM / --kafka-sasl-mechanism",
            "SCRAM-SHA-512",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": "x"},
            "AEGIS_KAFKA_SASL_USERNAME / --kafka-sasl-username",
            "needs a SASL user name",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "alice"},
            "AEGIS_KAFKA_SASL_PASSWORD_FILE / --kafka-sasl-password-file",
            "needs the password",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_username": "alice",
                "kafka_sasl_password_file": Path("/nonexistent/password"),
            },
            "AEGIS_KAFKA_SASL_PASSWORD_FILE / --kafka-sasl-password-file",
            "cannot read /nonexistent/password",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path("/nonexistent/ca.pem")},
            "AEGIS_KAFKA_SSL_CAFILE / --kafka-ssl-cafile",
            "/nonexistent/ca.pem does not exist",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": Path("/")},
            "AEGIS_KAFKA_SSL_CERTFILE / --kafka-ssl-certfile",
            "is not a file",
        ),
    ],
)
def test_a_bad_setting_is_named_before_any_connection(changes, named, says):
    with pytest.raises(KafkaSettingsError) as raised:
        KafkaConnection.from_settings(Settings(kafka_broker="kafka://127.0.0.1:1", **changes))
    assert named in str(raised.value) and says in str(raised.value)
    assert isinstance(raised.value, ValueError)  # `aegis` prints it as "error: ..." (exit 2)


def test_files_that_are_not_pem_are_named(tmp_path, tls):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(KafkaSettingsError, match="AEGIS_KAFKA_SSL_CAFILE.*holds no usable"):
        KafkaConnection(("h:1",), security_protocol="SSL", ssl_cafile=str(junk))
    with pytest.raises(KafkaSettingsError, match="AEGIS_KAFKA_SSL_CERTFILE.*cannot load"):
        KafkaConnection(
            ("h:1",), security_protocol="SSL", ssl_cafile=str(tls.ca), ssl_certfile=str(junk)
        )
    with pytest.raises(KafkaSettingsError, match="a client key needs its certificate"):
        KafkaConnection(("h:1",), security_protocol="SSL", ssl_keyfile=str(tls.key))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="alice",
        kafka_sasl_password_file=empty,
        kafka_ssl_cafile=tls.ca,
    )
    with pytest.raises(KafkaSettingsError, match="empty"):
        KafkaConnection.from_settings(settings)


def test_credentials_in_the_broker_url_are_refused_not_printed():
    with pytest.raises(ValueError, match="must not carry credentials") as raised:
        KafkaConnection.from_url("kafka://alice:hunter2@broker:9092")
    assert "hunter2" not in str(raised.value)


# --------------------------------------------------------------------------- secrets


def test_the_password_never_prints(tls, caplog):
    connection = sasl("127.0.0.1:1", "SCRAM-SHA-512", security_protocol="SASL_SSL",
                      ssl_cafile=str(tls.ca))  # fmt: skip
    settings = Settings(kafka_sasl_password=PASSWORD)
    kwargs = connection.client_kwargs()
    for text in (
        repr(connection),
        str(connection),
        connection.describe(),
        repr(settings),
        repr(kwargs),
        str(kwargs),
        f"{kwargs['sasl_plain_password']}",
    ):
        assert PASSWORD not in text
    logging.getLogger("aegis.test").warning("connecting with %s %r", kwargs, connection)
    assert "********" in caplog.text and PASSWORD not in caplog.text
    assert "SCRAM-SHA-512 as alice" in connection.describe()
    assert isinstance(kwargs["sasl_plain_password"], Secret)
    assert kwargs["sasl_plain_password"] == PASSWORD  # aiokafka gets the real one


# --------------------------------------------------------------------------- SASL logins


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_right_password_logs_in(mechanism):
    with FakeSaslBroker("alice", PASSWORD, (mechanism,)) as broker:
        refusal = asyncio.run(security.diagnose(sasl(broker.bootstrap, mechanism)))
        assert refusal is None
        assert broker.logins == [(mechanism, "alice", True)]


@pytest.mark.parametrize("refusal", ["kafka", "scram-error"])
def test_a_wrong_scram_password_is_named_at_once(refusal, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeSaslBroker("alice", "the-real-one", ("SCRAM-SHA-512",), refusal) as broker:
        connection = sasl(broker.bootstrap, "SCRAM-SHA-512")

        async def start() -> None:
            await clients.producer(connection).start()

        with pytest.raises(KafkaSecurityError) as raised:
            asyncio.run(start())
        assert broker.logins and not any(ok for _, _, ok in broker.logins)
    message = str(raised.value)
    assert f"the Kafka broker at {broker.bootstrap} refused the SASL login of user 'alice'" in (
        message
    )
    assert "AEGIS_KAFKA_SASL_PASSWORD" in message
    if refusal == "kafka":
        assert "Invalid username or password" in message  # the broker's own words
    else:
        assert "wrong user name or password" in message  # not a bare KeyError: 'v'
    assert PASSWORD not in message and PASSWORD not in caplog.text


def test_a_plain_password_is_not_in_aiokafka_debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeSaslBroker("alice", "another", ("PLAIN",)) as broker:
        refusal = asyncio.run(security.diagnose(sasl(broker.bootstrap, "PLAIN")))
    assert refusal is not None and "Invalid username or password" in str(refusal)
    assert "SaslAuthenticateRequest(<redacted>)" in caplog.text  # the request was logged...
    assert PASSWORD not in caplog.text  # ...without the password


def test_a_mechanism_the_broker_does_not_offer_is_named():
    with FakeSaslBroker("alice", PASSWORD, ("SCRAM-SHA-256",)) as broker:
        with pytest.raises(admin.BrokerSecurityError, match="does not accept SASL mechanism"):
            admin.wait_for_broker(sasl(broker.bootstrap, "SCRAM-SHA-512"), timeout=20)


def test_wait_for_broker_stops_at_a_refusal_instead_of_retrying():
    with FakeSaslBroker("alice", "the-real-one", ("SCRAM-SHA-256",)) as broker:
        connection = sasl(broker.bootstrap, "SCRAM-SHA-256")
        loop = asyncio.new_event_loop()
        try:
            started = loop.time()
            with pytest.raises(admin.BrokerSecurityError, match="refused the SASL login"):
                loop.run_until_complete(admin.wait_for_broker_async(connection, timeout=30))
            assert loop.time() - started < 5
        finally:
            loop.close()
        with pytest.raises(admin.BrokerSecurityError):
            admin.check_credentials(connection, timeout=5)


# --------------------------------------------------------------------------- TLS


class TlsListener:
    """A TLS socket on 127.0.0.1 that completes handshakes and says nothing."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)

    async def __aenter__(self) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()
            except (ConnectionError, ssl.SSLError):
                pass
            writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.context)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()


def test_an_untrusted_certificate_is_named_at_once(tls, other_tls):
    async def check() -> None:
        async with TlsListener(tls.cert, tls.key) as address:
            # Trusting the right CA the handshake completes (then this listener is silent).
            trusting = KafkaConnection((address,), security_protocol="SSL", ssl_cafile=str(tls.ca))
            assert await security.diagnose(trusting, timeout=1.0) is None
            stranger = KafkaConnection(
                (address,), security_protocol="SSL", ssl_cafile=str(other_tls.ca)
            )
            started = asyncio.get_running_loop().time()
            with pytest.raises(KafkaSecurityError) as raised:
                await clients.consumer(stranger, "t", group_id=None).start()
            assert asyncio.get_running_loop().time() - started < 5
            message = str(raised.value)
            assert f"the TLS certificate of the Kafka broker at {address} is not trusted" in (
                message
            )
            assert str(other_tls.ca) in message and "--kafka-ssl-cafile" in message
            failure = await admin.metadata_once(stranger, 5)
            assert isinstance(failure, KafkaSecurityError)

    asyncio.run(check())


def test_plaintext_failures_are_left_as_they_were():
    async def check() -> None:
        connection = KafkaConnection.from_url("127.0.0.1:1")
        assert security.explain(KeyError("v"), connection) is None
        assert await security.diagnose(connection) is None
        failure = await admin.metadata_once(connection, 1)
        assert isinstance(failure, ConnectionRefusedError)

    asyncio.run(check())


# --------------------------------------------------------------------------- Faust


def test_the_worker_app_gets_the_same_credentials(tls):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from aegis_app.worker.app import broker_credentials

    for connection in (
        KafkaConnection(("h:1",), security_protocol="SSL", ssl_cafile=str(tls.ca)),
        sasl("h:1", "SCRAM-SHA-256"),
        sasl("h:1", "SCRAM-SHA-512", security_protocol="SASL_SSL", ssl_cafile=str(tls.ca)),
    ):
        ours = connection.client_kwargs()
        del ours["bootstrap_servers"]
        theirs = credentials_to_aiokafka_auth(broker_credentials(connection))
        assert {k: v for k, v in theirs.items() if v is not None} == ours
        assert PASSWORD not in repr(broker_credentials(connection))
    assert broker_credentials(KafkaConnection(("h:1",))) is None


def test_the_worker_app_is_built_with_them(tmp_path):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from aegis_app.worker.app import create_app

    settings = Settings(
        data_dir=tmp_path / "state",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="alice",
        kafka_sasl_password=PASSWORD,
    )
    app = create_app(settings)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "alice" and auth["sasl_plain_password"] == PASSWORD
    with pytest.raises(KafkaSettingsError, match="needs the password"):
        create_app(settings.with_(kafka_sasl_password=""))

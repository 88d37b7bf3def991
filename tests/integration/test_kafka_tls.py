"""TLS and SASL against a real broker.

TLS: the embedded broker (Tansu 0.6.0, which does not complete a TLS handshake itself)
behind stunnel, a TLS-terminating proxy, with the broker advertising the proxy's address,
so every connection a client makes goes through TLS. A throw-away CA signs the proxy's
certificate. Between stunnel and the broker sits the tests' SASL-terminating proxy
(tests/aegis_app/kafka/fake_sasl_broker.py: it checks SCRAM logins itself and passes the
other requests to the broker; a client may also skip the login there). Through it:
a real `aegis worker` on SASL_SSL with SCRAM-SHA-512 (settings from AEGIS_* variables;
every connection of its Faust consumer and producer logs in), `aegis replay` on SSL and
`aegis api` on SASL_SSL (both from command-line options, the API's password from a file).
Decisions arrive, the API publishes and its sink stores them. A client trusting another CA,
and one with a wrong password, fail at once, naming the cause.

SASL on the broker itself: Tansu with --authentication runs a real SCRAM exchange, but a
user can only be created over a connection that has already logged in, and its storage
does not keep users across restarts, so no login can succeed there. What is tested
against it is the refusal: `aegis replay` and `aegis worker` with SCRAM credentials the
broker does not know fail at once, the cause named, the password nowhere in their output.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from aegis_app.core import files
from aegis_app.core.config import load, resolve
from aegis_app.core.settings import DECISIONS_TOPIC
from aegis_app.harness import simulator
from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port, tansu_binary
from aegis_app.harness.request_bodies import request_bodies
from aegis_app.harness.stack import (
    ManagedProcess,
    aegis_command,
    read_topic_async,
    start_worker,
    wait_http_ok,
)
from aegis_app.kafka import admin
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.serving.store import Store
from models.lifecycle.experiment import train
from models.lifecycle.training import default_train_window
from tests.aegis_app.kafka.fake_sasl_broker import FakeSaslBroker
from tests.aegis_app.kafka.tls_material import make_tls_files

pytestmark = pytest.mark.integration

TOKEN = "tls-integration-token"
PASSWORD = "Sup3r-s3cret-kafka-pw"
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")


def _wait_tcp(port: int, timeout: float, process: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}\n{process.log_tail()}")


def start_tls_proxy(root: Path, tls_port: int, mtls_port: int, broker_port: int, tls):
    """stunnel on 127.0.0.1: TLS outside, plaintext Kafka (`broker_port`) inside; on
    `mtls_port` it also requires a client certificate signed by the CA (mutual TLS)."""
    service = f"connect = 127.0.0.1:{broker_port}\ncert = {tls.cert}\nkey = {tls.key}\n"
    config = root / "stunnel.conf"
    config.write_text(
        "foreground = yes\n"
        "pid =\n"
        f"[kafka]\naccept = 127.0.0.1:{tls_port}\n{service}"
        f"[kafka-mtls]\naccept = 127.0.0.1:{mtls_port}\n{service}"
        f"CAfile = {tls.ca}\nverifyChain = yes\nrequireCert = yes\n"
    )
    proxy = ManagedProcess("stunnel", [STUNNEL, str(config)], root / "stunnel.log").start()
    _wait_tcp(tls_port, 15, proxy)
    _wait_tcp(mtls_port, 15, proxy)
    return proxy


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    if STUNNEL is None:
        pytest.fail("stunnel is not installed (apt-get install stunnel4; .ci/run does it)")
    root = tmp_path_factory.mktemp("kafka-tls")
    tls = make_tls_files(root / "tls")
    other_ca = make_tls_files(root / "other", label="someone-else").ca
    frame = simulator.generate(customers=40, terminals=80, days=30, seed=11)
    data_file = root / "tx.csv"
    files.write_transactions(frame, data_file)
    window = default_train_window(frame["TX_DATETIME"], 7, 7)
    train(frame, root / "models", window, delay_days=7)

    password_file = root / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    broker_port, tls_port, mtls_port = free_port(), free_port(), free_port()
    broker = EmbeddedBroker(
        port=broker_port, log_path=root / "broker.log", advertised=f"127.0.0.1:{tls_port}"
    )
    sasl = FakeSaslBroker(
        "alice", PASSWORD, ("SCRAM-SHA-512",), upstream=("127.0.0.1", broker_port)
    )
    procs: list[ManagedProcess] = []
    try:
        broker.start()
        sasl.__enter__()
        procs.append(start_tls_proxy(root, tls_port, mtls_port, sasl.port, tls))
        url = f"kafka://127.0.0.1:{tls_port}"
        web_port = free_port()
        worker = start_worker(
            url,
            root / "state",
            web_port,
            root / "models",
            root / "worker.log",
            env={
                "AEGIS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "AEGIS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "AEGIS_KAFKA_SASL_USERNAME": "alice",
                "AEGIS_KAFKA_SASL_PASSWORD": PASSWORD,
                "AEGIS_KAFKA_SSL_CAFILE": str(tls.ca),
                "AEGIS_MODEL_DIR": str(root / "models"),
            },
        )
        procs.append(worker)
        wait_http_ok(f"http://127.0.0.1:{web_port}/health/", 120, worker)
        yield {
            "root": root,
            "url": url,
            "ca": tls.ca,
            "tls": tls,
            "mtls_port": mtls_port,
            "other_ca": other_ca,
            "password_file": password_file,
            "sasl": sasl,
            "file": data_file,
            "frame": frame,
            "worker": worker,
            "web_port": web_port,
            "procs": procs,
        }
    finally:
        for proc in reversed(procs):
            proc.stop()
        if sasl.port:
            sasl.__exit__(None, None, None)
        broker.stop()


def _tls_options(ca: Path) -> list[str]:
    return ["--kafka-security-protocol", "SSL", "--kafka-ssl-cafile", str(ca)]


def _sasl_ssl_options(ca: Path, password_file: Path) -> list[str]:
    return [
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-ssl-cafile",
        str(ca),
        "--kafka-sasl-mechanism",
        "SCRAM-SHA-512",
        "--kafka-sasl-username",
        "alice",
        "--kafka-sasl-password-file",
        str(password_file),
    ]


def test_worker_replay_and_api_work_over_tls_and_sasl(tls_stack):
    root, url, ca = tls_stack["root"], tls_stack["url"], tls_stack["ca"]
    frame = tls_stack["frame"]
    expected = len(frame)
    replayed = subprocess.run(
        [
            *aegis_command("replay", str(tls_stack["file"]), "--broker", url),
            *_tls_options(ca),
            "--no-labels",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["transactions_sent"] == expected

    # Read back over TLS too: the worker decided every transaction.
    connection = KafkaConnection(
        (f"127.0.0.1:{url.rsplit(':', 1)[1]}",), security_protocol="SSL", ssl_cafile=str(ca)
    )
    records = asyncio.run(
        read_topic_async(
            connection,
            DECISIONS_TOPIC,
            lambda recs: len({r.key for r in recs}) >= expected,
            timeout=90,
        )
    )
    decided = {json.loads(r.value)["transaction_id"] for r in records}
    assert len(decided) == expected, tls_stack["worker"].log_tail()
    # Every connection of the worker's Faust clients logged in with SCRAM-SHA-512.
    faust_connections = [
        ok for client, ok in tls_stack["sasl"].clients if client.startswith("faust")
    ]
    assert len(faust_connections) >= 2 and all(faust_connections)
    assert ("SCRAM-SHA-512", "alice", True) in tls_stack["sasl"].logins

    # The API (SASL_SSL from its command-line options, the password from a file): it
    # publishes a transaction, and its sink stores the decisions it reads.
    api_port = free_port()
    db_url = f"sqlite:///{root}/store/aegis.db"
    api = ManagedProcess(
        f"api:{api_port}",
        [
            *aegis_command(
                "api",
                "--broker",
                url,
                "--port",
                str(api_port),
                "--db-url",
                db_url,
                "--token",
                TOKEN,
                "--model-dir",
                str(root / "models"),
                "--worker-url",
                f"http://127.0.0.1:{tls_stack['web_port']}",
            ),
            *_sasl_ssl_options(ca, tls_stack["password_file"]),
        ],
        root / "api.log",
    ).start()
    tls_stack["procs"].append(api)
    wait_http_ok(f"http://127.0.0.1:{api_port}/readyz", 60, api)
    api_log = api.log_tail(400)
    assert "(SASL_SSL, SCRAM-SHA-512 as alice, CA " in api_log  # its broker line
    assert PASSWORD not in api_log
    [body] = request_bodies(frame.head(1), load(resolve(None)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"http://127.0.0.1:{api_port}/v1/transactions", json=body, headers=auth, timeout=30
    )
    assert response.status_code == 200, (response.text, api.log_tail())
    assert response.json()["published"] is True
    deadline = time.monotonic() + 90
    stored = 0
    while time.monotonic() < deadline:
        store = Store(db_url, migrate=False)
        try:
            stored = store.count_decisions()
        finally:
            store.close()
        if stored >= expected:
            break
        time.sleep(1.0)
    assert stored == expected, api.log_tail()
    assert tls_stack["worker"].alive and api.alive
    assert not [login for login in tls_stack["sasl"].logins if not login[2]]
    worker_log = tls_stack["worker"].log_tail(5000)
    assert PASSWORD not in worker_log + api.log_tail(5000)


def test_a_client_that_does_not_trust_the_certificate_fails_at_once(tls_stack):
    started = time.monotonic()
    result = subprocess.run(
        [
            *aegis_command("replay", str(tls_stack["file"]), "--broker", tls_stack["url"]),
            *_tls_options(tls_stack["other_ca"]),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30  # not a retry until some timeout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("aegis replay: error: the TLS certificate of the Kafka broker")
    assert "not trusted" in error and "AEGIS_KAFKA_SSL_CAFILE" in error
    assert str(tls_stack["other_ca"]) in error
    assert "Traceback" not in result.stderr


def test_mutual_tls_presents_the_client_certificate(tls_stack):
    tls = tls_stack["tls"]
    address = (f"127.0.0.1:{tls_stack['mtls_port']}",)
    with_cert = KafkaConnection(
        address,
        security_protocol="SSL",
        ssl_cafile=str(tls.ca),
        ssl_certfile=str(tls.client_cert),
        ssl_keyfile=str(tls.client_key),
    )
    admin.wait_for_broker(with_cert, timeout=20)  # a Kafka round trip through mutual TLS
    without = KafkaConnection(address, security_protocol="SSL", ssl_cafile=str(tls.ca))
    started = time.monotonic()
    with pytest.raises(admin.BrokerSecurityError) as raised:
        admin.wait_for_broker(without, timeout=20)
    assert time.monotonic() - started < 10
    assert "TLS handshake with the Kafka broker" in str(raised.value)
    assert "CERTIFICATE_REQUIRED" in str(raised.value)
    assert "--kafka-ssl-certfile" in str(raised.value)


def test_a_wrong_password_fails_at_once_naming_the_cause(tls_stack, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-" + PASSWORD)
    started = time.monotonic()
    result = subprocess.run(
        [
            *aegis_command("replay", str(tls_stack["file"]), "--broker", tls_stack["url"]),
            *_sasl_ssl_options(tls_stack["ca"], wrong),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 30
    error = result.stderr.strip().splitlines()[-1]
    assert "refused the SASL login of user 'alice' (SCRAM-SHA-512)" in error
    assert "Invalid username or password" in error  # the broker's own words
    assert PASSWORD not in result.stdout + result.stderr
    assert ("SCRAM-SHA-512", "alice", False) in tls_stack["sasl"].logins


# --------------------------------------------------------------------------- SASL


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory):
    """Tansu requiring SASL (SCRAM), plaintext, on a free loopback port."""
    root = tmp_path_factory.mktemp("kafka-sasl")
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    broker = ManagedProcess(
        "tansu-sasl",
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
            "--authentication",
        ],
        root / "broker.log",
        env={"NO_COLOR": "1"},
    ).start()
    try:
        _wait_tcp(port, 15, broker)
        password_file = root / "kafka-password"
        password_file.write_text(PASSWORD + "\n")
        yield {"root": root, "url": f"kafka://127.0.0.1:{port}", "password_file": password_file}
    finally:
        broker.stop()


def _sasl_options(password_file: Path) -> list[str]:
    return [
        "--kafka-security-protocol",
        "SASL_PLAINTEXT",
        "--kafka-sasl-mechanism",
        "SCRAM-SHA-512",
        "--kafka-sasl-username",
        "alice",
        "--kafka-sasl-password-file",
        str(password_file),
    ]


def test_a_refused_scram_login_fails_at_once_naming_the_cause(scram_broker, tmp_path):
    data = tmp_path / "tx.csv"
    files.write_transactions(simulator.generate(customers=5, terminals=5, days=2, seed=1), data)
    started = time.monotonic()
    replayed = subprocess.run(
        [
            *aegis_command("replay", str(data), "--broker", scram_broker["url"]),
            *_sasl_options(scram_broker["password_file"]),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    worker = subprocess.run(
        [
            *aegis_command("worker", "--broker", scram_broker["url"]),
            "--data-dir",
            str(tmp_path / "state"),
            "--model-dir",
            str(tmp_path / "models"),
            "--web-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # The worker takes the same settings from the environment, the password directly.
        env={
            **os.environ,
            "AEGIS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "AEGIS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "AEGIS_KAFKA_SASL_USERNAME": "alice",
            "AEGIS_KAFKA_SASL_PASSWORD": PASSWORD,
        },
    )
    assert time.monotonic() - started < 90  # each gave up at once, not after retrying
    for name, result in (("replay", replayed), ("worker", worker)):
        assert result.returncode == 1, (name, result.stderr[-3000:])
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(f"aegis {name}: error: the Kafka broker at 127.0.0.1:"), error
        assert "refused the SASL login of user 'alice' (SCRAM-SHA-512)" in error
        assert "wrong user name or password" in error
        assert PASSWORD not in result.stdout + result.stderr
        assert "KeyError" not in result.stderr

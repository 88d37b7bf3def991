"""Ingest fixtures: a real moto server (Kinesis over HTTP) on a free loopback port, AWS
credentials for it in the environment, and result stores for the checkpoints."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from aegis_app.harness.kinesis_local import MOTO_ENV, MotoServer
from aegis_app.serving.store import Store

REGION = "us-east-1"
# The PostgreSQL that .ci/run starts (tests/aegis_app/serving/store/conftest.py uses it too).


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's credentials through the standard AWS chain (environment variables)."""
    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kinesis(moto_server: MotoServer, aws_env: None):
    """A boto3 Kinesis client on the moto server (the test's own, to create and fill)."""
    import boto3

    return boto3.client("kinesis", endpoint_url=moto_server.url, region_name=REGION)


@pytest.fixture
def stream_name() -> str:
    """A stream name no other test uses (the moto server lives for the whole session)."""
    return f"aegis-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path}/store/aegis.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path) -> Iterator[Store]:
    """The store on SQLite and on the real PostgreSQL (skipped when unreachable)."""
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path}/aegis.db")
    else:
        store = Store(engine=request.getfixturevalue("pg_engine"))
    try:
        yield store
    finally:
        store.close()

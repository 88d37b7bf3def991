"""Shared pytest fixtures. Add new fixtures in their own section; keep each one small."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port

# --------------------------------------------------------------------------- environment


@pytest.fixture(autouse=True)
def _config_stays_with_its_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """`aegis` commands hand their --config on through AEGIS_CONFIG (to the processes they
    start); a command run in-process by a test must not leave it to the tests after it."""
    monkeypatch.delenv("AEGIS_CONFIG", raising=False)


# --------------------------------------------------------------------------- broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One in-memory Tansu broker on a free loopback port for the whole session.

    Topics outlive tests: give each test its own topic names (or use ensure_topics).
    """
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    embedded = EmbeddedBroker(port=free_port(), log_path=log)
    try:
        embedded.start()
        yield embedded
    finally:
        embedded.stop()


# --------------------------------------------------------------------------- PostgreSQL

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_engine() -> Iterator:
    """An engine on the real PostgreSQL whose search_path is a fresh schema, dropped after
    the test (skipped when PostgreSQL is unreachable)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from aegis_app.serving.store.repository import make_engine

    admin = make_engine(POSTGRES_URL)
    schema = f"aegis_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc.orig}")
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --------------------------------------------------------------------------- data

# The public Sparkov-format slice (13,614 rows; its README beside it), kept outside the
# repository: next to the checkout as ../shared/data, or where AEGIS_SPARKOV_SLICE points.
SPARKOV_SLICE_NAME = "sparkov-slice.csv.gz"


def sparkov_slice_path() -> Path | None:
    root = Path(__file__).resolve().parents[1]
    candidates = [
        os.environ.get("AEGIS_SPARKOV_SLICE"),
        root.parent / "shared" / "data" / SPARKOV_SLICE_NAME,
        Path("/work/shared/data") / SPARKOV_SLICE_NAME,
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def sparkov_slice() -> Path:
    path = sparkov_slice_path()
    if path is None:
        pytest.skip("the Sparkov slice is not here: set AEGIS_SPARKOV_SLICE to its path")
    return path

"""Store fixtures: the same tests run against SQLite and the real PostgreSQL (pg_engine,
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from aegis_app.serving.store import Store
from aegis_app.serving.store.repository import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/aegis.db")
    else:
        engine = request.getfixturevalue("pg_engine")
    s = Store(engine=engine)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator[Engine]:
    """A bare engine, no schema yet (migration tests)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/old.db")
        yield engine
        engine.dispose()
    else:
        yield request.getfixturevalue("pg_engine")

"""Shared pytest fixtures. Add new fixtures in their own section; keep each one small."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aegis_app.harness.embedded_broker import EmbeddedBroker, free_port

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

"""Starting a worker: topics first, then a state directory that matches the broker.

An embedded (memory-only) broker forgets everything when it stops; RocksDB state from an
earlier broker run would then claim changelog offsets the broker never had, and Faust
refuses to start (ConsistencyError). So: state exists but the broker has no changelog for
it -> the state belongs to a broker that is gone, and is set aside. Real Kafka keeps its
changelogs, so there the state is kept and recovery proceeds as usual.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
from pathlib import Path

from aegis_app.core import settings as names
from aegis_app.core.settings import Settings
from aegis_app.kafka import admin, clients, rule_updates
from aegis_app.kafka.clients import KafkaConnection
from aegis_app.runtime.process import tune_process
from aegis_app.worker.app import FAST_SESSION_TIMEOUT_S, create_app, session_timeout
from agents.state import table_name

log = logging.getLogger(__name__)


def changelog_topics(conf: Settings) -> list[str]:
    """The changelog of every entity's state table the config declares."""
    entities = conf.load_config().entities
    return [f"{conf.app_id}-{table_name(entity)}-changelog" for entity in entities]


def all_topics(conf: Settings) -> list[str]:
    return [
        names.TRANSACTIONS_TOPIC,
        names.BY_ENTITY_TOPIC,
        names.DECISIONS_TOPIC,
        names.ALERTS_TOPIC,
        names.DEADLETTER_TOPIC,
        names.LABELS_TOPIC,
        names.MODEL_UPDATES_TOPIC,
        *changelog_topics(conf),
    ]


def prepare(conf: Settings) -> Settings:
    """Create the topics (matching partition counts) and reconcile the state directory;
    the settings to run with (the session timeout the broker accepts)."""
    bootstrap = KafkaConnection.from_settings(conf)
    admin.wait_for_broker(bootstrap, timeout=60)
    conf = with_session_timeout(conf, bootstrap)
    had_changelogs = _topics_exist(bootstrap, changelog_topics(conf))
    state_dir = Path(conf.data_dir)
    if state_dir.exists() and any(state_dir.iterdir()) and not had_changelogs:
        aside = state_dir.with_name(f"{state_dir.name}.stale-{int(time.time())}")
        log.warning(
            "state in %s predates this broker's changelogs; moving it to %s", state_dir, aside
        )
        shutil.move(str(state_dir), aside)
    state_dir.mkdir(parents=True, exist_ok=True)
    admin.ensure_topics(bootstrap, all_topics(conf), conf.partitions)
    # aegis.rules is not like the others: compacted, one partition (as the API creates it).
    admin.run_sync(lambda: rule_updates.ensure_topic(bootstrap))
    return conf


def with_session_timeout(conf: Settings, bootstrap: KafkaConnection) -> Settings:
    """`conf` with the session timeout settled against what the broker accepts; ValueError
    (naming AEGIS_SESSION_TIMEOUT_S) when a given one would be refused at the join."""
    low, high = admin.run_sync(lambda: admin.group_session_bounds(bootstrap))
    session = session_timeout(conf, low, high)
    if conf.session_timeout_s is None and session > FAST_SESSION_TIMEOUT_S:
        log.warning(
            "the broker accepts no session timeout below %g s (group.min.session.timeout.ms),"
            " so the worker's is %g s, not %g s: a dead worker's partitions move that much"
            " later; lower that setting to fail over faster (docs/OPERATIONS.md)",
            session,
            session,
            FAST_SESSION_TIMEOUT_S,
        )
    return conf.with_(session_timeout_s=session)


def _topics_exist(bootstrap: KafkaConnection, topics: list[str]) -> bool:
    async def listed() -> set[str]:
        admin = clients.admin_client(bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return set(topics) <= asyncio.run(listed())


def run(conf: Settings, loglevel: str = "info") -> None:
    """Run the Faust worker in this process until it is stopped."""
    conf = prepare(conf)
    app = create_app(conf)
    tune_process(conf, scoring=True)
    sys.argv = ["aegis", "worker", "--loglevel", loglevel]
    app.main()

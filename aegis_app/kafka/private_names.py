"""Every private Faust / aiokafka name Aegis depends on, in one list, and a start-up check.

Faust (faust-streaming) and aiokafka are extended through subclasses (aegis_app/kafka/
faust_ext.py, fetch_pacing.py), but a few of the hooks and attributes those subclasses and
the rest of Aegis need are private: nothing promises them across releases. setup.cfg pins
both packages to the minor versions tested; :func:`check` (run when a worker's ``AegisApp``
is built and when ``aegis api`` / ``aegis sink`` start) fails at once, naming the package,
its installed version and the missing names, instead of a worker misbehaving later.

Also listed (``HOOKS``): the public methods Aegis overrides, so a rename is caught too.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

# The versions tested (setup.cfg install_requires): a mismatch is named in the error.
TESTED = {"faust-streaming": ">=0.15.3,<0.16", "aiokafka": ">=0.14,<0.15"}


@dataclass(frozen=True)
class PrivateName:
    """`owner.name` in distribution `package`; `owner` is "module:Class" or "module"."""

    package: str
    owner: str
    name: str
    reason: str
    # Set on instances (in __init__ or start()), not visible on the class.
    per_instance: bool = False
    # Parameter names the callable must take, in this order (Aegis overrides or calls it so).
    parameters: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        module, _, cls = self.owner.partition(":")
        return f"{cls or module}.{self.name}"


_FAUST = "faust-streaming"
_AIOKAFKA = "aiokafka"
_F_CONSUMER = "faust.transport.consumer:Consumer"
_F_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
_A_CONSUMER = "aiokafka:AIOKafkaConsumer"

PRIVATE: tuple[PrivateName, ...] = (
    PrivateName(
        _FAUST,
        "faust.app.base:App",
        "_new_transport",
        "AegisApp builds its AegisTransport here: Faust picks the transport class from "
        "the broker URL's scheme and has no setting for it",
    ),
    PrivateName(
        _FAUST,
        "faust.transport.drivers.aiokafka:Consumer",
        "_new_consumer_thread",
        "AegisConsumer builds its AegisConsumerThread here",
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "_wait_next_records",
        "seek gate: learns the seek epoch of the batch Faust's fetch loop iterates",
        parameters=("timeout",),
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "_is_changelog_tp",
        "seek gate: changelog records are never dropped, nor uncommitted changelogs moved",
        parameters=("tp",),
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "_active_partitions",
        "seek gate: has recovery resumed the stream partitions before this seek",
        per_instance=True,
    ),
    PrivateName(
        _FAUST,
        _F_THREAD,
        "_highwaters",
        "changelog end offsets raised to the Fetch high watermark (Tansu's ListOffsets is too low)",
        parameters=("partitions",),
    ),
    PrivateName(
        _FAUST,
        _F_THREAD,
        "_fetch_records",
        "seek gate: stamps each fetched batch with the seek epoch, on the consumer thread; "
        "PausedNotFetched: pauses in aiokafka what Faust leaves out, before each fetch",
        parameters=("consumer", "active_partitions", "timeout", "max_records"),
    ),
    PrivateName(
        _FAUST,
        _F_THREAD,
        "_ensure_consumer",
        "the aiokafka consumer under Faust's: the seek, the high-watermark Fetch, pacing",
    ),
    PrivateName(
        _FAUST,
        _F_THREAD,
        "_create_worker_consumer",
        "fetch max wait: Faust hard-codes 1,500 ms when it builds the worker's consumer",
        parameters=("transport",),
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "_read_offset",
        "batch delivery: the read offset Faust's fetch loop keeps for each message it "
        "delivers, kept for the messages diverted to an inbox (duplicates after a seek)",
        per_instance=True,
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "_add_gap",
        "batch delivery: offsets skipped in a partition are recorded so commits move on",
        parameters=("tp", "offset_from", "offset_to"),
    ),
    PrivateName(
        _FAUST,
        "faust.stores.rocksdb:Store",
        "_db_for_partition",
        "LeanTable.lookup_in/put_many_in: a batch task names the partition (no current event)",
        parameters=("partition",),
    ),
    PrivateName(
        _FAUST,
        "faust.stores.rocksdb:Store",
        "_key_index",
        "LeanTable.put_many_in keeps the store's key -> partition index as its own writes do",
        per_instance=True,
    ),
    *(
        PrivateName(
            _FAUST,
            "faust.stores.base:Store",
            name,
            "LeanTable.lookup_in/put_many_in: the store's own key and value encoding",
            parameters=(what,),
        )
        for name, what in (
            ("_encode_key", "key"),
            ("_encode_value", "value"),
            ("_decode_value", "value"),
        )
    ),
    PrivateName(
        _FAUST,
        "faust.transport.drivers.aiokafka:Producer",
        "_ensure_producer",
        "raw_producer sends pre-serialized records on Faust's own aiokafka producer",
    ),
    PrivateName(
        _FAUST,
        "faust.tables.base:Collection",
        "_on_changelog_sent",
        "LeanTable records the persisted changelog offset after a lean send",
        parameters=("fut",),
    ),
    PrivateName(
        _FAUST,
        "faust.app.router:Router",
        "_get_serialized_key",
        "SourceKeyRouter hashes a table key as the input topic was partitioned",
        parameters=("table", "key"),
    ),
    PrivateName(
        _FAUST,
        "faust.app.router:Router",
        "_urlident",
        "agents/views.py: is a key served here, compared as Faust's router compares URLs",
        parameters=("url",),
    ),
    PrivateName(
        _AIOKAFKA,
        _A_CONSUMER,
        "_client",
        "the consumer's own connection: the high-watermark Fetch (faust_compat) and "
        "force_metadata_update for unsubscribed topics (model_updates, harness.stack)",
        per_instance=True,
    ),
    PrivateName(
        _AIOKAFKA,
        _A_CONSUMER,
        "_fetcher",
        "fetch pacing hooks this one consumer's Fetcher once start() has created it",
        per_instance=True,
    ),
    PrivateName(
        _AIOKAFKA,
        _A_CONSUMER,
        "_fetch_max_wait_ms",
        "fetch max wait of Faust's consumer, read when start() creates the Fetcher",
        per_instance=True,
    ),
    PrivateName(
        _AIOKAFKA,
        "aiokafka.consumer.fetcher:Fetcher",
        "_proc_fetch_request",
        "fetch pacing holds each fetch request here, on one Fetcher instance",
        parameters=("assignment", "node_id", "request"),
    ),
    PrivateName(
        _AIOKAFKA,
        "aiokafka.protocol.fetch",
        "FetchRequest",
        "internal protocol class (no underscore, not public API): the Fetch sent for the "
        "high watermark",
        parameters=("max_wait_time", "min_bytes", "max_bytes", "isolation_level", "topics"),
    ),
)

# Public methods Aegis's subclasses override or call; checked with the private names.
HOOKS: tuple[PrivateName, ...] = (
    *(
        PrivateName(_FAUST, _F_CONSUMER, name, "overridden by AegisConsumer")
        for name in (
            "ack",
            "getmany",
            "perform_seek",
            "on_partitions_revoked",
            "track_message",
        )
    ),
    PrivateName(
        _FAUST,
        _F_CONSUMER,
        "on_partitions_assigned",
        "overridden by AegisConsumer",
        parameters=("assigned", "generation_id"),
    ),
    *(
        PrivateName(_FAUST, _F_THREAD, name, "overridden or called by AegisConsumerThread")
        for name in ("seek_to_committed", "on_start", "call_thread")
    ),
    PrivateName(_FAUST, "faust.worker:Worker", "stop", "overridden by AegisWorker (a deadline)"),
    PrivateName(
        _FAUST,
        "faust.transport.base:Transport",
        "create_consumer",
        "AegisTransport passes the fetch settings to AegisConsumer",
        parameters=("callback",),
    ),
)


class PrivateNamesMissing(RuntimeError):
    """An installed Faust or aiokafka lacks names Aegis depends on."""


def _installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _set_on_instances(cls: type, name: str) -> bool:
    """Is `name` declared (annotated) on `cls` or its bases, or assigned as ``self.name``?"""
    assignment = re.compile(rf"\bself\.{re.escape(name)}\s*(?::[^=\n]+)?=(?!=)")
    for klass in cls.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return True
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # a builtin, or no source shipped
            continue
        if assignment.search(source):
            return True
    return False


def _takes(function: object, parameters: tuple[str, ...]) -> bool:
    try:
        names = [p for p in inspect.signature(function).parameters if p != "self"]
    except (TypeError, ValueError):
        return False
    return names[: len(parameters)] == list(parameters)


def problem(entry: PrivateName) -> str | None:
    """Why `entry` is not usable in the installed package, or None if it is."""
    module_name, _, class_name = entry.owner.partition(":")
    try:
        owner: object = importlib.import_module(module_name)
        for part in filter(None, class_name.split(".")):
            owner = getattr(owner, part)
    except (ImportError, AttributeError) as exc:
        return f"{entry.owner} not found ({exc})"
    if entry.per_instance:
        found = isinstance(owner, type) and _set_on_instances(owner, entry.name)
        return None if found else "missing"
    if not hasattr(owner, entry.name):
        return "missing"
    if entry.parameters and not _takes(getattr(owner, entry.name), entry.parameters):
        return f"does not take ({', '.join(entry.parameters)})"
    return None


def check(names: Iterable[PrivateName] = PRIVATE + HOOKS) -> None:
    """Raise :class:`PrivateNamesMissing` naming each package (installed version, tested
    range) and its missing names, with the reason Aegis needs each."""
    missing: dict[str, list[str]] = {}
    for entry in names:
        trouble = problem(entry)
        if trouble is not None:
            missing.setdefault(entry.package, []).append(
                f"{entry.label}: {trouble} (needed for: {entry.reason})"
            )
    if not missing:
        return
    lines = ["Aegis depends on names the installed Kafka libraries lack:"]
    for package, problems in missing.items():
        tested = TESTED.get(package, "?")
        lines.append(f"  {package} {_installed_version(package)} (tested: {package}{tested}):")
        lines.extend(f"    - {text}" for text in problems)
    lines.append(
        "Install the tested versions (setup.cfg) or adapt aegis_app/kafka "
        "(the list: aegis_app/kafka/private_names.py)."
    )
    raise PrivateNamesMissing("\n".join(lines))

"""`aegis ingest kinesis`: every shard of a Kinesis stream onto aegis.transactions.

Each shard has its own reader: GetRecords, forward the batch (a transaction keyed by card,
Avro-encoded as `aegis replay` does; a record that is not one to aegis.deadletter), wait
until the broker has acknowledged every message of the batch, and only then store the
batch's last sequence number as the shard's checkpoint. A crash therefore re-sends at most
the batches in flight (at-least-once; the store upserts by transaction id), and a restart
reads each shard after its checkpoint. ListShards runs every `shard_sync_s` and when a shard
ends, so the children of a split or merge are found; a child starts only after its parents
are finished (aegis_app.ingest.shards).

AWS ends a closed shard's reads with no next iterator, the only end-of-shard signal used
here. moto's server (the local endpoint of the tests) never does, and after a split or merge
it keeps writing new records to the closed parents instead of the children: against moto the
parents are read on and their children wait, so nothing is lost (README, "AWS Kinesis").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from aegis_app.core.codec import RecordCodec
from aegis_app.core.records import InvalidRecord
from aegis_app.core.settings import (
    DEADLETTER_TOPIC,
    TRANSACTIONS_TOPIC,
    Settings,
)
from aegis_app.ingest.checkpoints import CheckpointBook
from aegis_app.ingest.conversion import dead_letter, message_from_data
from aegis_app.ingest.shards import (
    START_POSITIONS,
    Checkpoint,
    ShardInfo,
    ShardTracker,
    initial_checkpoints,
    start_position,
)
from aegis_app.kafka.producer import Deliveries, DeliveryFailed, send_transaction

log = logging.getLogger(__name__)

# AWS allows 5 GetRecords a second per shard: the least pause between two reads of a shard.
MIN_READ_GAP_S = 0.2
MAX_THROTTLE_PAUSE_S = 10.0
# GetRecords returns at most this many records (AWS).
MAX_RECORDS_LIMIT = 10_000
_AUTH_ERRORS = {
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "UnrecognizedClientException",
}
_THROTTLE_ERRORS = {
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
}
NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
    "AWS_PROFILE (~/.aws/credentials), or run where an instance or task role applies"
)


class IngestError(RuntimeError):
    """A failure the user has to act on; the message names the cause in one line."""


class IteratorExpired(Exception):
    """A shard iterator older than AWS keeps them (5 minutes): get a new one."""


class Throttled(Exception):
    """AWS refused a call for the shard's or the account's read rate: pause, then retry."""


# --------------------------------------------------------------------------- AWS calls


def make_client(region: str | None, endpoint_url: str | None) -> Any:
    """A Kinesis client from the standard AWS chain (environment, profile, role), failing
    fast on an unreachable endpoint instead of retrying for minutes."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        raise IngestError("no AWS region: pass --region, or set AEGIS_KINESIS_REGION or AWS_REGION")
    config = Config(
        connect_timeout=5,
        read_timeout=20,
        retries={"max_attempts": 4, "mode": "standard"},
    )
    try:
        return session.client("kinesis", endpoint_url=endpoint_url, config=config)
    except ValueError as exc:  # botocore: "Invalid endpoint: ..."
        raise IngestError(
            f"endpoint URL {endpoint_url!r}: {exc} (expected http://HOST:PORT or https://...)"
        ) from None


class KinesisStream:
    """The calls the bridge makes on one stream, AWS errors turned into IngestError."""

    def __init__(
        self,
        stream_name: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.stream_name = stream_name
        self.client = client if client is not None else make_client(region, endpoint_url)

    @property
    def where(self) -> str:
        meta = getattr(self.client, "meta", None)
        region = getattr(meta, "region_name", "?")
        endpoint = getattr(meta, "endpoint_url", "?")
        return f"region {region} at {endpoint}"

    def list_shards(self, attempts: int = 4) -> list[ShardInfo]:
        """Every shard of the stream, open and closed (ListShards, all pages); a throttled
        listing is tried again after a pause, up to `attempts` times."""
        attempt = 1
        while True:
            try:
                return self._list_all_shards()
            except Throttled:
                if attempt >= attempts:
                    raise
                time.sleep(0.5 * 2**attempt)
                attempt += 1

    def _list_all_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        request: dict[str, Any] = {"StreamName": self.stream_name, "MaxResults": 1000}
        while True:
            with self._explained("ListShards"):
                page = self.client.list_shards(**request)
            shards.extend(ShardInfo.from_listing(entry) for entry in page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards
            request = {"NextToken": token, "MaxResults": 1000}  # not with StreamName (AWS)

    def shard_iterator(self, shard_id: str, position: dict[str, Any]) -> str:
        with self._explained("GetShardIterator"):
            answer = self.client.get_shard_iterator(
                StreamName=self.stream_name, ShardId=shard_id, **position
            )
        return answer["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        with self._explained("GetRecords"):
            return self.client.get_records(ShardIterator=iterator, Limit=limit)

    @contextlib.contextmanager
    def _explained(self, action: str) -> Iterator[None]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            yield
        except (NoCredentialsError, PartialCredentialsError):
            raise IngestError(NO_CREDENTIALS) from None
        except (ConnectionError, HTTPClientError) as exc:
            raise IngestError(f"cannot reach Kinesis ({self.where}): {exc}") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            if code == "ExpiredIteratorException":
                raise IteratorExpired(message) from None
            if code in _THROTTLE_ERRORS:
                raise Throttled(f"{code}: {message}") from None
            if code == "ResourceNotFoundException" and action == "ListShards":
                raise IngestError(f"stream {self.stream_name!r} not found ({self.where})") from None
            if code in _AUTH_ERRORS:
                raise IngestError(
                    f"AWS refused {action} on stream {self.stream_name!r} ({code}: {message}); "
                    "check the credentials and their permissions"
                ) from None
            raise IngestError(
                f"{action} on stream {self.stream_name!r} failed ({code}: {message})"
            ) from None
        except BotoCoreError as exc:
            raise IngestError(f"{action} on stream {self.stream_name!r} failed: {exc}") from None


# --------------------------------------------------------------------------- the bridge


@dataclass(frozen=True)
class BridgeOptions:
    stream_name: str
    start_from: str = "trim_horizon"
    poll_interval_s: float = 1.0
    max_records: int = 1000
    shard_sync_s: float = 10.0
    progress_s: float = 5.0
    max_record_bytes: int = 16_384

    def __post_init__(self) -> None:
        if not self.stream_name:
            raise ValueError("no stream: pass --stream or set AEGIS_KINESIS_STREAM")
        if self.start_from not in START_POSITIONS:
            raise ValueError(
                f"--from: expected one of {', '.join(START_POSITIONS)}, got {self.start_from!r}"
            )
        if not 1 <= self.max_records <= MAX_RECORDS_LIMIT:
            raise ValueError(
                f"--max-records: expected 1 to {MAX_RECORDS_LIMIT}, got {self.max_records}"
            )
        if self.poll_interval_s <= 0:
            raise ValueError(f"--poll-interval: must be positive, got {self.poll_interval_s}")
        if self.shard_sync_s <= 0:
            raise ValueError(f"--shard-sync-interval: must be positive, got {self.shard_sync_s}")
        if self.progress_s < 0:
            raise ValueError(f"--progress-interval: must not be negative, got {self.progress_s}")

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeOptions:
        return cls(
            stream_name=settings.kinesis_stream or "",
            start_from=settings.kinesis_from.lower(),
            poll_interval_s=settings.kinesis_poll_interval_s,
            max_records=settings.kinesis_max_records,
            shard_sync_s=settings.kinesis_shard_sync_s,
            progress_s=settings.ingest_progress_s,
            max_record_bytes=settings.max_record_bytes,
        )


@dataclass
class BridgeCounts:
    forwarded: int = 0  # transactions acknowledged by the broker
    dead_lettered: int = 0  # dead letters acknowledged by the broker
    resent: int = 0  # sends the broker refused at first (then took)
    shards_finished: int = 0  # closed shards read to their end during this run


class KinesisBridge:
    """Reads every shard of a stream and forwards its records; `run` until `stop` is set."""

    def __init__(
        self,
        stream: KinesisStream,
        book: CheckpointBook,
        producer: Any,
        options: BridgeOptions,
        codec: RecordCodec,
        progress_out: IO[str] | None = None,
    ) -> None:
        self.stream = stream
        self.book = book
        self.producer = producer
        self.options = options
        self.codec = codec  # the config's: the records' schema and the wire format
        self.progress_out = progress_out
        self.counts = BridgeCounts()
        self.tracker = ShardTracker()

    async def run(self, stop: asyncio.Event, listing: list[ShardInfo] | None = None) -> None:
        """Read until `stop` is set (each reader ends its batch: forwarded, acknowledged,
        checkpointed) or a reader fails (its error is raised once the others have ended)."""
        checkpoints = await self.book.load()
        if listing is None:
            listing = await asyncio.to_thread(self.stream.list_shards)
        if not checkpoints:
            checkpoints = initial_checkpoints(listing, self.options.start_from, datetime.now(UTC))
            await self.book.store_initial(checkpoints)
        self.tracker = ShardTracker(s for s, c in checkpoints.items() if c.finished)
        self.tracker.update(listing)
        loop = asyncio.get_running_loop()
        readers: dict[asyncio.Task, str] = {}
        stopping = asyncio.create_task(stop.wait())
        reporter = asyncio.create_task(self._report(stop)) if self.options.progress_s else None
        next_sync = loop.time() + self.options.shard_sync_s
        failed = True
        try:
            while not stop.is_set():
                for shard in self.tracker.ready():
                    self.tracker.start(shard.shard_id)
                    reader = self._read_shard(shard.shard_id, checkpoints.get(shard.shard_id), stop)
                    readers[asyncio.create_task(reader)] = shard.shard_id
                timeout = max(0.0, next_sync - loop.time())
                done, _ = await asyncio.wait(
                    {*readers, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                relist = loop.time() >= next_sync
                for task in done - {stopping}:
                    shard_id = readers.pop(task)
                    finished = task.result()  # a reader's error ends the bridge
                    self.tracker.stop(shard_id, finished)
                    relist = relist or finished  # its children may be listed by now
                if relist and not stop.is_set():
                    try:
                        self.tracker.update(await asyncio.to_thread(self.stream.list_shards))
                    except Throttled as exc:  # the old listing serves until the next sync
                        log.warning("ListShards throttled (%s)", exc)
                    next_sync = loop.time() + self.options.shard_sync_s
            failed = False
        finally:
            stop.set()
            results = await asyncio.gather(*readers, return_exceptions=True)
            stopping.cancel()
            if reporter is not None:
                reporter.cancel()
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors and not failed:
                raise errors[0]

    async def _read_shard(
        self, shard_id: str, checkpoint: Checkpoint | None, stop: asyncio.Event
    ) -> bool:
        """Read one shard until it ends (True) or `stop` is set (False)."""
        last: str | None = None
        iterator = None
        pause = MIN_READ_GAP_S
        loop = asyncio.get_running_loop()
        while True:
            called = loop.time()
            try:
                if iterator is None:  # the first read, or after an expired iterator
                    position = start_position(checkpoint, last)
                    iterator = await asyncio.to_thread(
                        self.stream.shard_iterator, shard_id, position
                    )
                page = await asyncio.to_thread(
                    self.stream.get_records, iterator, self.options.max_records
                )
            except IteratorExpired:
                iterator = None
                continue
            except Throttled as exc:
                pause = min(pause * 2, MAX_THROTTLE_PAUSE_S)
                log.warning("shard %s throttled (%s): pausing %.1fs", shard_id, exc, pause)
                if await _pause(stop, pause):
                    return False
                continue
            pause = MIN_READ_GAP_S
            records = page.get("Records") or []
            if records:
                await self._forward(shard_id, records)
                last = records[-1]["SequenceNumber"]
                await self.book.advance(shard_id, last)
            iterator = page.get("NextShardIterator")
            if iterator is None:  # a closed shard read to its end
                await self.book.finish(shard_id, last)
                self.counts.shards_finished += 1
                log.info("shard %s finished", shard_id)
                return True
            behind = page.get("MillisBehindLatest") or 0
            busy = len(records) >= self.options.max_records or behind > 0
            # Gaps count from the start of the last call: a busy shard is read again as soon
            # as its batch is through, if that took the gap already.
            gap = MIN_READ_GAP_S if busy else self.options.poll_interval_s
            if await _pause(stop, max(0.0, gap - (loop.time() - called))):
                return False

    async def _forward(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        """Send a batch and return once the broker acknowledged all of it."""
        deliveries = Deliveries()
        forwarded = dead = 0
        producer = self.producer
        for record in records:
            data = bytes(record["Data"])
            try:
                payload, key = message_from_data(data, self.codec, self.options.max_record_bytes)
            except InvalidRecord as exc:
                key, letter = dead_letter(
                    self.stream.stream_name,
                    shard_id,
                    record["SequenceNumber"],
                    record.get("PartitionKey", ""),
                    data,
                    str(exc),
                    self.options.max_record_bytes,
                )
                value = orjson.dumps(letter)
                await deliveries.send(
                    lambda key=key, value=value: producer.send(
                        DEADLETTER_TOPIC, value=value, key=key
                    )
                )
                dead += 1
                continue
            await deliveries.send(
                lambda payload=payload, key=key: send_transaction(producer, payload, key)
            )
            forwarded += 1
        await deliveries.check(wait=True)
        self.counts.forwarded += forwarded
        self.counts.dead_lettered += dead
        self.counts.resent += deliveries.resent

    async def _report(self, stop: asyncio.Event) -> None:
        """A progress line on `progress_out` every `progress_s` seconds."""
        out = self.progress_out or sys.stderr
        interval = self.options.progress_s
        before = (time.monotonic(), self.counts.forwarded, self.counts.dead_lettered)
        while not await _pause(stop, interval):
            now = time.monotonic()
            seconds = max(now - before[0], 1e-9)
            fwd_rate = (self.counts.forwarded - before[1]) / seconds
            dead_rate = (self.counts.dead_lettered - before[2]) / seconds
            before = (now, self.counts.forwarded, self.counts.dead_lettered)
            print(
                f"kinesis {self.stream.stream_name}: {self.counts.forwarded} forwarded "
                f"({fwd_rate:.0f}/s), {self.counts.dead_lettered} dead-lettered "
                f"({dead_rate:.0f}/s); shards: {len(self.tracker.reading)} reading, "
                f"{len(self.tracker.waiting())} waiting for a parent, "
                f"{len(self.tracker.finished)} finished",
                file=out,
                flush=True,
            )


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`, less if `stop` is set; True if it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


# --------------------------------------------------------------------------- the command


def _explain_failure(exc: BaseException) -> IngestError | None:
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, DeliveryFailed | KafkaError):
        return IngestError(f"the Kafka broker did not take the records: {exc!r}")
    if isinstance(exc, SQLAlchemyError):
        return IngestError(f"result store: {type(exc).__name__}: {exc}".splitlines()[0])
    return None


async def _start_producer(settings: Settings, timeout: float) -> Any:
    """The producer, once the broker answers and both topics exist. The connection (servers,
    TLS, SASL) comes from Settings through the one client factory (aegis_app/kafka/clients)."""
    from aegis_app.kafka.admin import BrokerError, ensure_topics_async
    from aegis_app.kafka.clients import KafkaConnection
    from aegis_app.kafka.producer import make_producer

    try:
        connection = KafkaConnection.from_settings(settings)
    except ValueError as exc:  # a malformed broker URL or TLS/SASL setting, named
        raise IngestError(f"Kafka settings: {exc}") from None
    try:
        # The worker's partition count, so its own (strict) check passes later.
        await ensure_topics_async(
            connection,
            [TRANSACTIONS_TOPIC, DEADLETTER_TOPIC],
            settings.partitions,
            timeout,
            strict=False,
        )
    except BrokerError as exc:
        raise IngestError(f"Kafka broker unreachable: {exc}") from None
    producer = make_producer(connection)
    try:
        await producer.start()
    except (KafkaError, RuntimeError) as exc:  # RuntimeError: a refused TLS/SASL login, named
        await producer.stop()
        raise IngestError(
            f"Kafka broker {settings.kafka_broker} refused the producer: {exc}"
        ) from None
    return producer


def _open_store(db_url: str) -> Any:
    from aegis_app.serving.store import Store

    try:
        return Store(db_url)
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        raise IngestError(f"result store {db_url!r} unusable: {reason}") from None


async def serve(
    settings: Settings,
    options: BridgeOptions,
    stop: asyncio.Event | None = None,
    progress_out: IO[str] | None = None,
) -> dict[str, Any]:
    """Check the stream, the broker and the store, then bridge until SIGTERM/SIGINT (or
    `stop`); returns the run's counts. Failures users hit raise IngestError."""
    codec = RecordCodec(settings.load_config())  # the records' schema
    stream = KinesisStream(
        options.stream_name, settings.kinesis_region, settings.kinesis_endpoint_url
    )
    try:
        listing = await asyncio.to_thread(stream.list_shards)  # credentials, endpoint, stream
    except Throttled as exc:
        raise IngestError(
            f"AWS throttled ListShards on stream {stream.stream_name!r}: {exc}"
        ) from None
    producer = await _start_producer(settings, settings.ingest_broker_timeout_s)
    store = None
    started = time.monotonic()
    if stop is None:
        stop = asyncio.Event()
    bridge = None
    try:
        store = _open_store(settings.db_url)
        bridge = KinesisBridge(
            stream,
            CheckpointBook(store, options.stream_name),
            producer,
            options,
            codec,
            progress_out,
        )
        with _stop_on_signals(stop.set):
            await bridge.run(stop, listing)
    except Exception as exc:
        explained = _explain_failure(exc)
        if explained is None:
            raise
        raise explained from None
    finally:
        await producer.stop()
        if store is not None:
            store.close()
    seconds = time.monotonic() - started
    counts = asdict(bridge.counts)
    return {
        "stream": options.stream_name,
        **counts,
        "seconds": round(seconds, 2),
        "rate_per_s": round(counts["forwarded"] / seconds, 1) if seconds else None,
    }


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT end the run cleanly (only the main thread can take signals)."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    for signum in signals:
        loop.add_signal_handler(signum, stop)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)

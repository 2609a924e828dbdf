"""The event bus: topics, partitions and offsets, with an embedded log and Kafka behind one interface.

Ingestion never "consumes": it asks for end offsets and reads exact offset ranges, so a batch is a
deterministic function of (topic, partition, start, end) on either backend.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np
from kafka.partitioner.default import murmur2

from mm_pipelines.config import ConfigError

_HEADER = struct.Struct("<II")  # key length, value length

# How long any one request to a broker (metadata, topic creation, offsets) may take before the bus counts
# as unreachable: a run or a command that cannot reach its source fails within this, never hangs.
BROKER_TIMEOUT_S = 10.0

# librdkafka logs every failed connection attempt (many per second) to stderr unless given a logger.
_kafka_log = logging.getLogger("mm_pipelines.kafka")
_kafka_log.addHandler(logging.NullHandler())


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so both backends place a user's events alike."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Batch:
    """The messages of one offset range of one partition, in offset order, as the bus holds them: a
    key or value may be None (Kafka allows both), and `headers` names the headers of the few messages
    that carry any, by position in the batch."""

    topic: str
    partition: int
    start: int
    end: int
    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    headers: dict[int, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)


class EventBusError(RuntimeError):
    pass


class TopicNotFound(EventBusError):
    """The topic does not exist (yet): nothing has been produced to it."""


class EventBusUnavailable(EventBusError):
    """The bus could not be reached: a failure of the run, never "nothing to ingest"."""


class EventBus(Protocol):
    url: str

    def ensure_topic(self, topic: str, partitions: int) -> None: ...

    def partitions(self, topic: str) -> list[int]: ...

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int: ...

    def read_range(self, topic: str, partition: int, start: int, end: int) -> Batch: ...

    def commit(self, topic: str, offsets: dict[int, int]) -> None: ...

    def close(self) -> None: ...


def open_event_bus(url: str) -> EventBus:
    scheme = urlsplit(url).scheme
    if scheme == "log":
        return LocalEventLog(url)
    if scheme == "kafka":
        return KafkaEventBus(url)
    raise ConfigError(f"MM_EVENT_BUS={url!r}: use log:///path for the embedded log or kafka://host:port")


class LocalEventLog:
    """An append-only, crash-safe log on local disk with Kafka's topic/partition/offset model.

    Per partition: `data.log` holds length-prefixed records, `index.u64` the file position of each
    offset. Records are written before their index entries, so a crash mid-append leaves an
    unindexed tail that the next writer truncates: an offset, once readable, never changes.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.root = Path(parts.netloc + parts.path)

    def _topic_dir(self, topic: str) -> Path:
        return self.root / topic

    def ensure_topic(self, topic: str, partitions: int) -> None:
        existing = self.partitions(topic)
        if existing:
            return
        for p in range(partitions):
            d = self._topic_dir(topic) / f"partition-{p}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "data.log").touch()
            (d / "index.u64").touch()

    def partitions(self, topic: str) -> list[int]:
        d = self._topic_dir(topic)
        if not d.exists():
            return []
        return sorted(int(p.name.split("-", 1)[1]) for p in d.glob("partition-*"))

    def _require_partitions(self, topic: str) -> list[int]:
        parts = self.partitions(topic)
        if not parts:
            raise TopicNotFound(f"Topic {topic!r} does not exist in {self.root}: produce to it first")
        return parts

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {
            p: (self._topic_dir(topic) / f"partition-{p}" / "index.u64").stat().st_size // 8
            for p in self._require_partitions(topic)
        }

    @contextmanager
    def _partition_lock(self, d: Path) -> Iterator[None]:
        with open(d / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @staticmethod
    def _committed_end(data, index) -> int:
        """File position just past the last indexed record."""
        n = os.fstat(index.fileno()).st_size // 8
        if n == 0:
            return 0
        index.seek((n - 1) * 8)
        (pos,) = struct.unpack("<Q", index.read(8))
        data.seek(pos)
        klen, vlen = _HEADER.unpack(data.read(_HEADER.size))
        return pos + _HEADER.size + klen + vlen

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
        parts = self._require_partitions(topic)
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in parts}
        for key, value in records:
            by_partition[parts[partition_for(key, len(parts))]].append((key, value))
        count = 0
        for p, recs in by_partition.items():
            if recs:
                self._append(self._topic_dir(topic) / f"partition-{p}", recs)
                count += len(recs)
        return count

    def _append(self, d: Path, recs: Sequence[tuple[bytes, bytes]]) -> None:
        with self._partition_lock(d), open(d / "data.log", "r+b") as data, open(d / "index.u64", "r+b") as index:
            pos = self._committed_end(data, index)
            data.truncate(pos)
            data.seek(pos)
            positions = np.empty(len(recs), dtype="<u8")
            chunks = []
            for i, (key, value) in enumerate(recs):
                positions[i] = pos
                chunks.append(_HEADER.pack(len(key), len(value)))
                chunks.append(key)
                chunks.append(value)
                pos += _HEADER.size + len(key) + len(value)
            data.write(b"".join(chunks))
            data.flush()
            os.fsync(data.fileno())
            index.seek(0, os.SEEK_END)
            index.write(positions.tobytes())
            index.flush()
            os.fsync(index.fileno())

    def read_range(self, topic: str, partition: int, start: int, end: int) -> Batch:
        d = self._topic_dir(topic) / f"partition-{partition}"
        batch = Batch(topic, partition, start, end)
        if end <= start:
            return batch
        with open(d / "index.u64", "rb") as index, open(d / "data.log", "rb") as data:
            available = os.fstat(index.fileno()).st_size // 8
            if end > available:
                raise EventBusError(f"{topic}[{partition}] has offsets up to {available}; cannot read up to {end}")
            index.seek(start * 8)
            positions = np.frombuffer(index.read((end - start) * 8), dtype="<u8")
            first = int(positions[0])
            last_pos = int(positions[-1])
            data.seek(last_pos)
            klen, vlen = _HEADER.unpack(data.read(_HEADER.size))
            data.seek(first)
            blob = data.read(last_pos + _HEADER.size + klen + vlen - first)
        values, keys = batch.values, batch.keys
        for pos in (positions - first).tolist():
            klen, vlen = _HEADER.unpack_from(blob, pos)
            begin = pos + _HEADER.size + klen
            keys.append(blob[pos + _HEADER.size : begin])
            values.append(blob[begin : begin + vlen])
        batch.offsets = list(range(start, end))
        return batch

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        """The embedded log has no consumer groups: lag comes from raw.ingested_ranges."""

    def close(self) -> None:
        pass


# After a range is read, the fetch librdkafka keeps in flight waits at the broker for more data, up to
# fetch.wait.max.ms (default LIBRDKAFKA_FETCH_WAIT_MS), and the next range's first fetch waits behind it: 0.5 s for
# every range read after the first, 1-1.5 s of each 4-partition sensor run (benchmarks/kafka_range_reads.py).
LIBRDKAFKA_FETCH_WAIT_MS = 500
FETCH_WAIT_MS = 10


class KafkaEventBus:
    """Apache Kafka through librdkafka (confluent-kafka): an idempotent producer, assign+seek range reads.

    Measured on this 2-core machine (1M events): librdkafka produces ~400k/s and reads ~90k/s where
    kafka-python managed 24k/s and 51k/s, so the data path uses it; partitioning is Kafka's murmur2.
    Every broker request is bounded by BROKER_TIMEOUT_S: an unreachable bus is an EventBusUnavailable."""

    def __init__(self, url: str, read_timeout_s: float = 60.0, fetch_wait_ms: int = FETCH_WAIT_MS):
        parts = urlsplit(url)
        self.url = url
        self.bootstrap = [h for h in (parts.netloc or parts.path).split(",") if h]
        if not self.bootstrap:
            raise ConfigError(f"MM_EVENT_BUS={url!r}: name at least one broker, e.g. kafka://localhost:9092")
        self.read_timeout_s = read_timeout_s
        self.fetch_wait_ms = fetch_wait_ms
        self._consumer = None
        self._producer = None
        self._reached = False

    @property
    def _servers(self) -> str:
        return ",".join(self.bootstrap)

    def _config(self, **settings) -> dict:
        """What every client shares: the brokers, and librdkafka's log lines sent to Python logging, not stderr."""
        return {"bootstrap.servers": self._servers, "logger": _kafka_log, **settings}

    def _unavailable(self, what: str, cause: str) -> EventBusUnavailable:
        return EventBusUnavailable(
            f"Kafka at {self._servers} {what} ({cause}): is the broker up, and does MM_EVENT_BUS point at it?"
        )

    def _check_reachable(self) -> None:
        """Open a TCP connection to a bootstrap broker once, before librdkafka does: a refused or unresolvable
        address then fails at once with the system's reason, where librdkafka retries silently until a timeout."""
        if self._reached:
            return
        causes = []
        for server in self.bootstrap:
            host, sep, port = server.rpartition(":")
            try:
                socket.create_connection(
                    (host.strip("[]"), int(port)) if sep else (server, 9092), timeout=BROKER_TIMEOUT_S
                ).close()
            except (OSError, ValueError) as e:
                reason = getattr(e, "strerror", None) or str(e)
                causes.append(f"{server}: {reason}" if len(self.bootstrap) > 1 else reason)
                continue
            self._reached = True
            return
        raise self._unavailable("is unreachable", "; ".join(causes))

    def _get_consumer(self):
        if self._consumer is None:
            from confluent_kafka import Consumer

            self._check_reachable()
            self._consumer = Consumer(
                self._config(
                    **{
                        "group.id": "mm-ingest",  # offsets are never committed: ranges come from the warehouse
                        "enable.auto.commit": False,
                        "enable.partition.eof": False,
                        # A range is read from one partition: let one fetch bring up to 64 MiB of it. At
                        # 16 MiB the same million events took 4x longer (4.8 s instead of 1.2 s).
                        "fetch.max.bytes": 64 * 1024 * 1024,
                        "max.partition.fetch.bytes": 64 * 1024 * 1024,
                        "queued.max.messages.kbytes": 512 * 1024,
                        "fetch.wait.max.ms": self.fetch_wait_ms,
                    }
                )
            )
        return self._consumer

    def ensure_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        if self.partitions(topic):
            return
        admin = AdminClient(self._config())
        try:
            created = admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=1)], request_timeout=BROKER_TIMEOUT_S
            )
            created[topic].result(timeout=2 * BROKER_TIMEOUT_S)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise EventBusError(f"Could not create topic {topic!r} on {self._servers}: {e.args[0].str()}") from None
        except TimeoutError:
            raise self._unavailable(
                f"did not create topic {topic!r} within {2 * BROKER_TIMEOUT_S:.0f} s", "no answer"
            ) from None
        deadline = time.monotonic() + 3 * BROKER_TIMEOUT_S
        while len(self.partitions(topic)) < partitions:
            if time.monotonic() > deadline:
                raise EventBusError(f"Topic {topic!r} was created but its partitions never appeared")
            time.sleep(0.1)

    def partitions(self, topic: str) -> list[int]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            meta = self._get_consumer().list_topics(topic, timeout=BROKER_TIMEOUT_S).topics.get(topic)
        except KafkaException as e:
            raise self._unavailable(f"did not answer within {BROKER_TIMEOUT_S:.0f} s", e.args[0].str()) from None
        if meta is not None and meta.error is not None and meta.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise EventBusError(f"Kafka at {self._servers} does not allow reading topic {topic!r}: {meta.error.str()}")
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def end_offsets(self, topic: str) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        parts = self.partitions(topic)
        if not parts:
            raise TopicNotFound(f"Topic {topic!r} does not exist on {self._servers}")
        consumer = self._get_consumer()
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=BROKER_TIMEOUT_S)[1] for p in parts
            }
        except KafkaException as e:
            raise self._unavailable(
                f"did not give the end offsets of {topic!r} within {BROKER_TIMEOUT_S:.0f} s", e.args[0].str()
            ) from None

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
        if self._producer is None:
            from confluent_kafka import Producer

            self._check_reachable()
            self._producer = Producer(
                self._config(
                    **{
                        "enable.idempotence": True,  # acks=all, no duplicates or reordering on retries
                        "linger.ms": 20,
                        "batch.size": 1024 * 1024,
                        "compression.type": "lz4",
                        "partitioner": "murmur2_random",  # Java's default: the same placement as partition_for
                        "queue.buffering.max.messages": 1_000_000,
                    }
                )
            )
        errors: list[str] = []

        def delivered(err, _msg):
            if err is not None:
                errors.append(err.str())

        count = 0
        producer = self._producer
        for key, value in records:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            count += 1
        remaining = producer.flush(120)
        if remaining or errors:
            raise EventBusError(
                f"{len(errors) + remaining} of {count} messages were not delivered to {topic!r}: "
                f"{errors[0] if errors else 'timed out'}"
            )
        return count

    def read_range(self, topic: str, partition: int, start: int, end: int) -> Batch:
        from confluent_kafka import TopicPartition

        batch = Batch(topic, partition, start, end)
        if end <= start:
            return batch
        consumer = self._get_consumer()
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + self.read_timeout_s
        next_offset = start
        try:
            while next_offset < end:
                # Small takes with a short wait: consume() blocks until num_messages arrive or the timeout.
                messages = consumer.consume(num_messages=min(20_000, end - next_offset), timeout=0.05)
                for m in messages:
                    if m.error() is not None:
                        raise EventBusError(
                            f"Kafka error reading {topic}[{partition}] at {next_offset}: {m.error().str()}"
                        )
                offsets = [m.offset() for m in messages]
                keep = (
                    len(offsets)
                    if not offsets or offsets[-1] < end
                    else next(i for i, o in enumerate(offsets) if o >= end)
                )
                if keep:
                    kept = messages[:keep] if keep < len(messages) else messages
                    headers = [m.headers() for m in kept]
                    if any(headers):  # rare: only their names are kept, for ingestion to judge
                        base = len(batch.offsets)
                        batch.headers.update({base + i: [name for name, _ in h] for i, h in enumerate(headers) if h})
                    batch.offsets.extend(offsets[:keep])
                    batch.values.extend([m.value() for m in kept])
                    batch.keys.extend([m.key() for m in kept])
                    next_offset = offsets[keep - 1] + 1
                    deadline = time.monotonic() + self.read_timeout_s
                if keep < len(offsets):
                    break
                if not messages:
                    position = consumer.position([TopicPartition(topic, partition)])[0].offset
                    if position >= end:
                        break  # offsets past the last record are control markers or compacted away
                    if time.monotonic() > deadline:
                        raise EventBusError(
                            f"Kafka returned nothing for {topic}[{partition}] at offset {next_offset} "
                            f"within {self.read_timeout_s:.0f}s (range {start}-{end}): is the broker up?"
                        )
        finally:
            consumer.unassign()
        return batch

    def commit(self, topic: str, offsets: dict[int, int]) -> None:
        """Record ingested offsets on the consumer group, for lag dashboards only: what is ingested is
        decided by raw.ingested_ranges in the warehouse, never by these."""
        from confluent_kafka import TopicPartition

        if offsets:
            self._get_consumer().commit(
                offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

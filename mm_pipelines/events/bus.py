"""The event bus: topics, partitions and offsets, with an embedded log and Kafka behind one interface.

Ingestion never "consumes": it asks for end offsets and reads exact offset ranges, so a batch is a
deterministic function of (topic, partition, start, end) on either backend.
"""

from __future__ import annotations

import fcntl
import os
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


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so both backends place a user's events alike."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Batch:
    """The messages of one offset range of one partition, in offset order."""

    topic: str
    partition: int
    start: int
    end: int
    offsets: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


class EventBusError(RuntimeError):
    pass


class EventBus(Protocol):
    url: str

    def ensure_topic(self, topic: str, partitions: int) -> None: ...

    def partitions(self, topic: str) -> list[int]: ...

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int: ...

    def read_range(self, topic: str, partition: int, start: int, end: int) -> Batch: ...

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
            raise EventBusError(f"Topic {topic!r} does not exist in {self.root}: produce to it first")
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
                raise EventBusError(
                    f"{topic}[{partition}] has offsets up to {available}; cannot read up to {end}"
                )
            index.seek(start * 8)
            positions = np.frombuffer(index.read((end - start) * 8), dtype="<u8")
            first = int(positions[0])
            last_pos = int(positions[-1])
            data.seek(last_pos)
            klen, vlen = _HEADER.unpack(data.read(_HEADER.size))
            data.seek(first)
            blob = data.read(last_pos + _HEADER.size + klen + vlen - first)
        values = batch.values
        for pos in (positions - first).tolist():
            klen, vlen = _HEADER.unpack_from(blob, pos)
            begin = pos + _HEADER.size + klen
            values.append(blob[begin : begin + vlen])
        batch.offsets = list(range(start, end))
        return batch

    def close(self) -> None:
        pass


class KafkaEventBus:
    """Apache Kafka through kafka-python: an idempotent producer, and assign+seek range reads."""

    def __init__(self, url: str, read_timeout_s: float = 60.0):
        parts = urlsplit(url)
        self.url = url
        self.bootstrap = [h for h in (parts.netloc or parts.path).split(",") if h]
        if not self.bootstrap:
            raise ConfigError(f"MM_EVENT_BUS={url!r}: name at least one broker, e.g. kafka://localhost:9092")
        self.read_timeout_s = read_timeout_s
        self._consumer = None
        self._producer = None

    def _admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="mm-admin")

    def _get_consumer(self):
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                client_id="mm-ingest",
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
                max_poll_records=50_000,
            )
        return self._consumer

    def ensure_topic(self, topic: str, partitions: int) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = self._admin()
        try:
            admin.create_topics([NewTopic(name=topic, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        deadline = time.monotonic() + 30
        while len(self.partitions(topic)) < partitions:
            if time.monotonic() > deadline:
                raise EventBusError(f"Topic {topic!r} was created but its partitions never appeared")
            time.sleep(0.1)

    def partitions(self, topic: str) -> list[int]:
        consumer = self._get_consumer()
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            # Metadata is cached; ask again so a topic created a moment ago is seen.
            consumer.topics()
            parts = consumer.partitions_for_topic(topic)
        return sorted(parts or [])

    def end_offsets(self, topic: str) -> dict[int, int]:
        from kafka import TopicPartition

        parts = self.partitions(topic)
        if not parts:
            raise EventBusError(f"Topic {topic!r} does not exist on {','.join(self.bootstrap)}")
        ends = self._get_consumer().end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}

    def produce(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=20,
                batch_size=512 * 1024,
                max_request_size=16 * 1024 * 1024,
                compression_type="lz4",
            )
        futures = [self._producer.send(topic, key=key, value=value) for key, value in records]
        self._producer.flush()
        for f in futures:
            f.get(timeout=60)  # raises the broker's error, if any
        return len(futures)

    def read_range(self, topic: str, partition: int, start: int, end: int) -> Batch:
        from kafka import TopicPartition

        batch = Batch(topic, partition, start, end)
        if end <= start:
            return batch
        consumer = self._get_consumer()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + self.read_timeout_s
        next_offset = start
        while next_offset < end:
            polled = consumer.poll(timeout_ms=500, max_records=50_000)
            got = False
            for record in polled.get(tp, ()):
                if record.offset >= end:
                    break
                batch.offsets.append(record.offset)
                batch.values.append(record.value)
                next_offset = record.offset + 1
                got = True
            if got:
                deadline = time.monotonic() + self.read_timeout_s
            elif consumer.position(tp) >= end:
                break  # offsets past the last record are control markers or compacted away
            elif time.monotonic() > deadline:
                raise EventBusError(
                    f"Kafka returned nothing for {topic}[{partition}] at offset {next_offset} "
                    f"within {self.read_timeout_s:.0f}s (range {start}-{end}): is the broker up?"
                )
        return batch

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

"""The raw-event archive in the object store, and replay from it.

Every ingested range is written as Parquet, partitioned by event date, under
`raw/events/date=YYYY-MM-DD/<topic>-p<partition>-<start>-<end>.parquet`; the range's dead letters and
its record go beside it. Names derive from the range, so rewriting a range replaces the same files.
This is the long-term raw archive, the input of Spark backfills, and what `mm replay` restores from
(mm_pipelines.recovery). Loaded reports (spend, sales) are kept as they were by archive_report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.objects import ObjectStore

EVENTS_PREFIX = "raw/events"
DEAD_LETTERS_PREFIX = "raw/dead_letters"
RANGES_PREFIX = "raw/ingested_ranges"
EPOCH = date(1970, 1, 1)


def range_name(topic: str, partition: int, start: int, end: int) -> str:
    return f"{topic}-p{partition}-{start:020d}-{end:020d}"


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def archive_range(
    store: ObjectStore, topic: str, partition: int, start: int, end: int, events: pa.Table, dead_letters: pa.Table
) -> list[str]:
    """Write one ingested range: its events (given in offset order) one file per event date, and its
    dead letters; returns the keys written."""
    name = range_name(topic, partition, start, end)
    keys = []
    if events.num_rows:
        # Day numbers by integer arithmetic (strftime on every row cost more than the Parquet writing).
        millis = events["occurred_at"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy()
        days = np.floor_divide(millis, 86_400_000)
        if np.any(days[1:] < days[:-1]):
            order = np.argsort(days, kind="stable")  # offset order within a day
            events, days = events.take(order), days[order]
        bounds = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist(), len(days)]
        for lo, hi in zip(bounds, bounds[1:]):
            day = EPOCH + timedelta(days=int(days[lo]))
            key = f"{EVENTS_PREFIX}/date={day.isoformat()}/{name}.parquet"
            store.put_bytes(key, _parquet(events.slice(lo, hi - lo)))
            keys.append(key)
    if dead_letters.num_rows:
        key = f"{DEAD_LETTERS_PREFIX}/{name}.parquet"
        store.put_bytes(key, _parquet(dead_letters))
        keys.append(key)
    return keys


def archive_range_record(store: ObjectStore, record: dict) -> str:
    """The range's row of raw.ingested_ranges, so a disaster-recovery replay restores where ingestion stood."""
    name = range_name(record["topic"], record["partition"], record["start_offset"], record["end_offset"])
    key = f"{RANGES_PREFIX}/{name}.json"
    as_text = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.items()}
    store.put_bytes(key, json.dumps(as_text, sort_keys=True).encode())
    return key


def _ranges_table(records: list[dict]) -> pa.Table:
    def ts(values):
        return pa.array([datetime.fromisoformat(v) if v else None for v in values], pa.timestamp("ms", "UTC"))

    col = lambda name: [r[name] for r in records]  # noqa: E731
    return pa.table(
        {
            "topic": pa.array(col("topic"), pa.string()),
            "partition": pa.array(col("partition"), pa.uint32()),
            "start_offset": pa.array(col("start_offset"), pa.uint64()),
            "end_offset": pa.array(col("end_offset"), pa.uint64()),
            "events": pa.array(col("events"), pa.uint64()),
            "dead_letters": pa.array(col("dead_letters"), pa.uint64()),
            "min_occurred_at": ts(col("min_occurred_at")),
            "max_occurred_at": ts(col("max_occurred_at")),
            "ingested_at": ts(col("ingested_at")),
        }
    )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def archived_days(store: ObjectStore) -> list[date]:
    days = {k.split("/")[2].removeprefix("date=") for k in store.list_keys(f"{EVENTS_PREFIX}/")}
    return sorted(date.fromisoformat(d) for d in days)


def replay_settings(token: str, key: str) -> dict:
    """Replayed blocks must land even though identical blocks were inserted before (and are still in the dedup
    window): insert_deduplicate=0 does not bypass non_replicated_deduplication_window here, a token unique to
    the replay does."""
    return {"insert_deduplication_token": f"{token}:{key}", "max_partitions_per_insert_block": 0}


def replay_days(
    session: Session,
    store: ObjectStore,
    first: date,
    last: date,
    token: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Rebuild raw.events for [first, last] from the archive: each day is deleted, then reloaded; `token` is unique
    to the replay. Returns the days, files and events replayed."""
    counts = {"days": 0, "files": 0, "events": 0}
    days = _days(first, last)
    for i, day in enumerate(days):
        keys = store.list_keys(f"{EVENTS_PREFIX}/date={day.isoformat()}/")
        session.command(
            "DELETE FROM raw.events WHERE toDate(occurred_at) = {d:Date}",
            {"d": day},
            {"mutations_sync": 2, "lightweight_deletes_sync": 2},
        )
        for key in keys:
            table = pq.read_table(io.BytesIO(store.get_bytes(key)))
            session.insert_arrow("raw.events", table, settings=replay_settings(token, key))
            counts["events"] += table.num_rows
            counts["files"] += 1
        counts["days"] += 1
        if progress:
            progress(i + 1, len(days))
    return counts


def restore_ingestion(session: Session, store: ObjectStore, token: str) -> dict[str, int]:
    """Disaster recovery: put back the dead letters and the record of ingested ranges, so ingestion resumes where it
    stopped instead of starting over."""
    session.command("TRUNCATE TABLE raw.dead_letters")
    dead_letters = 0
    for key in store.list_keys(f"{DEAD_LETTERS_PREFIX}/"):
        table = pq.read_table(io.BytesIO(store.get_bytes(key)))
        session.insert_arrow("raw.dead_letters", table, settings=replay_settings(token, key))
        dead_letters += table.num_rows
    session.command("TRUNCATE TABLE raw.ingested_ranges")
    records = [json.loads(store.get_bytes(k)) for k in store.list_keys(f"{RANGES_PREFIX}/")]
    if records:
        settings = replay_settings(token, RANGES_PREFIX)
        session.insert_arrow("raw.ingested_ranges", _ranges_table(records), settings=settings)
    return {"dead letters": dead_letters, "ranges": len(records)}


def archive_report(store: ObjectStore, prefix: str, load_id: str, file: str, data: bytes) -> datetime:
    """Keep a loaded report (spend, sales) as it was, with when it was first loaded: a disaster-recovery replay
    reloads reports in their original order. Loading the same file again keeps its first time."""
    record_key = f"{prefix}/{load_id}.json"
    if store.exists(record_key):
        return datetime.fromisoformat(json.loads(store.get_bytes(record_key))["loaded_at"])
    loaded_at = datetime.now(UTC)
    store.put_bytes(f"{prefix}/{load_id}.csv", data)
    store.put_bytes(record_key, json.dumps({"file": file, "loaded_at": loaded_at.isoformat()}).encode())
    return loaded_at


def archived_reports(store: ObjectStore, prefix: str):
    """(record key, load id, file, loaded_at, bytes) of every report archive_report kept under `prefix`."""
    for key in store.list_keys(f"{prefix}/"):
        if key.endswith(".json"):
            record = json.loads(store.get_bytes(key))
            yield (
                key,
                key.rsplit("/", 1)[1].removesuffix(".json"),
                record["file"],
                datetime.fromisoformat(record["loaded_at"]),
                store.get_bytes(key.removesuffix(".json") + ".csv"),
            )

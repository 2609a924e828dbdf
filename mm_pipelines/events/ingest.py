"""Landing raw events in ClickHouse: exact offset ranges in, typed rows and dead letters out.

A batch is identified by its offset range; every insert it makes carries a dedup token derived
from that range, and the tables deduplicate retried inserts, so re-running a batch after a crash
at any point neither loses nor doubles a row. The recorded range is written last.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import pyarrow as pa

from mm_pipelines.events.archive import archive_range, archive_range_record
from mm_pipelines.events.bus import Batch, EventBus, EventBusError
from mm_pipelines.events.contract import error_sql, sql_string, typed_columns_sql
from mm_pipelines.royalties.warehouse import ensure_royalty_tables
from mm_pipelines.stores.clickhouse import Session, Warehouse
from mm_pipelines.stores.objects import ObjectStore

# Retried inserts are recognised by token within this many most recent blocks per table.
DEDUP_WINDOW = 10_000

RAW_TABLES = {
    "raw.events": f"""
        CREATE TABLE IF NOT EXISTS raw.events (
            event_id String,
            event_type LowCardinality(String),
            occurred_at DateTime64(3, 'UTC'),
            user_id String,
            channel LowCardinality(String),
            campaign_id String,
            creative_id String,
            asset_id String,
            order_id Nullable(String),
            revenue Nullable(Decimal(38, 10)),
            currency LowCardinality(Nullable(String)),
            sku Nullable(String),
            schema_version UInt16,
            extra Map(String, String),
            topic LowCardinality(String),
            partition UInt32,
            offset UInt64,
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (toDate(occurred_at), event_type, user_id, event_id)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    "raw.dead_letters": f"""
        CREATE TABLE IF NOT EXISTS raw.dead_letters (
            source LowCardinality(String),
            topic LowCardinality(String),
            partition UInt32,
            offset UInt64,
            file String,
            line UInt64,
            raw String,
            error String,
            dead_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (source, topic, partition, offset, file, line)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    "raw.ingested_ranges": f"""
        CREATE TABLE IF NOT EXISTS raw.ingested_ranges (
            topic LowCardinality(String),
            partition UInt32,
            start_offset UInt64,
            end_offset UInt64,
            events UInt64,
            dead_letters UInt64,
            min_occurred_at Nullable(DateTime64(3, 'UTC')),
            max_occurred_at Nullable(DateTime64(3, 'UTC')),
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        ORDER BY (topic, partition, start_offset)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    # Written before a batch inserts anything: after a crash the retry re-plans the very same range
    # (and so the same dedup tokens), even if more events have arrived since.
    "raw.ingest_intents": f"""
        CREATE TABLE IF NOT EXISTS raw.ingest_intents (
            topic LowCardinality(String),
            partition UInt32,
            start_offset UInt64,
            end_offset UInt64,
            planned_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        ORDER BY (topic, partition, start_offset)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    # Ad-platform spend reports; a restatement is a new load of the same key (stg_ad_spend keeps the latest).
    "raw.ad_spend": f"""
        CREATE TABLE IF NOT EXISTS raw.ad_spend (
            spend_date Date,
            channel LowCardinality(String),
            campaign_id String,
            amount Decimal(38, 10),
            currency LowCardinality(String),
            load_id String,
            file String,
            line UInt64,
            loaded_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (spend_date, channel, campaign_id, loaded_at)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
    # Scratch space for a batch being validated; one partition per batch, dropped when done.
    "raw.event_landing": f"""
        CREATE TABLE IF NOT EXISTS raw.event_landing (
            batch_id String,
            partition UInt32,
            offset UInt64,
            raw String,
            error String MATERIALIZED {error_sql('raw')}
        ) ENGINE = MergeTree
        PARTITION BY batch_id
        ORDER BY (partition, offset)""",
}


def ensure_raw_tables(session: Session) -> None:
    session.command("CREATE DATABASE IF NOT EXISTS raw")
    for ddl in RAW_TABLES.values():
        session.command(ddl)
    # Keep validation in step with the code when the table predates a change to the rules.
    session.command(f"ALTER TABLE raw.event_landing MODIFY COLUMN error String MATERIALIZED {error_sql('raw')}")
    # dbt reads the royalty sources too, and only ever appends to the ledger this creates.
    ensure_royalty_tables(session)


def _failpoint(name: str) -> None:
    """Fault injection for the crash tests: MM_FAILPOINT=<name> kills this process right here."""
    if os.environ.get("MM_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def batch_token(topic: str, partition: int, start: int, end: int) -> str:
    return f"{topic}:{partition}:{start}-{end}"


@dataclass
class IngestResult:
    topic: str
    partition: int
    start: int
    end: int
    events: int
    dead_letters: int
    dates: list[date] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _land(session: Session, batch_id: str, partition: int, offsets: list[int], values: list[bytes]) -> None:
    session.command(f"ALTER TABLE raw.event_landing DROP PARTITION {sql_string(batch_id)}")
    table = pa.table(
        {
            "batch_id": pa.array([batch_id] * len(values), pa.string()).dictionary_encode(),
            "partition": pa.array([partition] * len(values), pa.uint32()),
            "offset": pa.array(offsets, pa.uint64()),
            "raw": pa.array(values, pa.binary()),
        }
    )
    # Validation (the MATERIALIZED error column) runs during this insert. Short-circuit evaluation
    # would re-parse each message in every multiIf branch; evaluating eagerly parses it once (8x faster).
    session.insert_arrow("raw.event_landing", table, settings={"short_circuit_function_evaluation": "disable"})


def ingest_batch(session: Session, batch: Batch, archive: ObjectStore | None = None) -> IngestResult:
    """Validate and insert one offset range (and archive it); safe to repeat for the same range."""
    token = batch_token(batch.topic, batch.partition, batch.start, batch.end)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    _land(session, token, batch.partition, batch.offsets, batch.values)
    seconds["land"] = time.perf_counter() - t0
    _failpoint("landed")
    params = {"batch": token, "topic": batch.topic}
    # Late events may span hundreds of months; ClickHouse's per-block partition cap must not fail them.
    insert_settings = {"max_partitions_per_insert_block": 0, "insert_deduplicate": 1}
    t0 = time.perf_counter()
    session.command(
        f"""INSERT INTO raw.events
        SELECT {typed_columns_sql('raw')}, {{topic:String}}, partition, offset, now64(3, 'UTC')
        FROM raw.event_landing WHERE batch_id = {{batch:String}} AND error = ''""",
        params,
        {**insert_settings, "insert_deduplication_token": f"{token}:events"},
    )
    _failpoint("events_inserted")
    session.command(
        """INSERT INTO raw.dead_letters
        SELECT 'bus', {topic:String}, partition, offset, '', 0, raw, error, now64(3, 'UTC')
        FROM raw.event_landing WHERE batch_id = {batch:String} AND error != ''""",
        params,
        {**insert_settings, "insert_deduplication_token": f"{token}:dead_letters"},
    )
    seconds["validate_insert"] = time.perf_counter() - t0
    _failpoint("dead_letters_inserted")
    good, dead, lo, hi = session.query_rows(
        """SELECT countIf(error = ''), countIf(error != ''),
                   minIf(parseDateTime64BestEffortOrNull(JSONExtractString(raw, 'occurred_at'), 3, 'UTC'), error = ''),
                   maxIf(parseDateTime64BestEffortOrNull(JSONExtractString(raw, 'occurred_at'), 3, 'UTC'), error = '')
            FROM raw.event_landing WHERE batch_id = {batch:String}""",
        params,
    )[0]
    dates = [
        r[0]
        for r in session.query_rows(
            """SELECT DISTINCT toDate(parseDateTime64BestEffort(JSONExtractString(raw, 'occurred_at'), 3, 'UTC')) AS d
            FROM raw.event_landing WHERE batch_id = {batch:String} AND error = '' ORDER BY d""",
            params,
        )
    ]
    record = {
        "topic": batch.topic, "partition": batch.partition, "start_offset": batch.start, "end_offset": batch.end,
        "events": good, "dead_letters": dead, "min_occurred_at": lo, "max_occurred_at": hi,
        "ingested_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
    if archive is not None:
        # The archive is complete before the range counts as ingested: a crash in between re-archives.
        t0 = time.perf_counter()
        archive_range(session, archive, batch.topic, batch.partition, batch.start, batch.end)
        archive_range_record(archive, record)
        seconds["archive"] = time.perf_counter() - t0
        _failpoint("archived")
    session.command(
        """INSERT INTO raw.ingested_ranges VALUES
        ({topic:String}, {partition:UInt32}, {start_offset:UInt64}, {end_offset:UInt64}, {events:UInt64}, {dead_letters:UInt64},
         {min_occurred_at:Nullable(DateTime64(3, 'UTC'))}, {max_occurred_at:Nullable(DateTime64(3, 'UTC'))},
         {ingested_at:DateTime64(3, 'UTC')})""",
        record,
        {"insert_deduplication_token": f"{token}:range"},
    )
    _failpoint("range_recorded")
    session.command(f"ALTER TABLE raw.event_landing DROP PARTITION {sql_string(token)}")
    return IngestResult(batch.topic, batch.partition, batch.start, batch.end, good, dead, dates, seconds)


def ingested_offsets(session: Session, topic: str) -> dict[int, int]:
    """The next offset to ingest per partition (the end of the last recorded range)."""
    rows = session.query_rows(
        "SELECT partition, max(end_offset) FROM raw.ingested_ranges WHERE topic = {topic:String} GROUP BY partition",
        {"topic": topic},
    )
    return {int(p): int(end) for p, end in rows}


def record_intent(session: Session, topic: str, partition: int, start: int, end: int) -> None:
    session.command(
        "INSERT INTO raw.ingest_intents VALUES ({topic:String}, {p:UInt32}, {start:UInt64}, {end:UInt64}, now64(3, 'UTC'))",
        {"topic": topic, "p": partition, "start": start, "end": end},
        {"insert_deduplication_token": f"{batch_token(topic, partition, start, end)}:intent"},
    )


def open_intents(session: Session, topic: str) -> dict[int, dict[int, int]]:
    """Planned ranges not yet recorded as ingested: partition -> {start: end}."""
    rows = session.query_rows(
        """SELECT i.partition, i.start_offset, i.end_offset
        FROM raw.ingest_intents AS i FINAL
        LEFT ANTI JOIN (SELECT partition, start_offset FROM raw.ingested_ranges WHERE topic = {topic:String}) AS r
            ON i.partition = r.partition AND i.start_offset = r.start_offset
        WHERE i.topic = {topic:String}""",
        {"topic": topic},
    )
    intents: dict[int, dict[int, int]] = {}
    for p, start, end in rows:
        intents.setdefault(int(p), {})[int(start)] = int(end)
    return intents


def pending_ranges(
    ingested: dict[int, int],
    end_offsets: dict[int, int],
    max_batch: int,
    intents: dict[int, dict[int, int]] | None = None,
) -> list[tuple[int, int, int]]:
    """Bounded (partition, start, end) ranges between what is ingested and the end of each partition.

    A range that was planned before (an open intent) is planned again exactly as it was."""
    ranges = []
    for partition in sorted(end_offsets):
        start, end = ingested.get(partition, 0), end_offsets[partition]
        planned = (intents or {}).get(partition, {})
        while start < end:
            stop = planned.get(start) or min(start + max_batch, end)
            ranges.append((partition, start, stop))
            start = stop
    return ranges


@dataclass
class FileValidation:
    valid_lines: list[int]
    keys: list[bytes]
    invalid: list[tuple[int, str]]  # (line number, reason)


def validate_lines(session: Session, batch_id: str, lines: list[bytes]) -> FileValidation:
    """Validate the lines of a file with the same rules as bus ingestion; line numbers are 1-based."""
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    _land(session, batch_id, 0, [n for n, _ in numbered], [line for _, line in numbered])
    try:
        result = session.query_arrow(
            """SELECT offset AS line, error, JSONExtractString(raw, 'user_id') AS user_id
            FROM raw.event_landing WHERE batch_id = {batch:String} ORDER BY offset""",
            {"batch": batch_id},
        ).to_pydict()
    finally:
        session.command(f"ALTER TABLE raw.event_landing DROP PARTITION {sql_string(batch_id)}")
    valid, keys, invalid = [], [], []
    for line, error, user in zip(result["line"], result["error"], result["user_id"]):
        if error:
            invalid.append((line, error))
        else:
            valid.append(line)
            keys.append(user.encode() if isinstance(user, str) else user)
    return FileValidation(valid, keys, invalid)


def record_file_dead_letters(session: Session, file: str, token: str, lines: list[bytes], invalid: list[tuple[int, str]]) -> None:
    if not invalid:
        return
    table = pa.table(
        {
            "source": ["file"] * len(invalid),
            "topic": [""] * len(invalid),
            "partition": pa.array([0] * len(invalid), pa.uint32()),
            "offset": pa.array([0] * len(invalid), pa.uint64()),
            "file": [file] * len(invalid),
            "line": pa.array([n for n, _ in invalid], pa.uint64()),
            "raw": pa.array([lines[n - 1] for n, _ in invalid], pa.binary()),
            "error": [reason for _, reason in invalid],
        }
    )
    session.insert_arrow(
        "raw.dead_letters",
        table,
        settings={"insert_deduplication_token": f"{token}:dead_letters"},
    )


@dataclass
class IngestRun:
    topic: str
    ranges: list[tuple[int, int, int]] = field(default_factory=list)
    events: int = 0
    dead_letters: int = 0
    dates: set[date] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("fetch", "land", "validate_insert", "archive", "total"), 0.0))
    lag: dict[int, int] = field(default_factory=dict)

    @property
    def messages_per_s(self) -> float:
        total = self.seconds["total"]
        return (self.events + self.dead_letters) / total if total > 0 else 0.0


def ingest_pending(
    warehouse: Warehouse,
    bus: EventBus,
    topic: str,
    max_batch: int,
    archive: ObjectStore | None = None,
    up_to: dict[int, int] | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> IngestRun:
    """Ingest everything between the recorded offsets and the end of the topic (or, with `up_to`,
    of the listed partitions up to those offsets). The warehouse is held per batch only, never
    while the bus is read."""
    with warehouse.session(log) as s:
        ensure_raw_tables(s)
        done = ingested_offsets(s, topic)
        intents = open_intents(s, topic)
    run = IngestRun(topic)
    try:
        ends = bus.end_offsets(topic)
    except EventBusError as e:
        log(f"Nothing to ingest: {e}")
        return run
    targets = ends
    if up_to is not None:
        # A range always starts where the partition's ingestion stopped, so boundaries stay contiguous
        # whichever run gets there first; a range already covered is a no-op.
        targets = {p: min(end, ends.get(p, 0)) for p, end in up_to.items()}
    run.ranges = pending_ranges(done, targets, max_batch, intents)
    started = time.perf_counter()
    for p, start, end in run.ranges:
        with warehouse.session(log) as s:
            record_intent(s, topic, p, start, end)
        t0 = time.perf_counter()
        batch = bus.read_range(topic, p, start, end)
        run.seconds["fetch"] += time.perf_counter() - t0
        with warehouse.session(log) as s:
            result = ingest_batch(s, batch, archive)
        run.events += result.events
        run.dead_letters += result.dead_letters
        run.dates.update(result.dates)
        for k, v in result.seconds.items():
            run.seconds[k] += v
        done[p] = end
        log(f"{topic}[{p}] {start}-{end}: {result.events} events, {result.dead_letters} dead letters")
    run.seconds["total"] = time.perf_counter() - started
    run.lag = {p: end - done.get(p, 0) for p, end in ends.items()}
    if run.ranges:
        bus.commit(topic, {p: done[p] for p, _, _ in run.ranges})
    return run

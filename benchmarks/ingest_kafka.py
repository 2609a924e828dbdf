"""Ingestion from a real Kafka broker into chDB; prints its figures.

    scripts/services/kafka.sh start
    python benchmarks/ingest_kafka.py [--events 1000000] [--bootstrap 127.0.0.1:19092]

Produces N realistic events to a fresh topic, then ingests them exactly as the raw/events asset
does (offset ranges, validation in ClickHouse, dedup tokens, intents), with and without the Parquet
archive, and prints sustained events/s with a breakdown: Kafka fetch, landing + validation, insert,
archive. Fetching and archiving run beside validation, so the parts add up to more than the total.
The embedded log path is measured by benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=500_000)
    args = parser.parse_args()

    from mm_pipelines.events.generator import generate_events, to_jsonl
    from mm_pipelines.events.ingest import ingest_pending
    from mm_pipelines.stores.bus import KafkaEventBus
    from mm_pipelines.stores.clickhouse import Warehouse
    from mm_pipelines.stores.objects import LocalObjectStore

    bus = KafkaEventBus(f"kafka://{args.bootstrap}")
    topic = f"mm.bench.{uuid.uuid4().hex[:8]}"
    bus.ensure_topic(topic, args.partitions)
    with console.status(f"Generating {args.events:,} events…"):
        events = generate_events(events=args.events, seed=1)
        records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(events, to_jsonl(events))]
        del events
    with console.status("Producing to Kafka (idempotent producer, acks=all)…"):
        t0 = time.perf_counter()
        for i in range(0, len(records), 100_000):
            bus.produce(topic, records[i : i + 100_000])
        produce_s = time.perf_counter() - t0
    n = len(records)
    del records
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        with console.status("Ingesting without archive…"):
            plain = ingest_pending(Warehouse(f"chdb://{Path(tmp) / 'wh1'}"), bus, topic, args.max_batch)
        with console.status("Ingesting with the Parquet archive…"):
            archived = ingest_pending(
                Warehouse(f"chdb://{Path(tmp) / 'wh2'}"),
                bus,
                topic,
                args.max_batch,
                LocalObjectStore(f"file://{tmp}/objects"),
            )
    bus.close()

    table = Table(title=f"Kafka → ClickHouse (chDB), {n:,} events, {args.partitions} partitions")
    table.add_column("measure")
    table.add_column("no archive", justify="right")
    table.add_column("with archive", justify="right")
    table.add_row("produce (librdkafka, idempotent)", f"{produce_s:.1f} s ({n / produce_s:,.0f}/s)", "")
    table.add_row(
        "ingest end to end", *(f"{r.seconds['total']:.1f} s ({r.messages_per_s:,.0f}/s)" for r in (plain, archived))
    )
    for k, label in (
        ("fetch", "  Kafka fetch (librdkafka; overlaps validation)"),
        ("land", "  land + parse + validate (ClickHouse)"),
        ("validate_insert", "  insert events + dead letters"),
        ("archive", "  Parquet archive (overlaps the next range)"),
    ):
        table.add_row(label, *(f"{r.seconds[k]:.2f} s" for r in (plain, archived)))
    console.print(table)


if __name__ == "__main__":
    main()

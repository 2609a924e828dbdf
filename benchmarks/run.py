"""Platform benchmarks on the embedded defaults; prints its figures.

    python benchmarks/run.py [--events 1000000] [--baseline-events 200000]

1. Embedded ingestion: the local event log → raw.events in chDB (validation in ClickHouse),
   end to end in events/s with a breakdown (log read, landing, validate+insert).
   Baseline in the same run: the same events parsed and validated per event in Python
   (json.loads per message) and inserted as typed Arrow columns.
2. The slice's dbt build (stg_events + campaign_performance_daily + tests) over those events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def produce(bus, topic: str, events: list[dict], partitions: int) -> float:
    from mm_pipelines.events.generator import to_jsonl

    bus.ensure_topic(topic, partitions)
    records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(events, to_jsonl(events))]
    t0 = time.perf_counter()
    bus.produce(topic, records)
    return time.perf_counter() - t0


def python_baseline(bus, warehouse, topic: str, limit: int) -> dict:
    """Per-event Python: json.loads, checks, typed columns, one Arrow insert per partition range."""
    from mm_pipelines.events.event_schema import CURRENCIES, EVENT_COLUMNS, EVENT_TYPES

    with warehouse.session() as s:
        s.command("CREATE TABLE IF NOT EXISTS raw.events_baseline AS raw.events")
    ends = bus.end_offsets(topic)
    per_partition = max(1, limit // len(ends))
    t0 = time.perf_counter()
    n = 0
    for p, end in ends.items():
        batch = bus.read_range(topic, p, 0, min(end, per_partition))
        cols: dict[str, list] = {k: [] for k in (*EVENT_COLUMNS, "topic", "partition", "offset", "ingested_at")}
        now = datetime.now(UTC)
        for offset, raw in zip(batch.offsets, batch.values):
            e = json.loads(raw)
            if e.get("event_type") not in EVENT_TYPES or (e.get("currency") and e["currency"] not in CURRENCIES):
                continue
            ts = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
            for k in ("event_id", "event_type", "user_id", "channel", "campaign_id", "creative_id", "asset_id"):
                cols[k].append(e.get(k, ""))
            cols["occurred_at"].append(ts)
            cols["order_id"].append(e.get("order_id"))
            cols["revenue"].append(Decimal(e["revenue"]) if e.get("revenue") is not None else None)
            cols["currency"].append(e.get("currency"))
            cols["sku"].append(e.get("sku"))
            cols["schema_version"].append(int(e.get("schema_version", 1)))
            cols["extra"].append([])
            cols["topic"].append(topic)
            cols["partition"].append(p)
            cols["offset"].append(offset)
            cols["ingested_at"].append(now)
            n += 1
        table = pa.table(
            {
                **{
                    k: pa.array(v, pa.string())
                    for k, v in cols.items()
                    if k
                    in (
                        "event_id",
                        "event_type",
                        "user_id",
                        "channel",
                        "campaign_id",
                        "creative_id",
                        "asset_id",
                        "order_id",
                        "currency",
                        "sku",
                        "topic",
                    )
                },
                "occurred_at": pa.array(cols["occurred_at"], pa.timestamp("ms", "UTC")),
                "revenue": pa.array(cols["revenue"], pa.decimal128(38, 10)),
                "schema_version": pa.array(cols["schema_version"], pa.uint16()),
                "extra": pa.array(cols["extra"], pa.map_(pa.string(), pa.string())),
                "partition": pa.array(cols["partition"], pa.uint32()),
                "offset": pa.array(cols["offset"], pa.uint64()),
                "ingested_at": pa.array(cols["ingested_at"], pa.timestamp("ms", "UTC")),
            }
        )
        with warehouse.session() as s:
            s.insert_arrow("raw.events_baseline", table)
    return {"events": n, "total": time.perf_counter() - t0}


def dbt_build(home: Path) -> float:
    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.resources import mm_dbt_executable

    project = dbt_project_dir()
    t0 = time.perf_counter()
    subprocess.run(
        [
            mm_dbt_executable(),
            "build",
            "--select",
            "+campaign_performance_daily",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(home / "dbt-target"),
            "--quiet",
        ],
        check=True,
        env={**os.environ, "MM_CLICKHOUSE_URL": f"chdb://{home / 'warehouse'}"},
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--baseline-events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=500_000)
    args = parser.parse_args()

    from mm_pipelines.events.generator import generate_events
    from mm_pipelines.events.ingest import ingest_pending
    from mm_pipelines.stores.bus import LocalEventLog
    from mm_pipelines.stores.clickhouse import Warehouse

    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        home = Path(tmp)
        bus = LocalEventLog(f"log://{home / 'eventlog'}")
        warehouse = Warehouse(f"chdb://{home / 'warehouse'}")
        topic = "mm.events.v1"
        with console.status(f"Generating {args.events:,} events…"):
            t0 = time.perf_counter()
            events = generate_events(events=args.events, seed=1)
            gen_s = time.perf_counter() - t0
        with console.status("Producing to the embedded log…"):
            produce_s = produce(bus, topic, events, args.partitions)
        n = len(events)
        del events
        with console.status("Ingesting (ClickHouse-side validation)…"):
            ing = ingest_pending(warehouse, bus, topic, args.max_batch)
        with console.status(f"Baseline: per-event Python validation on {args.baseline_events:,} events…"):
            base = python_baseline(bus, warehouse, topic, args.baseline_events)
        with console.status("dbt build of the slice…"):
            dbt_s = dbt_build(home)
        rows = warehouse.query_rows("SELECT count() FROM marts.campaign_performance_daily")[0][0]

    table = Table(title=f"Embedded platform, {n:,} events, {os.cpu_count()} cores")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("generate events", f"{gen_s:.1f} s ({n / gen_s:,.0f} events/s)")
    table.add_row("produce to embedded log", f"{produce_s:.1f} s ({n / produce_s:,.0f} events/s)")
    table.add_row(
        "ingest: log → raw.events, end to end", f"{ing.seconds['total']:.1f} s ({ing.messages_per_s:,.0f} events/s)"
    )
    table.add_row("  read ranges from the log (overlaps validation)", f"{ing.seconds['fetch']:.2f} s")
    table.add_row("  land + parse + validate (ClickHouse SQL)", f"{ing.seconds['land']:.2f} s")
    table.add_row("  insert events + dead letters", f"{ing.seconds['validate_insert']:.2f} s")
    table.add_row("  events / dead letters", f"{ing.events:,} / {ing.dead_letters:,}")
    base_rate = base["events"] / base["total"]
    table.add_row(
        f"baseline: per-event Python ({base['events']:,} events)", f"{base['total']:.1f} s ({base_rate:,.0f} events/s)"
    )
    table.add_row("speed-up over baseline", f"{ing.messages_per_s / base_rate:.1f}×")
    table.add_row("dbt build of the slice (seed, 2 models, tests)", f"{dbt_s:.1f} s ({rows:,} mart rows)")
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())

"""Produce → visible-in-raw latency with the real sensor and daemon running; prints p50/p95.

    scripts/services/kafka.sh start
    python benchmarks/latency_kafka.py [--seconds 120] [--rate 2000] [--bootstrap 127.0.0.1:19092]

Starts `mm dev` (Dagster webserver + daemon, raw_events_sensor on) against a fresh topic on a fresh
embedded platform, produces events at a steady rate stamped with their send time, and measures, for
every event, the time from send to its row being inserted in raw.events (ingested_at).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid

from dev_server import start_dev, stop_dev
from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    args = parser.parse_args()

    from mm_pipelines.events.generator import generate_events
    from mm_pipelines.stores.bus import KafkaEventBus
    from mm_pipelines.stores.clickhouse import Warehouse

    topic = f"mm.latency.{uuid.uuid4().hex[:8]}"
    # Run workers may still be writing their logs when `mm dev` stops: leftovers must not hide the figures.
    with tempfile.TemporaryDirectory(prefix="mm-latency-", ignore_cleanup_errors=True) as home:
        env = {**os.environ, "MM_HOME": home, "MM_EVENT_BUS": f"kafka://{args.bootstrap}", "MM_EVENTS_TOPIC": topic}
        os.environ.update(env)
        bus = KafkaEventBus(f"kafka://{args.bootstrap}")
        bus.ensure_topic(topic, 4)
        dev = start_dev(env)
        try:
            events = generate_events(events=args.seconds * args.rate, seed=5)
            with console.status("Waiting for the Dagster daemon to start…"):
                time.sleep(20)
            sent = 0
            started = time.monotonic()
            with console.status(f"Producing {args.rate:,} events/s for {args.seconds}s…"):
                while sent < len(events):
                    due = min(len(events), int((time.monotonic() - started) * args.rate))
                    chunk = events[sent:due]
                    now_ms = int(time.time() * 1000)
                    bus.produce(
                        topic,
                        [(e["user_id"].encode(), json.dumps({**e, "sent_at_ms": now_ms}).encode()) for e in chunk],
                    )
                    sent = due
                    time.sleep(0.1)
            warehouse = Warehouse(f"chdb://{home}/warehouse")
            deadline = time.monotonic() + 300
            with console.status("Waiting for every event to be ingested…"):
                while time.monotonic() < deadline:
                    try:
                        if warehouse.query_rows("SELECT count() FROM raw.events")[0][0] >= sent:
                            break
                    except Exception:  # tables not created yet
                        pass
                    time.sleep(3)
            p50, p95, p99, worst, n, runs = warehouse.query_rows(
                """SELECT quantilesExact(0.5)(l)[1], quantilesExact(0.95)(l)[1], quantilesExact(0.99)(l)[1], max(l),
                          count(), (SELECT count() FROM raw.ingested_ranges)
                   FROM (SELECT dateDiff('millisecond', fromUnixTimestamp64Milli(toInt64(extra['sent_at_ms']), 'UTC'),
                                         ingested_at) AS l
                         FROM raw.events)"""
            )[0]
        finally:
            stop_dev(dev)
            bus.close()
    table = Table(
        title=f"Produce → visible in raw.events, sensor + daemon running ({args.rate:,}/s for {args.seconds}s)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("events produced / ingested", f"{sent:,} / {n:,}")
    table.add_row("offset ranges ingested", f"{runs:,}")
    for label, ms in (("p50", p50), ("p95", p95), ("p99", p99), ("max", worst)):
        table.add_row(f"latency {label}", f"{ms / 1000:.1f} s")
    console.print(table)


if __name__ == "__main__":
    main()

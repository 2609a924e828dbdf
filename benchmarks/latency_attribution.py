"""Conversion produced → its credits visible in marts.attribution_credits, with the sensors and automation
running (`mm dev`: raw_events_sensor + warehouse_automation_sensor); prints p50/p95 against the 60 s objective,
and where the time goes: the runs launched, by kind, with their median wait to start (queue and worker
start-up) and run time.

    python benchmarks/latency_attribution.py [--seconds 180] [--rate 200] [--bootstrap 127.0.0.1:19092 | --embedded]

Events are stamped with the current time (touches up to an hour before their user's conversion) and their
send time; a poller records when each conversion's first credit row appears.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dev_server import start_dev, stop_dev
from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--embedded", action="store_true", help="use the embedded event log instead of Kafka")
    args = parser.parse_args()

    from mm_pipelines.events.generator import as_live, generate_events
    from mm_pipelines.stores.bus import open_event_bus
    from mm_pipelines.stores.clickhouse import Warehouse

    topic = f"mm.latency.{uuid.uuid4().hex[:8]}"
    rng = random.Random(3)
    # Run workers may still be writing their logs when `mm dev` stops: leftovers must not hide the figures.
    with tempfile.TemporaryDirectory(prefix="mm-attr-latency-", ignore_cleanup_errors=True) as home:
        bus_url = f"log://{home}/eventlog" if args.embedded else f"kafka://{args.bootstrap}"
        env = {**os.environ, "MM_HOME": home, "MM_EVENT_BUS": bus_url, "MM_EVENTS_TOPIC": topic}
        os.environ.update(env)
        bus = open_event_bus(bus_url)
        bus.ensure_topic(topic, 4)
        with console.status("Building the empty platform once (what a deployment's first run does)…"):
            subprocess.run(
                [str(Path(sys.executable).parent / "mm"), "materialize"], env=env, check=True, capture_output=True
            )
        dev = start_dev(env)
        warehouse = Warehouse(f"chdb://{home}/warehouse")
        sent_at: dict[str, float] = {}
        seen_at: dict[str, float] = {}

        def poll() -> None:
            pending = [c for c in sent_at if c not in seen_at]
            if not pending:
                return
            try:
                rows = warehouse.query_rows(
                    "SELECT DISTINCT conversion_id FROM marts.attribution_credits "
                    "WHERE conversion_id IN {ids:Array(String)}",
                    {"ids": pending},
                )
            except Exception:  # the mart does not exist yet
                return
            now = time.time()
            for (cid,) in rows:
                seen_at.setdefault(cid, now)

        try:
            events = generate_events(events=args.seconds * args.rate, seed=5)
            with console.status("Waiting for the Dagster daemon to start…"):
                time.sleep(25)
            sent, started = 0, time.monotonic()
            with console.status(f"Producing {args.rate:,} events/s for {args.seconds}s…") as status:
                while sent < len(events):
                    due = min(len(events), int((time.monotonic() - started) * args.rate))
                    now = datetime.now(UTC)
                    chunk = as_live(events[sent:due], now, rng)
                    bus.produce(topic, [(e["user_id"].encode(), json.dumps(e).encode()) for e in chunk])
                    for e in chunk:
                        if e["event_type"] == "conversion":
                            sent_at[e["event_id"]] = time.time()
                    sent = due
                    poll()
                    status.update(f"Producing… {sent:,} events, {len(seen_at):,}/{len(sent_at):,} conversions credited")
                    time.sleep(2)
            deadline = time.monotonic() + 600
            with console.status("Waiting for every conversion to be credited…") as status:
                while time.monotonic() < deadline and len(seen_at) < len(sent_at):
                    poll()
                    status.update(f"{len(seen_at):,}/{len(sent_at):,} conversions credited")
                    time.sleep(2)
        finally:
            timeline = run_timeline(Path(home) / "dagster")
            stop_dev(dev)
            bus.close()
    lags = sorted(seen_at[c] - sent_at[c] for c in seen_at)
    table = Table(
        title="Conversion produced → credited in marts.attribution_credits "
        f"({args.rate:,} events/s for {args.seconds}s, {'embedded log' if args.embedded else 'Kafka'})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("events produced", f"{sent:,}")
    table.add_row("conversions produced / credited", f"{len(sent_at):,} / {len(seen_at):,}")
    if lags:
        q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]  # noqa: E731
        for label, p in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
            table.add_row(f"latency {label}", f"{q(p):.1f} s")
        table.add_row("objective (p95)", "60 s: " + ("met" if q(0.95) <= 60 else "NOT met"))
    console.print(table)
    console.print(timeline)


def run_timeline(dagster_home: Path) -> Table:
    """Where the lag goes: per kind of run, how many, how long each waited in the queue and ran."""
    from statistics import median

    from dagster import DagsterInstance, RunsFilter

    kinds: dict[str, list[tuple[float, float]]] = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records(RunsFilter()):
            run = record.dagster_run
            if record.start_time is None or record.end_time is None:
                continue
            keys = sorted({k.path[-1] for k in run.asset_selection or ()})
            kind = (
                run.job_name if run.job_name != "__ASSET_JOB" else ", ".join(keys[:3]) + (" …" if len(keys) > 3 else "")
            )
            kinds.setdefault(kind, []).append(
                (record.start_time - record.create_timestamp.timestamp(), record.end_time - record.start_time)
            )
    table = Table(title="Runs while producing (median seconds)")
    for column in ("run", "count", "queued + worker start", "ran"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for kind, spans in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        table.add_row(kind, str(len(spans)), f"{median(q for q, _ in spans):.1f}", f"{median(r for _, r in spans):.1f}")
    return table


if __name__ == "__main__":
    main()

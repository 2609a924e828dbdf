"""Reading one offset range of each partition, one after another, as an ingestion run does: the bus's
fetch.wait.max.ms (10 ms) against librdkafka's default (500 ms), in the same run on the same topic.

    scripts/services/kafka.sh start
    python benchmarks/kafka_range_reads.py [--partitions 4] [--events 8000] [--repeats 3] [--bootstrap 127.0.0.1:19092]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from statistics import median

from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=8000, help="events produced, spread over the partitions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    args = parser.parse_args()

    from mm_pipelines.stores.bus import FETCH_WAIT_MS, LIBRDKAFKA_FETCH_WAIT_MS, KafkaEventBus

    url = f"kafka://{args.bootstrap}"
    topic = f"mm.bench.reads.{uuid.uuid4().hex[:8]}"
    producer = KafkaEventBus(url)
    producer.ensure_topic(topic, args.partitions)
    producer.produce(
        topic, [(f"u{i}".encode(), json.dumps({"i": i, "pad": "x" * 300}).encode()) for i in range(args.events)]
    )
    ends = producer.end_offsets(topic)
    producer.close()

    table = Table(
        title=f"{args.partitions} ranges ({sum(ends.values()):,} events) read one after another, "
        f"median of {args.repeats}"
    )
    for column in ("fetch.wait.max.ms", "seconds", "events read"):
        table.add_column(column, justify="right")
    for wait_ms, label in ((LIBRDKAFKA_FETCH_WAIT_MS, "librdkafka default"), (FETCH_WAIT_MS, "the bus")):
        bus = KafkaEventBus(url, fetch_wait_ms=wait_ms)
        seconds, read = [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            read = sum(len(bus.read_range(topic, p, 0, end).offsets) for p, end in sorted(ends.items()))
            seconds.append(time.perf_counter() - started)
        bus.close()
        table.add_row(
            f"{wait_ms} ({label})",
            f"{median(seconds):.3f}",
            f"{read:,}",
        )
    console.print(table)


if __name__ == "__main__":
    main()

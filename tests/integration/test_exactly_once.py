"""Exactly-once ingestion from a real Kafka broker, whatever crashes, retries or duplicates happen."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from mm_pipelines.assets.partitions import range_tags
from mm_pipelines.events.generator import generate_events, to_jsonl
from mm_pipelines.platform import Platform

pytestmark = pytest.mark.integration

MM = str(Path(sys.executable).parent / "mm")
ROOT = Path(__file__).resolve().parents[2]
FAILPOINTS = ["landed", "events_inserted", "dead_letters_inserted", "range_recorded"]


@pytest.fixture
def kafka_platform(mm_home, kafka_bootstrap, kafka_topic, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", f"kafka://{kafka_bootstrap}")
    monkeypatch.setenv("MM_EVENTS_TOPIC", kafka_topic)
    platform = Platform.from_env()
    platform.bus.ensure_topic(kafka_topic, 4)
    yield platform
    platform.close()


def produce(platform, seed: int, n: int, bad: int) -> tuple[int, int]:
    events = generate_events(events=n, seed=seed)
    records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(events, to_jsonl(events))]
    records += [(b"bad", f'{{"event_id": "bad-{seed}-{i}", "user_id": "x{i}@example.com"}}'.encode()) for i in range(bad)]
    platform.bus.produce(platform.settings.events_topic, records)
    return len(events), bad


def ledger(platform) -> dict:
    with platform.warehouse.session() as s:
        raw, ids = s.query_rows("SELECT count(), uniqExact(event_id) FROM raw.events")[0]
        dead = s.scalar("SELECT count() FROM raw.dead_letters")
        ranges = s.query_rows("SELECT partition, start_offset, end_offset, events, dead_letters FROM raw.ingested_ranges FINAL ORDER BY partition, start_offset")
    return {"raw": raw, "ids": ids, "dead": dead, "ranges": ranges}


def test_sigkill_at_every_step_of_a_batch_never_loses_or_doubles_a_row(kafka_platform):
    good, bad = 0, 0
    for i, failpoint in enumerate(FAILPOINTS):
        g, b = produce(kafka_platform, seed=100 + i, n=1500, bad=7)
        good, bad = good + g, bad + b
        crashed = subprocess.run([MM, "materialize", "raw/events"], env={**os.environ, "MM_FAILPOINT": failpoint}, capture_output=True, timeout=300)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    done = subprocess.run([MM, "materialize", "raw/events"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = ledger(kafka_platform)
    assert state["raw"] == state["ids"] == good
    assert state["dead"] == bad
    ends = kafka_platform.bus.end_offsets(kafka_platform.settings.events_topic)
    assert sum(r[3] + r[4] for r in state["ranges"]) == sum(ends.values()) == good + bad
    for p, end in ends.items():  # recorded ranges tile each partition exactly
        mine = [(s, e) for q, s, e, *_ in state["ranges"] if q == p]
        assert mine[0][0] == 0 and mine[-1][1] == end and all(a[1] == b[0] for a, b in zip(mine, mine[1:]))


def test_the_same_events_produced_twice_are_one_row_each_for_analysts(kafka_platform):
    good, _ = produce(kafka_platform, seed=200, n=800, bad=0)
    produce(kafka_platform, seed=200, n=800, bad=0)  # a producer retrying the whole batch
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    result = defs.resolve_job_def("platform_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), tags=range_tags(date(2026, 10, 1), date(2026, 10, 28))
    )
    assert result.success
    rows = kafka_platform.warehouse.query_rows("SELECT count(), uniqExact(event_id) FROM staging.stg_events")[0]
    assert rows == (good, good)
    assert kafka_platform.warehouse.query_rows("SELECT count() FROM raw.events")[0][0] == 2 * good  # raw keeps every delivery


def test_half_malformed_or_pii_messages_are_all_accounted_for(kafka_platform):
    good, bad = produce(kafka_platform, seed=300, n=500, bad=0)
    malformed = [b"{", b"null", b'{"event_id": "m1"}', b'{"event_id":"c","event_type":"click","occurred_at":"2026-10-01T00:00:00Z","user_id":"u","channel":"x","campaign_id":"c","creative_id":"k","card":"4111-1111-1111-1111"}']
    bad_records = [(f"u{i}".encode(), malformed[i % len(malformed)]) for i in range(good)]
    kafka_platform.bus.produce(kafka_platform.settings.events_topic, bad_records)
    assert subprocess.run([MM, "materialize", "raw/events"], capture_output=True, timeout=300).returncode == 0
    state = ledger(kafka_platform)
    assert state["raw"] == good and state["dead"] == len(bad_records)
    reasons = dict(kafka_platform.warehouse.query_rows("SELECT error, count() FROM raw.dead_letters GROUP BY error"))
    assert set(reasons) == {
        "malformed JSON: the message is not a JSON document",
        "malformed event: the message is JSON but not an object",
        "missing required field event_type",
        "PII: a payment card number appears in the event",
    }
    offsets = kafka_platform.warehouse.query_rows("SELECT count(DISTINCT (partition, offset)) FROM raw.dead_letters")[0][0]
    assert offsets == len(bad_records)


def test_a_broker_restart_during_ingestion_loses_and_doubles_nothing(kafka_platform):
    good, bad = produce(kafka_platform, seed=400, n=20_000, bad=10)
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    outcome = {}

    def ingest():
        outcome["result"] = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=DagsterInstance.ephemeral(), run_config={"ops": {"raw__events": {"config": {"max_batch": 400}}}}, raise_on_error=False
        )

    worker = threading.Thread(target=ingest)
    worker.start()
    time.sleep(2)
    assert worker.is_alive(), "ingestion finished before the broker restarted: produce more events"
    subprocess.run([str(ROOT / "scripts" / "services" / "kafka.sh"), "restart"], check=True, timeout=180)
    worker.join(timeout=600)
    if not outcome["result"].success:  # a run that gave up during the outage is simply run again
        outcome["result"] = defs.resolve_job_def("ingest_job").execute_in_process(instance=DagsterInstance.ephemeral())
    assert outcome["result"].success
    state = ledger(kafka_platform)
    assert (state["raw"], state["ids"], state["dead"]) == (good, good, bad)

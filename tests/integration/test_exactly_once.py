"""Exactly-once ingestion from a real Kafka broker, whatever crashes, retries or duplicates happen."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from mm_pipelines.assets.partitions import range_tags
from mm_pipelines.events.event_schema import MAX_MESSAGE_BYTES
from mm_pipelines.events.generator import generate_events, to_jsonl
from mm_pipelines.platform import Platform

pytestmark = pytest.mark.integration

MM = str(Path(sys.executable).parent / "mm")
ROOT = Path(__file__).resolve().parents[2]
FAILPOINTS = ["landed", "events_inserted", "dead_letters_inserted", "range_recorded"]
NO_VALUE = "the message has no value (null): a tombstone is not an event"
NO_KEY = "the message has no key (null): events are keyed by their user_id"
BINARY_KEY = "the message key is binary, not UTF-8 text: events are keyed by their user_id"
HEADERS = "unexpected headers x-schema: events carry no headers but traceparent, tracestate"
TOO_PRECISE = "has more precision than supported: at most 28 digits before the decimal point and 10 after it"
PERSONAL = [b"jane.doe@example.com", b"+44 20 7946 0958", b"4111 1111 1111 1111"]


@pytest.fixture
def kafka_platform(mm_home, kafka_bootstrap, kafka_topic, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", f"kafka://{kafka_bootstrap}")
    monkeypatch.setenv("MM_EVENTS_TOPIC", kafka_topic)
    platform = Platform.from_env()
    platform.bus.ensure_topic(kafka_topic, 4)
    yield platform
    platform.close()


def produce(platform, seed: int, n: int, bad: int) -> tuple[int, int]:
    """`n` events and `bad` PII events through the platform's bus, plus one of each message the pipeline
    cannot read (produced with confluent-kafka directly: the bus API has no null values or headers)."""
    events = generate_events(events=n, seed=seed)
    records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(events, to_jsonl(events))]
    records += [
        (b"bad", f'{{"event_id": "bad-{seed}-{i}", "user_id": "x{i}@example.com"}}'.encode()) for i in range(bad)
    ]
    platform.bus.produce(platform.settings.events_topic, records)
    unreadable = produce_raw(
        platform,
        [
            dict(value=None, key=b"gone"),
            dict(value=records[0][1], key=None),
            dict(value=records[1][1], key=b"\xff\xfe"),
            dict(value=records[2][1], key=b"k", headers=[("x-schema", b"v2")]),
        ],
    )
    return len(events), bad + unreadable


def produce_raw(platform, messages: list[dict], max_bytes: int = 1_000_000) -> int:
    """Messages exactly as any producer may send them (keyword arguments of confluent_kafka's produce)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": platform.bus._servers, "message.max.bytes": max_bytes})
    errors = []
    for m in messages:
        producer.produce(platform.settings.events_topic, on_delivery=lambda err, _: err and errors.append(err), **m)
    assert producer.flush(30) == 0 and not errors, errors
    return len(messages)


def ledger(platform) -> dict:
    with platform.warehouse.session() as s:
        raw, ids = s.query_rows("SELECT count(), uniqExact(event_id) FROM raw.events")[0]
        dead = s.scalar("SELECT count() FROM raw.dead_letters")
        ranges = s.query_rows(
            "SELECT partition, start_offset, end_offset, events, dead_letters "
            "FROM raw.ingested_ranges FINAL ORDER BY partition, start_offset"
        )
    return {"raw": raw, "ids": ids, "dead": dead, "ranges": ranges}


def test_sigkill_at_every_step_of_a_batch_never_loses_or_doubles_a_row(kafka_platform):
    good, bad = 0, 0
    for i, failpoint in enumerate(FAILPOINTS):
        g, b = produce(kafka_platform, seed=100 + i, n=1500, bad=7)
        good, bad = good + g, bad + b
        crashed = subprocess.run(
            [MM, "materialize", "raw/events"],
            env={**os.environ, "MM_FAILPOINT": failpoint},
            capture_output=True,
            timeout=300,
        )
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
    assert (
        kafka_platform.warehouse.query_rows("SELECT count() FROM raw.events")[0][0] == 2 * good
    )  # raw keeps every delivery


def test_half_malformed_or_pii_messages_are_all_accounted_for(kafka_platform):
    good, unreadable = produce(kafka_platform, seed=300, n=500, bad=0)
    malformed = [
        b"{",
        b"null",
        b'{"event_id": "m1"}',
        b'{"event_id":"c","event_type":"click","occurred_at":"2026-10-01T00:00:00Z","user_id":"u","channel":"x","campaign_id":"c","creative_id":"k","card":"4111-1111-1111-1111"}',
    ]
    bad_records = [(f"u{i}".encode(), malformed[i % len(malformed)]) for i in range(good)]
    kafka_platform.bus.produce(kafka_platform.settings.events_topic, bad_records)
    assert subprocess.run([MM, "materialize", "raw/events"], capture_output=True, timeout=300).returncode == 0
    state = ledger(kafka_platform)
    assert state["raw"] == good and state["dead"] == len(bad_records) + unreadable
    reasons = dict(kafka_platform.warehouse.query_rows("SELECT error, count() FROM raw.dead_letters GROUP BY error"))
    assert set(reasons) == {
        "malformed JSON: the message is not a JSON document",
        "malformed event: the message is JSON but not an object",
        "missing required field event_type",
        "PII: a payment card number appears in field card",
        NO_VALUE,
        NO_KEY,
        BINARY_KEY,
        HEADERS,
    }
    offsets = kafka_platform.warehouse.query_rows("SELECT count(DISTINCT (partition, offset)) FROM raw.dead_letters")[
        0
    ][0]
    assert offsets == len(bad_records) + unreadable


def test_a_broker_restart_during_ingestion_loses_and_doubles_nothing(kafka_platform):
    good, bad = produce(kafka_platform, seed=400, n=20_000, bad=10)
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    outcome = {}

    def ingest():
        outcome["result"] = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=DagsterInstance.ephemeral(),
            run_config={"ops": {"raw__events": {"config": {"max_batch": 400}}}},
            raise_on_error=False,
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


def allow_big_messages(platform, max_bytes: int) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    entry = ConfigEntry("max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, platform.settings.events_topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": platform.bus._servers})  # its futures fail once it is collected
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_messages_the_pipeline_cannot_read_are_dead_letters_and_their_ranges_complete(
    s3_store, kafka_platform, monkeypatch
):
    monkeypatch.setenv("MM_OBJECT_STORE", s3_store.url)  # the archive on a real S3 server
    events = generate_events(events=600, seed=500)
    lines = [line.rstrip(b"\n") for line in to_jsonl(events)]
    kafka_platform.bus.produce(
        kafka_platform.settings.events_topic, [(e["user_id"].encode(), line) for e, line in zip(events, lines)]
    )
    conversion = next(e for e in events if e["event_type"] == "conversion")
    body = json.dumps({k: v for k, v in conversion.items() if k != "revenue"})[:-1]
    touch = json.loads(lines[0])
    big = json.dumps({**touch, "padding": "x" * MAX_MESSAGE_BYTES}).encode()
    allow_big_messages(kafka_platform, 4 * MAX_MESSAGE_BYTES)
    sent = [
        (dict(key=b"u-1", value=None), NO_VALUE),
        (dict(key=None, value=None), NO_VALUE),
        (dict(key=None, value=lines[1]), NO_KEY),
        (dict(key=b"\x80\x81", value=lines[2]), BINARY_KEY),
        (dict(key=b"u-2", value=lines[3], headers=[("x-schema", b"v2")]), HEADERS),
        (
            dict(
                key=b"u-3",
                value=json.dumps({**touch, "event_id": "traced"}).encode(),
                headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            ),
            "",
        ),
        (
            dict(key=b"u-4", value=big),
            f"the message is {len(big)} bytes, more than the 1048576 (1 MiB) an event may have",
        ),
        (
            dict(key=b"u-5", value=(body + ', "revenue": "19.1234567890123456789012345"}').encode()),
            f"revenue 19.1234567890123456789012345 {TOO_PRECISE}",
        ),
        (
            dict(key=b"u-6", value=(body + ', "revenue": 123456789012345678901234567890.5}').encode()),
            f"revenue 123456789012345678901234567890.5 {TOO_PRECISE}",
        ),
        (
            dict(key=b"u-7", value=json.dumps({**touch, "user_id": "jane.doe@example.com"}).encode()),
            "PII: an e-mail address appears in field user_id",
        ),
        (
            dict(
                key=b"u-8",
                value=json.dumps({**touch, "note": "ring +44 20 7946 0958"}).encode(),
                headers=[("x-schema", b"v2")],
            ),
            "PII: a phone number appears in field note",
        ),
        (
            dict(key=b"u-9", value=json.dumps({**touch, "pay": {"card": "4111 1111 1111 1111"}}).encode()),
            "PII: a payment card number appears in field pay",
        ),
    ]
    produce_raw(kafka_platform, [m for m, _ in sent], max_bytes=4 * MAX_MESSAGE_BYTES)
    for _attempt in range(2):  # the second run finds nothing new: nothing is doubled
        done = subprocess.run([MM, "materialize", "raw/events"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    state = ledger(kafka_platform)
    reasons = [r for _, r in sent]
    good = len(events) + reasons.count("")
    assert state["raw"] == state["ids"] == good
    assert state["dead"] == len(sent) - reasons.count("")
    ends = kafka_platform.bus.end_offsets(kafka_platform.settings.events_topic)
    assert (
        state["raw"] + state["dead"]
        == sum(r[3] + r[4] for r in state["ranges"])
        == sum(ends.values())
        == len(events) + len(sent)
    )
    dead = kafka_platform.warehouse.query_rows("SELECT partition, offset, error, raw FROM raw.dead_letters")
    assert Counter(e for _, _, e, _ in dead) == Counter(r for r in reasons if r)
    assert len({(p, o) for p, o, _, _ in dead}) == len(dead)
    assert not [raw for *_, raw in dead if any(p.decode() in raw for p in PERSONAL)]
    # The archive of every range holds the same dead letters, redacted too.
    keys = s3_store.list_keys("raw/dead_letters/")
    archived = [pq.read_table(io.BytesIO(s3_store.get_bytes(k))) for k in keys]
    assert sum(t.num_rows for t in archived) == len(dead)
    assert not [r for t in archived for r in t.column("raw").to_pylist() if any(p.decode() in r for p in PERSONAL)]
    assert (
        sum(pq.read_metadata(io.BytesIO(s3_store.get_bytes(k))).num_rows for k in s3_store.list_keys("raw/events/"))
        == good
    )

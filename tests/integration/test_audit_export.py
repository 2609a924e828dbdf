"""The audit chain's exports on real services: mirrored to a Kafka topic, sealed to an S3 Object Lock bucket
(versitygw, which enforces the lock) and to a folder, and the archive verified against Postgres."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from mm_pipelines.audit import chain
from mm_pipelines.audit.export import (
    AuditExportError,
    canonical_record,
    mirror_to_kafka,
    pending,
    seal_segments,
    verify_archive,
)
from mm_pipelines.stores.objects import LocalObjectStore, S3ObjectStore
from tests.integration.conftest import assert_refused

pytestmark = pytest.mark.integration


def append_records(dsn: str, n: int, start: int = 0) -> None:
    with psycopg.connect(dsn) as conn:
        for i in range(start, start + n):
            chain.append(
                conn, f"user-{i}", "asset.update", f"asset:a{i % 3}", {"n": i, "title": f"Title {i} é"}, role="editor"
            )
            conn.commit()


def checkpoint(dsn: str, sink: str) -> tuple[int, str]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT last_seq, last_hash FROM audit_exports WHERE sink = %s", (sink,)).fetchone()


def test_the_chain_is_mirrored_to_kafka_in_seq_order_once_per_checkpoint(postgres_dsn, kafka_bus, kafka_topic):
    append_records(postgres_dsn, 25)
    with psycopg.connect(postgres_dsn) as conn:
        assert pending(conn, ("kafka",)) == 25
        assert mirror_to_kafka(conn, kafka_bus, kafka_topic, batch=10) == 25
        assert pending(conn, ("kafka",)) is None
        assert mirror_to_kafka(conn, kafka_bus, kafka_topic, batch=10) == 0  # nothing new: nothing produced
    assert kafka_bus.partitions(kafka_topic) == [0]
    assert kafka_bus.end_offsets(kafka_topic) == {0: 25}

    append_records(postgres_dsn, 5, start=25)
    with psycopg.connect(postgres_dsn) as conn:
        assert mirror_to_kafka(conn, kafka_bus, kafka_topic) == 5
        expected = [canonical_record(r) for r in reversed(chain.records(conn, limit=100))]
    assert checkpoint(postgres_dsn, "kafka") == (30, expected[-1]["hash"])

    batch = kafka_bus.read_range(kafka_topic, 0, 0, 30)
    assert [int(k) for k in batch.keys] == list(range(1, 31))
    assert [json.loads(v) for v in batch.values] == expected
    first = json.loads(batch.values[0])
    assert first["at"].endswith("+00:00") and len(first["at"].split(".")[1]) == len("000000+00:00")
    assert first["details"] == {"n": 0, "title": "Title 0 é"} and first["object"] == "asset:a0"


def test_the_mirror_refuses_to_go_on_past_a_chain_changed_after_export(postgres_dsn, kafka_bus, kafka_topic):
    append_records(postgres_dsn, 3)
    with psycopg.connect(postgres_dsn) as conn:
        mirror_to_kafka(conn, kafka_bus, kafka_topic)
        conn.execute("UPDATE audit_exports SET last_hash = %s WHERE sink = 'kafka'", ("f" * 64,))
        conn.commit()
    append_records(postgres_dsn, 1, start=3)
    with psycopg.connect(postgres_dsn) as conn, pytest.raises(AuditExportError, match="record 4: its previous hash"):
        mirror_to_kafka(conn, kafka_bus, kafka_topic)
    assert kafka_bus.end_offsets(kafka_topic) == {0: 3}


@pytest.fixture
def locked_archive(lock_s3, bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", lock_s3.meta.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", os.environ.get("MM_TEST_LOCK_S3_ACCESS_KEY", "mmlock"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("MM_TEST_LOCK_S3_SECRET_KEY", "mmlock-secret"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return S3ObjectStore(f"s3://{bucket}/archive")


def test_sealed_segments_are_under_compliance_retention_and_verify(postgres_dsn, locked_archive, lock_s3, bucket):
    append_records(postgres_dsn, 7)
    with psycopg.connect(postgres_dsn) as conn:
        # Retention of a minute: a COMPLIANCE bucket cannot be emptied until it passes.
        keys = seal_segments(conn, locked_archive, max_records=3, retain_days=1, now=_minutes_ago_one_day(1))
        assert keys == [
            "audit/segments/000000000001-000000000003.jsonl",
            "audit/segments/000000000004-000000000006.jsonl",
            "audit/segments/000000000007-000000000007.jsonl",
        ]
        assert seal_segments(conn, locked_archive, max_records=3) == []
        assert verify_archive(conn, locked_archive) == (7, [])
        rows = [canonical_record(r) for r in reversed(chain.records(conn))]
    assert checkpoint(postgres_dsn, "archive") == (7, rows[-1]["hash"])

    data = locked_archive.get_bytes(keys[0])
    assert [json.loads(line) for line in data.splitlines()] == rows[:3]
    manifest = json.loads(locked_archive.get_bytes(keys[0].replace(".jsonl", ".manifest.json")))
    assert manifest == {
        "format": 1,
        "first_seq": 1,
        "last_seq": 3,
        "count": 3,
        "prev_hash": chain.GENESIS,
        "last_hash": rows[2]["hash"],
        "segment_sha256": hashlib.sha256(data).hexdigest(),
    }

    for key in (keys[0], keys[0].replace(".jsonl", ".manifest.json")):
        head = lock_s3.head_object(Bucket=bucket, Key=f"archive/{key}")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
        assert_refused(lock_s3.delete_object, Bucket=bucket, Key=f"archive/{key}", VersionId=head["VersionId"])
        assert_refused(
            lock_s3.delete_object,
            Bucket=bucket,
            Key=f"archive/{key}",
            VersionId=head["VersionId"],
            BypassGovernanceRetention=True,
        )
    assert locked_archive.get_bytes(keys[0]) == data


def _minutes_ago_one_day(minutes: int) -> datetime:
    """`now` such that now + 1 day is `minutes` from now: a retention the test bucket's clean-up can outlive."""
    from datetime import timedelta

    return datetime.now(UTC) - timedelta(days=1) + timedelta(minutes=minutes)


@pytest.fixture
def archive(tmp_path):
    return LocalObjectStore(f"file://{tmp_path / 'audit-archive'}")


def test_verify_archive_finds_records_edited_or_deleted_in_postgres_after_sealing(postgres_dsn, archive):
    append_records(postgres_dsn, 6)
    with psycopg.connect(postgres_dsn) as conn:
        assert len(seal_segments(conn, archive, max_records=4)) == 2
        assert verify_archive(conn, archive) == (6, [])

        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        conn.execute("DELETE FROM audit_log WHERE seq = 5")
        conn.commit()
        count, problems = verify_archive(conn, archive)
    assert count == 6
    assert problems == [
        "record 2: Postgres differs from the archive in actor (edited or reordered after sealing)",
        "record 5: sealed in segment 000000000005-000000000006 but missing from Postgres (deleted)",
    ]


def test_verify_archive_finds_reordered_records(postgres_dsn, archive):
    append_records(postgres_dsn, 3)
    with psycopg.connect(postgres_dsn) as conn:
        seal_segments(conn, archive)
        conn.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq IN (2, 3)")
        conn.execute("UPDATE audit_log SET seq = 2 WHERE seq = 103")
        conn.execute("UPDATE audit_log SET seq = 3 WHERE seq = 102")
        conn.commit()
        _, problems = verify_archive(conn, archive)
    assert [p.split(":")[0] for p in problems] == ["record 2", "record 3"]
    assert all("Postgres differs from the archive in" in p for p in problems)


def test_verify_archive_finds_a_replaced_segment_a_missing_segment_and_unsealed_records(postgres_dsn, archive):
    append_records(postgres_dsn, 6)
    with psycopg.connect(postgres_dsn) as conn:
        keys = seal_segments(conn, archive, max_records=2)
        assert len(keys) == 3
        path = archive.root / keys[1]
        lines = path.read_bytes().splitlines(keepends=True)
        forged = json.loads(lines[0])
        forged["actor"] = "mallory"
        path.write_bytes(json.dumps(forged).encode() + b"\n" + lines[1])
        _, problems = verify_archive(conn, archive)
        assert problems[0] == (
            "segment 000000000003-000000000004: SHA-256 does not match its manifest (the segment was replaced or "
            "altered)"
        )
        assert "record 3: archived contents do not match its hash (segment 000000000003-000000000004)" in problems
        assert "record 3: Postgres differs from the archive in actor (edited or reordered after sealing)" in problems

        (archive.root / keys[2]).unlink()  # the last segment gone
        _, problems = verify_archive(conn, archive)
        assert (
            "segment 000000000005-000000000006: its manifest is there but the segment is missing (it was deleted)"
            in problems
        )

        (archive.root / keys[2].replace(".jsonl", ".manifest.json")).unlink()
        _, problems = verify_archive(conn, archive)
        assert problems[-1] == (
            "records 5-6: sealed (the archive checkpoint is at seq 6) but the archive ends at seq 4 (segments are "
            "missing)"
        )

        (archive.root / keys[0]).unlink()
        (archive.root / keys[0].replace(".jsonl", ".manifest.json")).unlink()
        _, problems = verify_archive(conn, archive)
        assert (
            "records 1-2: in Postgres but in no segment (2 record(s) missing from the archive before segment "
            "000000000003-000000000004)"
        ) in problems


def test_a_seal_interrupted_before_its_checkpoint_is_taken_up_again_without_overlap(postgres_dsn, archive):
    append_records(postgres_dsn, 3)
    with psycopg.connect(postgres_dsn) as conn:
        [key] = seal_segments(conn, archive)
        # The run "died" before its checkpoint committed: the segment is there, the checkpoint is not.
        conn.execute("UPDATE audit_exports SET last_seq = 0, last_hash = %s WHERE sink = 'archive'", (chain.GENESIS,))
        conn.commit()
    append_records(postgres_dsn, 2, start=3)
    with psycopg.connect(postgres_dsn) as conn:
        assert seal_segments(conn, archive) == [key, "audit/segments/000000000004-000000000005.jsonl"]
        assert verify_archive(conn, archive) == (5, [])


def test_an_archive_with_nothing_sealed_verifies(postgres_dsn, tmp_path):
    append_records(postgres_dsn, 2)
    with psycopg.connect(postgres_dsn) as conn:
        assert verify_archive(conn, LocalObjectStore(f"file://{tmp_path / uuid.uuid4().hex}")) == (0, [])
        assert pending(conn) == 2


def test_the_sensor_asks_for_a_run_that_mirrors_and_seals_then_rests(
    postgres_dsn, kafka_bootstrap, kafka_topic, tmp_path, monkeypatch
):
    from dagster import DagsterInstance, build_sensor_context

    from mm_pipelines.resources import EventBusResource, PostgresResource
    from mm_pipelines.sensors.audit import audit_export_job, audit_export_sensor
    from mm_pipelines.stores.bus import KafkaEventBus

    monkeypatch.setenv("MM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_AUDIT_TOPIC", kafka_topic)
    monkeypatch.setenv("MM_AUDIT_ARCHIVE", f"file://{tmp_path / 'archive'}")
    resources = {
        "postgres": PostgresResource(dsn=postgres_dsn),
        "event_bus": EventBusResource(url=f"kafka://{kafka_bootstrap}"),
    }
    instance = DagsterInstance.ephemeral()

    def tick():
        return audit_export_sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources))

    assert tick().skip_message == "Every audit record is in the kafka and the archive export"
    append_records(postgres_dsn, 4)
    [request] = tick().run_requests
    assert request.run_key == "audit-export:4"

    assert audit_export_job.execute_in_process(resources=resources, instance=instance).success
    assert checkpoint(postgres_dsn, "kafka")[0] == checkpoint(postgres_dsn, "archive")[0] == 4
    archive = LocalObjectStore(f"file://{tmp_path / 'archive'}")
    assert archive.list_keys() == [
        "audit/segments/000000000001-000000000004.jsonl",
        "audit/segments/000000000001-000000000004.manifest.json",
    ]
    bus = KafkaEventBus(f"kafka://{kafka_bootstrap}", read_timeout_s=30)
    try:
        assert bus.end_offsets(kafka_topic) == {0: 4}
    finally:
        bus.close()
    assert tick().skip_message is not None

    # With the embedded log as the bus there is no mirror: the archive alone decides.
    resources["event_bus"] = EventBusResource(url=f"log://{tmp_path / 'eventlog'}")
    append_records(postgres_dsn, 1, start=4)
    [request] = tick().run_requests
    assert request.run_key == "audit-export:5"
    assert audit_export_job.execute_in_process(resources=resources, instance=instance).success
    assert checkpoint(postgres_dsn, "kafka")[0] == 4 and checkpoint(postgres_dsn, "archive")[0] == 5
    assert tick().skip_message == "Every audit record is in the archive export"


def test_sealing_to_a_bucket_without_object_lock_is_refused_and_leaves_the_checkpoint(postgres_dsn, s3_store):
    from mm_pipelines.config import ConfigError

    append_records(postgres_dsn, 2)
    with psycopg.connect(postgres_dsn) as conn, pytest.raises(ConfigError, match="created with Object Lock enabled"):
        seal_segments(conn, s3_store)
    assert checkpoint(postgres_dsn, "archive") == (0, chain.GENESIS)
    assert s3_store.list_keys() == []

"""The embedded event log: Kafka's offset model, crash safety, and the same partitioning as Kafka."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_pipelines.stores.bus import EventBusError, LocalEventLog, TopicNotFound, partition_for

pytestmark = pytest.mark.unit


@pytest.fixture
def log(tmp_path):
    bus = LocalEventLog(f"log://{tmp_path}/eventlog")
    bus.ensure_topic("t", 3)
    return bus


def test_offsets_are_dense_per_partition_and_ranges_read_back(log):
    records = [(f"user-{i % 7}".encode(), f'{{"n":{i}}}'.encode()) for i in range(100)]
    assert log.produce("t", records) == 100
    ends = log.end_offsets("t")
    assert sum(ends.values()) == 100
    for p, end in ends.items():
        mine = [v for k, v in records if partition_for(k, 3) == p]
        batch = log.read_range("t", p, 0, end)
        assert batch.values == mine and batch.offsets == list(range(end))
        assert batch.keys == [k for k, _ in records if partition_for(k, 3) == p] and batch.headers == {}
        if end > 2:
            assert log.read_range("t", p, 1, end - 1).values == mine[1:-1]


def test_a_users_events_stay_in_one_partition_in_order(log):
    log.produce("t", [(b"alice", str(i).encode()) for i in range(20)])
    p = partition_for(b"alice", 3)
    assert log.read_range("t", p, 0, 20).values == [str(i).encode() for i in range(20)]


def test_partitioner_matches_kafka_default():
    # Reference values from Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils), as kafka-python uses.
    from kafka.partitioner.default import murmur2

    for key in (b"", b"a", b"user-123", "ünïcode".encode()):
        assert partition_for(key, 12) == (murmur2(key) & 0x7FFFFFFF) % 12


def test_empty_and_binary_keys_read_back_as_written(log):
    records = [(b"", b"{}"), (b"\xff\x00\xfe", b"{}"), ("ü".encode(), b"")]
    log.produce("t", records)
    batches = [log.read_range("t", p, 0, end) for p, end in log.end_offsets("t").items()]
    assert sorted(r for b in batches for r in zip(b.keys, b.values)) == sorted(records)


def test_reading_past_the_end_is_an_error(log):
    log.produce("t", [(b"k", b"v")])
    p = partition_for(b"k", 3)
    with pytest.raises(EventBusError, match="cannot read up to 5"):
        log.read_range("t", p, 0, 5)


def test_unknown_topic_is_a_clear_error(tmp_path):
    with pytest.raises(TopicNotFound, match="does not exist"):
        LocalEventLog(f"log://{tmp_path}").end_offsets("nope")


def test_a_torn_append_is_discarded_and_offsets_never_change(log, tmp_path):
    log.produce("t", [(b"k", b"first"), (b"k", b"second")])
    p = partition_for(b"k", 3)
    data = tmp_path / "eventlog" / "t" / f"partition-{p}" / "data.log"
    with open(data, "ab") as f:  # a crash after writing data, before its index entry
        f.write(b"\x05\x00\x00\x00garbage-without-index")
    assert log.end_offsets("t")[p] == 2
    log.produce("t", [(b"k", b"third")])
    assert log.read_range("t", p, 0, 3).values == [b"first", b"second", b"third"]


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=64)), max_size=20), max_size=5))
def test_any_sequence_of_appends_reads_back_exactly(tmp_path_factory, batches):
    bus = LocalEventLog(f"log://{tmp_path_factory.mktemp('log')}")
    bus.ensure_topic("t", 2)
    expected: dict[int, list[tuple[bytes, bytes]]] = {0: [], 1: []}
    for batch in batches:
        bus.produce("t", batch)
        for k, v in batch:
            expected[partition_for(k, 2)].append((k, v))
    for p, records in expected.items():
        read = bus.read_range("t", p, 0, len(records))
        assert list(zip(read.keys, read.values)) == records

"""The Kafka event bus against a real Apache Kafka broker."""

import pytest

from mm_pipelines.stores.bus import TopicNotFound, partition_for

pytestmark = pytest.mark.integration


def test_produce_and_read_back_exact_ranges(kafka_bus, kafka_topic):
    kafka_bus.ensure_topic(kafka_topic, 3)
    kafka_bus.ensure_topic(kafka_topic, 3)  # idempotent
    records = [(f"user-{i % 11}".encode(), f'{{"n":{i}}}'.encode()) for i in range(600)]
    assert kafka_bus.produce(kafka_topic, records) == 600
    ends = kafka_bus.end_offsets(kafka_topic)
    assert sorted(ends) == [0, 1, 2] and sum(ends.values()) == 600
    for p, end in ends.items():
        mine = [v for k, v in records if partition_for(k, 3) == p]  # same placement as the embedded log
        whole = kafka_bus.read_range(kafka_topic, p, 0, end)
        assert (
            whole.values == mine
            and whole.keys == [k for k, _ in records if partition_for(k, 3) == p]
            and whole.headers == {}
        )
        middle = kafka_bus.read_range(kafka_topic, p, 5, end - 5)
        assert middle.values == mine[5:-5] and middle.offsets == list(range(5, end - 5))


def test_unknown_topic_is_a_clear_error(kafka_bus, kafka_topic):
    with pytest.raises(TopicNotFound, match="does not exist"):
        kafka_bus.end_offsets(kafka_topic)


def test_a_topic_not_created_yet_is_nothing_to_ingest(kafka_bus, kafka_topic, warehouse):
    from mm_pipelines.events.ingest import ingest_pending

    run = ingest_pending(warehouse, kafka_bus, kafka_topic, max_batch=1000)
    assert (run.ranges, run.events, run.dead_letters) == ([], 0, 0)
    assert kafka_bus.partitions(kafka_topic) == []  # and reading its metadata did not create it


def test_null_keys_and_values_and_headers_read_back_as_sent(kafka_bus, kafka_topic):
    from confluent_kafka import Producer

    kafka_bus.ensure_topic(kafka_topic, 1)
    producer = Producer({"bootstrap.servers": kafka_bus._servers})
    sent = [
        dict(key=b"k", value=b"{}"),
        dict(key=None, value=b"{}"),
        dict(key=b"k", value=None),
        dict(key=b"\xff", value=b"{}", headers=[("a", b"1"), ("b", None)]),
        dict(key=b"", value=b""),
    ]
    for m in sent:
        producer.produce(kafka_topic, **m)
    assert producer.flush(30) == 0
    batch = kafka_bus.read_range(kafka_topic, 0, 0, len(sent))
    assert batch.keys == [b"k", None, b"k", b"\xff", b""] and batch.values == [b"{}", b"{}", None, b"{}", b""]
    assert batch.headers == {3: ["a", "b"]}


def test_ingestion_commits_the_consumer_group_for_lag_dashboards(kafka_bus, kafka_topic, warehouse):
    from confluent_kafka import Consumer, TopicPartition

    from mm_pipelines.events.ingest import ingest_pending

    kafka_bus.ensure_topic(kafka_topic, 2)
    kafka_bus.produce(kafka_topic, [(f"k{i}".encode(), b"{}") for i in range(50)])
    run = ingest_pending(warehouse, kafka_bus, kafka_topic, max_batch=1000)
    assert run.dead_letters == 50  # '{}' lacks every required field
    group = Consumer({"bootstrap.servers": kafka_bus._servers, "group.id": "mm-ingest"})
    committed = group.committed([TopicPartition(kafka_topic, p) for p in (0, 1)], timeout=10)
    group.close()
    assert {tp.partition: tp.offset for tp in committed} == kafka_bus.end_offsets(kafka_topic)

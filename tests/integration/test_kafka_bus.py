"""The Kafka event bus against a real Apache Kafka broker."""

import pytest

from mm_pipelines.events.bus import EventBusError, partition_for

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
        assert kafka_bus.read_range(kafka_topic, p, 0, end).values == mine
        middle = kafka_bus.read_range(kafka_topic, p, 5, end - 5)
        assert middle.values == mine[5:-5] and middle.offsets == list(range(5, end - 5))


def test_unknown_topic_is_a_clear_error(kafka_bus, kafka_topic):
    with pytest.raises(EventBusError, match="does not exist"):
        kafka_bus.end_offsets(kafka_topic)


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

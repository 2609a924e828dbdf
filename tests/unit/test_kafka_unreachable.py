"""An unreachable Kafka is one clear error within a bounded time, never "nothing to ingest" (no broker needed)."""

import socket
import threading
import time

import pytest

from mm_pipelines.events.ingest import ingest_pending
from mm_pipelines.stores import bus as bus_module
from mm_pipelines.stores.bus import EventBusUnavailable, KafkaEventBus

pytestmark = pytest.mark.unit


@pytest.fixture
def silent_broker():
    """A port that accepts connections and never answers, as a hung broker or a wrong service does."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_nothing_listening_fails_at_once_naming_kafka_and_the_address(warehouse):
    bus = KafkaEventBus("kafka://127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(
        EventBusUnavailable, match=r"^Kafka at 127\.0\.0\.1:1 is unreachable \(Connection refused\).*MM_EVENT_BUS"
    ):
        ingest_pending(warehouse, bus, "mm.events.v1", max_batch=1000)
    assert time.monotonic() - started < 5
    for call in (lambda: bus.ensure_topic("t", 1), lambda: bus.produce("t", [(b"k", b"{}")])):
        with pytest.raises(EventBusUnavailable, match="unreachable"):
            call()
    bus.close()


def test_a_broker_that_never_answers_fails_within_the_broker_timeout(silent_broker, monkeypatch):
    monkeypatch.setattr(bus_module, "BROKER_TIMEOUT_S", 1.0)
    bus = KafkaEventBus(f"kafka://{silent_broker}")
    started = time.monotonic()
    with pytest.raises(EventBusUnavailable, match=rf"^Kafka at {silent_broker} did not answer within 1 s"):
        bus.end_offsets("t")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(EventBusUnavailable, match=rf"^Kafka at {silent_broker} did not answer within 1 s"):
        bus.ensure_topic("t", 1)
    assert time.monotonic() - started < 5
    bus.close()


def test_an_unresolvable_host_says_so():
    with pytest.raises(
        EventBusUnavailable, match=r"^Kafka at no-such-host\.invalid:9092 is unreachable \(.*(resolve|known|name)"
    ):
        KafkaEventBus("kafka://no-such-host.invalid:9092").partitions("t")

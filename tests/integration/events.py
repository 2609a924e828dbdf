"""Putting canonical events on a platform's event bus, as producers do (key = user_id)."""

from mm_pipelines.events.generator import to_jsonl


def produce(platform, events, extra=()):
    """Produce `events` (and `extra` raw messages, keyed b"bad") to the platform's events topic."""
    bus = platform.bus
    bus.ensure_topic(platform.settings.events_topic, platform.settings.events_partitions)
    records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(events, to_jsonl(events))]
    bus.produce(platform.settings.events_topic, records + [(b"bad", b) for b in extra])

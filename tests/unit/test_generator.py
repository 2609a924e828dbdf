from collections import Counter
from decimal import Decimal

import pytest

from mm_pipelines.events.generator import CHANNELS, generate_events, to_jsonl

pytestmark = pytest.mark.unit


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = b"".join(to_jsonl(generate_events(events=2000, seed=3)))
    b = b"".join(to_jsonl(generate_events(events=2000, seed=3)))
    c = b"".join(to_jsonl(generate_events(events=2000, seed=4)))
    assert a == b and a != c


def test_dataset_is_realistic():
    events = generate_events(events=20_000, seed=5)
    kinds = Counter(e["event_type"] for e in events)
    assert kinds["impression"] > kinds["click"] > kinds["conversion"] > 0
    assert {e["channel"] for e in events} == {c.name for c in CHANNELS}
    assert len({e["event_id"] for e in events}) == len(events)
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    for e in events:
        if e["event_type"] == "conversion":
            revenue = Decimal(e["revenue"])  # a string, exact to the cent
            assert isinstance(e["revenue"], str) and revenue > 0 and revenue == revenue.quantize(Decimal("0.01"))
            assert e["currency"] in {"USD", "EUR", "GBP"}


def test_conversions_follow_the_users_last_click():
    events = generate_events(events=20_000, seed=6)
    last_click: dict[str, dict] = {}
    checked = 0
    for e in events:  # time order
        if e["event_type"] == "click":
            last_click[e["user_id"]] = e
        elif e["event_type"] == "conversion" and e["channel"] != "direct":
            click = last_click[e["user_id"]]
            assert (click["channel"], click["campaign_id"]) == (e["channel"], e["campaign_id"])
            checked += 1
    assert checked > 50

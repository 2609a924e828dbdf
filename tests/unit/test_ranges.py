"""Batch boundaries: bounded, contiguous offset ranges with deterministic run keys."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm_pipelines.events.ingest import batch_token, pending_ranges
from mm_pipelines.sensors.events import plan_runs

pytestmark = pytest.mark.unit

offsets = st.dictionaries(st.integers(0, 5), st.integers(0, 10_000), max_size=6)


@given(ingested=offsets, ends=offsets, max_batch=st.integers(1, 3000))
def test_ranges_cover_exactly_what_is_pending(ingested, ends, max_batch):
    ranges = pending_ranges(ingested, ends, max_batch)
    for p, end in ends.items():
        mine = [(s, e) for q, s, e in ranges if q == p]
        start = ingested.get(p, 0)
        if start >= end:
            assert mine == []
            continue
        assert mine[0][0] == start and mine[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))  # contiguous
        assert all(0 < e - s <= max_batch for s, e in mine)  # bounded


def test_run_keys_name_topic_partitions_and_ranges():
    requests, cursor = plan_runs("mm.events.v1", {}, {0: 10}, {0: 25, 1: 5, 2: 0}, max_range=10)
    assert [r.run_key for r in requests] == ["mm.events.v1:0:10-20;1:0-5", "mm.events.v1:0:20-25"]
    assert cursor == {0: 25, 1: 5, 2: 0}
    assert requests[0].run_config["ops"]["raw__events"]["config"] == {"up_to": {"0": 20, "1": 5}, "max_batch": 10}
    assert requests[1].run_config["ops"]["raw__events"]["config"] == {"up_to": {"0": 25}, "max_batch": 10}
    assert batch_token("mm.events.v1", 0, 10, 20) == "mm.events.v1:0:10-20"


def test_at_most_max_runs_are_planned_and_the_cursor_stops_where_they_do():
    requests, cursor = plan_runs("t", {}, {}, {0: 25, 1: 5}, max_range=10, max_runs=1, partition_key="2026-11-27")
    assert [r.run_key for r in requests] == ["t:0:0-10;1:0-5"]
    assert cursor == {0: 10, 1: 5}
    assert requests[0].partition_key == "2026-11-27"
    following, cursor = plan_runs("t", cursor, {}, {0: 25, 1: 5}, max_range=10, max_runs=1)
    assert [r.run_key for r in following] == ["t:0:10-20"] and cursor == {0: 20, 1: 5}


@given(cursor=offsets, ingested=offsets, ends=offsets)
def test_evaluating_twice_on_the_same_state_gives_identical_run_keys(cursor, ingested, ends):
    first, c1 = plan_runs("t", cursor, ingested, ends, 1000)
    second, c2 = plan_runs("t", cursor, ingested, ends, 1000)
    assert [r.run_key for r in first] == [r.run_key for r in second] and c1 == c2
    # ...and once the cursor has advanced, nothing is requested again.
    third, _ = plan_runs("t", c1, ingested, ends, 1000)
    assert third == []


def test_an_open_intent_is_replanned_exactly_even_after_more_events_arrive():
    # Range 100-150 was planned and (maybe partly) inserted before a crash; the partition has since grown.
    ranges = pending_ranges({0: 100}, {0: 400}, max_batch=1000, intents={0: {100: 150}})
    assert ranges == [(0, 100, 150), (0, 150, 400)]

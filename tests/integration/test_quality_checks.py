"""The staging check fails, naming the broken day, on the violations it exists for."""

import pytest

from mm_pipelines.checks.quality import stg_events_expectations_check
from mm_pipelines.resources import ClickHouseResource

pytestmark = pytest.mark.integration

STG_EVENTS_DDL = """CREATE TABLE staging.stg_events (
    event_id String, event_type String, occurred_at Nullable(DateTime64(3, 'UTC')), event_date Date, user_id String
) ENGINE = MergeTree ORDER BY tuple()"""


def _check(warehouse, rows):
    with warehouse.session() as s:
        s.command("CREATE DATABASE IF NOT EXISTS staging")
        s.command("DROP TABLE IF EXISTS staging.stg_events")
        s.command(STG_EVENTS_DDL)
        s.command("INSERT INTO staging.stg_events VALUES " + ", ".join(
            f"('{e}', '{t}', {'NULL' if at is None else repr(at)}, '{d}', '{u}')" for e, t, at, d, u in rows))
    return stg_events_expectations_check(clickhouse=ClickHouseResource(url=warehouse.url))


CLEAN = [
    ("e1", "click", "2026-10-01 10:00:00", "2026-10-01", "u1"),
    ("e2", "conversion", "2026-10-01 11:00:00", "2026-10-01", "u1"),
    ("e3", "impression", "2026-10-02 09:00:00", "2026-10-02", "u2"),
]


def test_clean_staging_passes(warehouse):
    result = _check(warehouse, CLEAN)
    assert result.passed, result.description
    assert result.metadata["rows"].value == 2  # one row per event day


@pytest.mark.parametrize(
    ("bad_row", "violation"),
    [
        (("e1", "click", "2026-10-02 12:00:00", "2026-10-02", "u3"), "duplicate_event_ids"),  # same id, another day
        (("e4", "click", None, "2026-10-02", "u3"), "missing_occurred_at"),
        (("e4", "purchase", "2026-10-02 12:00:00", "2026-10-02", "u3"), "unknown_event_types"),
        (("e4", "click", "2026-10-02 12:00:00", "2026-10-02", "ann@example.com"), "emails_in_user_id"),
    ],
)
def test_each_violation_fails_the_check(warehouse, bad_row, violation):
    result = _check(warehouse, [*CLEAN, bad_row])
    assert not result.passed
    assert violation in result.description

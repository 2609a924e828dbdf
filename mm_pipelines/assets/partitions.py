"""Daily partitions, shared by every date-grained asset (UTC days; today included so fresh data is built)."""

from datetime import date, timedelta

from dagster import DailyPartitionsDefinition, MonthlyPartitionsDefinition, TimeWindow

DAILY_PARTITIONS = DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def window_dates(window: TimeWindow) -> tuple[date, date]:
    """(first day, day after the last) of a partition time window."""
    return window.start.date(), window.end.date()


def days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags for one run over the daily partitions [first, last] (the daily assets run ranges in one go)."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


# Royalty periods are calendar months (UTC); the current month is included so it can be previewed while open.
MONTHLY_PARTITIONS = MonthlyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def royalty_periods() -> tuple[str, str]:
    """The first and last period ('YYYY-MM') a royalty run can post: the first monthly partition to the
    current month."""
    return period_of(MONTHLY_PARTITIONS.get_first_partition_key()), period_of(
        MONTHLY_PARTITIONS.get_last_partition_key()
    )


def period_of(partition_key: str) -> str:
    """'YYYY-MM' for a monthly partition key ('YYYY-MM-01')."""
    return partition_key[:7]

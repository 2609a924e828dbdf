"""Daily partitions, shared by every date-grained asset (UTC days; today included so fresh data is built)."""

from datetime import date, datetime, timedelta

from dagster import DailyPartitionsDefinition, TimeWindow

DAILY_PARTITIONS = DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def window_dates(window: TimeWindow) -> tuple[date, date]:
    """(first day, day after the last) of a partition time window."""
    return window.start.date(), window.end.date()


def days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def partition_key(day: date) -> str:
    return datetime(day.year, day.month, day.day).strftime("%Y-%m-%d")

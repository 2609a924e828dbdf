"""Ad spend reports (CSV: date,channel,campaign_id,amount,currency) into raw.ad_spend.

A file is validated whole before anything lands, and every error names its file, line and field: Finance
reconciles against these numbers, so a half-loaded report is worse than none. The load id is the file's
SHA-256 and doubles as the insert dedup token, so loading the same report twice adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import pyarrow as pa
from pydantic import BeforeValidator, Field

from mm_pipelines.events.archive import archive_report, archived_reports
from mm_pipelines.events.csv_reports import csv_records
from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.objects import ObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables
from mm_pipelines.validation import Record, csv_rows, invalid

COLUMNS = ("date", "channel", "campaign_id", "amount", "currency")
SPEND_PREFIX = "raw/ad_spend"


class SpendFileError(ValueError):
    pass


def _day(value) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise invalid("must be a date YYYY-MM-DD") from None


def _text(value) -> str:
    if not (value or "").strip():
        raise invalid("must not be empty")
    return value.strip()


def _amount(value) -> Decimal:
    try:
        amount = Decimal(value)
    except (TypeError, InvalidOperation):
        raise invalid("must be a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise invalid("must be a finite amount >= 0")
    return amount


def _currency(value) -> str:
    if value not in CURRENCIES:
        raise invalid("must be an ISO 4217 code we accept")
    return value


class SpendRow(Record):
    """One line of a spend report, validated (the CSV's `date` column is `spend_date`)."""

    line: int
    spend_date: Annotated[date, BeforeValidator(_day)] = Field(alias="date")
    channel: Annotated[str, BeforeValidator(_text)]
    campaign_id: Annotated[str, BeforeValidator(_text)]
    amount: Annotated[Decimal, BeforeValidator(_amount)]
    currency: Annotated[str, BeforeValidator(_currency)]


def parse_spend_csv(path: Path, text: str) -> list[SpendRow]:
    return csv_rows(SpendRow, path, csv_records(path, text, COLUMNS, SpendFileError), SpendFileError)


def load_spend_file(session: Session, path: Path, archive: ObjectStore | None = None) -> tuple[str, int]:
    """Validate and insert a spend report, archiving it first (a warehouse rebuilt by `mm replay --all` gets
    it back, restatement order included); returns (load id, rows)."""
    data = path.read_bytes()
    load_id = hashlib.sha256(data).hexdigest()
    rows = parse_spend_csv(path, data.decode("utf-8-sig"))
    loaded_at = (
        archive_report(archive, SPEND_PREFIX, load_id, str(path), data) if archive is not None else datetime.now(UTC)
    )
    _insert(session, rows, load_id, str(path), loaded_at, f"spend:{load_id}")
    return load_id, len(rows)


def restore_spend(session: Session, archive: ObjectStore, token: str) -> dict[str, int]:
    """Disaster recovery: raw.ad_spend is emptied, then every archived spend report reloaded as it was loaded,
    restatement order included. Tokens start with `token`, unique to the replay, since the table may remember
    the original loads' tokens."""
    session.command("TRUNCATE TABLE raw.ad_spend")
    reports = list(archived_reports(archive, SPEND_PREFIX))
    for key, load_id, file, loaded_at, data in reports:
        _insert(
            session, parse_spend_csv(Path(file), data.decode("utf-8-sig")), load_id, file, loaded_at, f"{token}:{key}"
        )
    return {"spend reports": len(reports)}


def _insert(session: Session, rows: list[SpendRow], load_id: str, file: str, loaded_at: datetime, token: str) -> None:
    ensure_tables(session)
    table = pa.table(
        {
            "spend_date": pa.array([r.spend_date for r in rows], pa.date32()),
            "channel": pa.array([r.channel for r in rows]),
            "campaign_id": pa.array([r.campaign_id for r in rows]),
            "amount": pa.array([r.amount for r in rows], pa.decimal128(38, 10)),
            "currency": pa.array([r.currency for r in rows]),
            "load_id": pa.array([load_id] * len(rows)),
            "file": pa.array([file] * len(rows)),
            "line": pa.array([r.line for r in rows], pa.uint64()),
            "loaded_at": pa.array([loaded_at] * len(rows), pa.timestamp("ms", "UTC")),
        }
    )
    if rows:
        session.insert_arrow("raw.ad_spend", table, settings={"insert_deduplication_token": token})


def generate_spend_csv(
    campaigns: dict[str, list[str]], start: date, days: int, seed: int = 7, scale: Decimal = Decimal(1)
) -> str:
    """A deterministic spend report for the synthetic catalog's paid campaigns (USD, to the cent); `scale`
    sizes it to the dataset (1 suits the 400k-event dataset: return on ad spend around 1)."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for d in range(days):
        day = start + timedelta(days=d)
        for channel, names in sorted(campaigns.items()):
            for campaign in names:
                if campaign.endswith("-none"):
                    continue
                amount = (Decimal(rng.randrange(2_000, 80_000)) / 100 * scale).quantize(
                    Decimal("0.01"), ROUND_HALF_EVEN
                )
                w.writerow((day.isoformat(), channel, campaign, str(amount), "USD"))
    return out.getvalue()

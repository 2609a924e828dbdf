"""FX rates as data: Finance's rate files into raw.fx_rates, one row per day and currency in units of the reporting
currency per one unit of the currency (`rate_to_reporting`, what every conversion of the platform multiplies by).

Two formats, told apart by their header:
- the ECB's euro foreign exchange reference rates (`Date,USD,JPY,…`, one column per currency, units per 1 EUR,
  `N/A` where a currency has no rate that day; the daily file's `07 December 2026` dates too), converted to the
  reporting currency through the same day's rate of the reporting currency: rate(c) = rate(R per EUR) / rate(c per
  EUR), half-to-even to 10 decimals. Currencies the platform does not accept are left out (and counted).
- a plain `date,currency,rate` file whose rate is already `rate_to_reporting`.

A file is validated whole before anything lands and every error names its file, line and field. The load id is the
file's SHA-256 and the insert's dedup token, so loading a file twice adds nothing; a later file's rate for the same
day and currency wins (staging.stg_fx_rates). Files are archived so a disaster-recovery replay reloads them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from pathlib import Path

import pyarrow as pa

from mm_pipelines.events.archive import archive_report, archived_reports
from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.objects import ObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables

FX_PREFIX = "raw/fx_rates"
PLAIN_COLUMNS = ("date", "currency", "rate")
SCALE = Decimal("1E-10")


class FxFileError(ValueError):
    pass


@dataclass(frozen=True)
class DailyRate:
    rate_date: date
    currency: str
    rate_to_reporting: Decimal
    line: int


@dataclass(frozen=True)
class ParsedRates:
    rates: list[DailyRate]
    format: str  # "ecb" or "plain"
    skipped_currencies: tuple[str, ...]  # ECB columns the platform does not accept


def _date(path: Path, line: int, value: str) -> date:
    text = (value or "").strip()
    for parse in (date.fromisoformat, lambda t: datetime.strptime(t, "%d %B %Y").date()):
        try:
            return parse(text)
        except ValueError:
            continue
    raise FxFileError(f"{path}:{line}: field 'date' must be a date YYYY-MM-DD (got {value!r})")


def _rate(path: Path, line: int, field: str, value: str) -> Decimal:
    try:
        rate = Decimal((value or "").strip())
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate <= 0:
        raise FxFileError(f"{path}:{line}: field {field!r} must be a positive decimal number (got {value!r})")
    return rate


def _quantize(rate: Decimal) -> Decimal:
    return rate.quantize(SCALE, rounding=ROUND_HALF_EVEN)


def parse_fx_csv(path: Path, text: str, reporting_currency: str) -> ParsedRates:
    """The file's daily rates to the reporting currency; FxFileError naming file, line and field."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader, [])]
        while header and not header[-1]:  # the ECB's files end every line with a comma
            header.pop()
        if [h.lower() for h in header] == list(PLAIN_COLUMNS):
            return ParsedRates(_plain(path, reader), "plain", ())
        if header[:1] == ["Date"] and len(header) > 1:
            return _ecb(path, reader, header[1:], reporting_currency)
    except csv.Error as e:
        raise FxFileError(f"{path}:{reader.line_num}: {str(e).split(' - ')[0]}") from None
    raise FxFileError(
        f"{path}:1: unknown header {','.join(header)!r}: expected the ECB's reference rates (Date,USD,JPY,…) "
        f"or {','.join(PLAIN_COLUMNS)}"
    )


def _plain(path: Path, reader) -> list[DailyRate]:
    out = []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        if len(row) != len(PLAIN_COLUMNS):
            raise FxFileError(f"{path}:{line}: expected 3 fields (date,currency,rate), got {len(row)}")
        day, currency, rate = (c.strip() for c in row)
        if currency not in CURRENCIES:
            raise FxFileError(f"{path}:{line}: field 'currency' must be an ISO 4217 code we accept (got {currency!r})")
        out.append(DailyRate(_date(path, line, day), currency, _quantize(_rate(path, line, "rate", rate)), line))
    return _unique(path, out)


def _ecb(path: Path, reader, currencies: list[str], reporting: str) -> ParsedRates:
    kept = [c for c in currencies if c in CURRENCIES]
    if reporting != "EUR" and reporting not in currencies:
        raise FxFileError(
            f"{path}:1: no {reporting} column: the reporting currency's rate per EUR converts every other rate"
        )
    out = []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        day = _date(path, line, row[0])
        per_eur = {"EUR": Decimal(1)}
        for currency, value in zip(currencies, row[1:], strict=False):
            if currency in kept and value.strip() not in ("", "N/A"):
                per_eur[currency] = _rate(path, line, currency, value)
        if reporting not in per_eur:
            raise FxFileError(
                f"{path}:{line}: field {reporting!r} has no rate on {day}: every other rate of the day needs it"
            )
        with localcontext() as ctx:
            ctx.prec = 40
            out.extend(DailyRate(day, c, _quantize(per_eur[reporting] / r), line) for c, r in sorted(per_eur.items()))
    skipped = tuple(sorted(set(currencies) - set(kept)))
    return ParsedRates(_unique(path, out), "ecb", skipped)


def _unique(path: Path, rates: list[DailyRate]) -> list[DailyRate]:
    seen: dict[tuple[date, str], int] = {}
    for r in rates:
        first = seen.setdefault((r.rate_date, r.currency), r.line)
        if first != r.line:
            raise FxFileError(
                f"{path}:{r.line}: a second rate for {r.currency} on {r.rate_date} (the first is on line {first}): "
                "keep one"
            )
    return rates


def load_fx_file(
    session: Session, path: Path, reporting_currency: str, archive: ObjectStore | None = None
) -> tuple[str, ParsedRates]:
    """Validate and insert a rate file, archiving it first; (load id, what was parsed)."""
    data = path.read_bytes()
    load_id = hashlib.sha256(data).hexdigest()
    parsed = parse_fx_csv(path, data.decode("utf-8-sig"), reporting_currency)
    if not parsed.rates:
        raise FxFileError(f"{path}: no rates in the file")
    loaded_at = archive_report(archive, FX_PREFIX, load_id, str(path), data) if archive else datetime.now(UTC)
    _insert(session, parsed, load_id, str(path), loaded_at, f"fx:{load_id}")
    return load_id, parsed


def months_in_effect(session: Session, load_id: str) -> list[tuple[str, str, str, int]]:
    """(month, currency, rate, days) now in effect for the months a load touched; none before stg_fx_rates is built."""
    if not session.scalar("EXISTS TABLE staging.stg_fx_rates"):
        return []
    return session.query_rows(
        """SELECT toString(month), currency, toString(rate_to_reporting), days FROM staging.stg_fx_rates
           WHERE (month, currency) IN (SELECT DISTINCT toStartOfMonth(rate_date), currency FROM raw.fx_rates
                                       WHERE load_id = {l:String})
           ORDER BY month, currency""",
        {"l": load_id},
    )


def restore_fx(session: Session, archive: ObjectStore, token: str) -> dict[str, int]:
    """Disaster recovery: raw.fx_rates emptied, then every archived rate file reloaded as it was, in order."""
    from mm_pipelines.config import Settings

    reporting_currency = Settings.from_env().reporting_currency
    ensure_tables(session)
    session.command("TRUNCATE TABLE raw.fx_rates")
    files = list(archived_reports(archive, FX_PREFIX))
    for key, load_id, file, loaded_at, data in files:
        parsed = parse_fx_csv(Path(file), data.decode("utf-8-sig"), reporting_currency)
        _insert(session, parsed, load_id, file, loaded_at, f"{token}:{key}")
    return {"fx rate files": len(files)}


def _insert(session: Session, parsed: ParsedRates, load_id: str, file: str, loaded_at: datetime, token: str) -> None:
    ensure_tables(session)
    n = len(parsed.rates)
    table = pa.table(
        {
            "rate_date": pa.array([r.rate_date for r in parsed.rates], pa.date32()),
            "currency": pa.array([r.currency for r in parsed.rates]),
            "rate_to_reporting": pa.array([r.rate_to_reporting for r in parsed.rates], pa.decimal128(38, 10)),
            "source": pa.array([f"{parsed.format}:{Path(file).name}"] * n),
            "load_id": pa.array([load_id] * n),
            "file": pa.array([file] * n),
            "line": pa.array([r.line for r in parsed.rates], pa.uint64()),
            "loaded_at": pa.array([loaded_at] * n, pa.timestamp("ms", "UTC")),
        }
    )
    session.insert_arrow("raw.fx_rates", table, settings={"insert_deduplication_token": token})

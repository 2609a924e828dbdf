"""Royalty data in ClickHouse: sales reports, per-period snapshots of the contracts, and their archive.

The tables are declared in mm_pipelines.stores.warehouse_tables; the ledger is the dbt model marts.royalty_ledger,
which dbt creates from its contract and only ever appends to (`full_refresh: false`).
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BeforeValidator

from mm_pipelines.events.archive import archive_report, archived_reports
from mm_pipelines.events.csv_reports import csv_records
from mm_pipelines.events.event_schema import CURRENCIES
from mm_pipelines.royalties.contracts import WORLDWIDE, Contract
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.objects import ObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables
from mm_pipelines.validation import Record, csv_rows, invalid

# --- sales reports ----------------------------------------------------------------------------------------

SALES_COLUMNS = ("sale_id", "revision", "sold_at", "sku", "territory", "units", "net_amount", "currency")


class SalesFileError(ValueError):
    pass


def _text(value) -> str:
    if not (value or "").strip():
        raise invalid("must not be empty")
    return value.strip()


def _revision(value) -> int:
    if not (value or "").isdecimal():
        raise invalid("must be a whole number >= 0")
    return int(value)


def _sold_at(value) -> datetime:
    try:
        sold_at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise invalid("must be an RFC 3339 timestamp") from None
    if sold_at.tzinfo is None:
        raise invalid("needs a time zone (e.g. 2026-10-01T12:00:00Z)")
    return sold_at.astimezone(UTC)


def _territory(value) -> str:
    territory = (value or "").strip()
    if (
        len(territory) != 2
        or not territory.isascii()
        or not territory.isalpha()
        or not territory.isupper()
        or territory == WORLDWIDE
    ):
        raise invalid("must be an ISO 3166 country code (two capital letters)")
    return territory


def _units(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid("must be a whole number (negative for returns)") from None


def _net_amount(value) -> Decimal:
    try:
        amount = Decimal(value)
    except (TypeError, InvalidOperation):
        raise invalid("must be a decimal number") from None
    if not amount.is_finite():
        raise invalid("must be finite")
    return amount


def _currency(value) -> str:
    if value not in CURRENCIES:
        raise invalid("must be an ISO 4217 code we accept")
    return value


class Sale(Record):
    """One net sales line, validated; returns are negative units and amounts, times are UTC."""

    sale_id: Annotated[str, BeforeValidator(_text)]
    revision: Annotated[int, BeforeValidator(_revision)]
    sold_at: Annotated[datetime, BeforeValidator(_sold_at)]
    sku: Annotated[str, BeforeValidator(_text)]
    territory: Annotated[str, BeforeValidator(_territory)]
    units: Annotated[int, BeforeValidator(_units)]
    net_amount: Annotated[Decimal, BeforeValidator(_net_amount)]
    currency: Annotated[str, BeforeValidator(_currency)]
    line: int


def parse_sales_csv(path: Path, text: str) -> list[Sale]:
    """Net sales lines. Errors name file, line and field."""
    return csv_rows(Sale, path, csv_records(path, text, SALES_COLUMNS, SalesFileError), SalesFileError)


def sales_table(sales: list[Sale], load_id: str, file: str, loaded_at: datetime) -> pa.Table:
    return pa.table(
        {
            "sale_id": pa.array([s.sale_id for s in sales]),
            "revision": pa.array([s.revision for s in sales], pa.uint32()),
            "sold_at": pa.array([s.sold_at for s in sales], pa.timestamp("ms", "UTC")),
            "sku": pa.array([s.sku for s in sales]),
            "territory": pa.array([s.territory for s in sales]),
            "units": pa.array([s.units for s in sales], pa.int64()),
            "net_amount": pa.array([s.net_amount for s in sales], pa.decimal128(38, 10)),
            "currency": pa.array([s.currency for s in sales]),
            "load_id": pa.array([load_id] * len(sales)),
            "file": pa.array([file] * len(sales)),
            "line": pa.array([s.line for s in sales], pa.uint64()),
            "loaded_at": pa.array([loaded_at] * len(sales), pa.timestamp("ms", "UTC")),
        }
    )


def load_sales_file(session: Session, path: Path, archive: ObjectStore | None = None) -> tuple[str, int]:
    """Validate the whole report, archive it, then insert it once: the file's SHA-256 is the insert dedup token."""
    data = path.read_bytes()
    load_id = hashlib.sha256(data).hexdigest()
    sales = parse_sales_csv(path, data.decode("utf-8-sig"))
    loaded_at = (
        archive_report(archive, SALES_PREFIX, load_id, str(path), data) if archive is not None else datetime.now(UTC)
    )
    _insert_sales(session, sales, load_id, str(path), loaded_at, f"sales:{load_id}")
    return load_id, len(sales)


def _insert_sales(
    session: Session, sales: list[Sale], load_id: str, file: str, loaded_at: datetime, token: str
) -> None:
    ensure_tables(session)
    if sales:
        session.insert_arrow(
            "raw.sales", sales_table(sales, load_id, file, loaded_at), settings={"insert_deduplication_token": token}
        )


# --- the archive: sales reports as loaded, and each period's ledger and statements --------------------------

SALES_PREFIX = "raw/sales"
LEDGER_PREFIX = "royalty/ledger"
STATEMENTS_PREFIX = "royalty/statements"


def archive_period(session: Session, store: ObjectStore, table: str, prefix: str, period: str) -> int:
    """Write the period's rows as one Parquet file (rewritten while the period is open; final once it closes)."""
    data = session.query_arrow(f"SELECT * FROM {table} WHERE period = {{p:String}}", {"p": period})
    buf = io.BytesIO()
    pq.write_table(data, buf)
    store.put_bytes(f"{prefix}/period={period}.parquet", buf.getvalue())
    return data.num_rows


def restore_royalties(session: Session, store: ObjectStore, token: str) -> dict[str, int]:
    """Disaster recovery: reload every archived sales report, ledger and statement period. The ledger's table is
    dbt's: mm_pipelines.recovery has dbt create it first when the archive holds ledger lines."""
    session.command("TRUNCATE TABLE raw.sales")
    reports = list(archived_reports(store, SALES_PREFIX))
    for key, load_id, file, loaded_at, data in reports:
        _insert_sales(
            session, parse_sales_csv(Path(file), data.decode("utf-8-sig")), load_id, file, loaded_at, f"{token}:{key}"
        )
    counts = {"sales reports": len(reports), "ledger lines": 0}
    for table, prefix in (("marts.royalty_ledger", LEDGER_PREFIX), ("royalty.statement_lines", STATEMENTS_PREFIX)):
        keys = store.list_keys(f"{prefix}/")
        if keys or session.scalar(f"EXISTS TABLE {table}"):
            session.command(f"TRUNCATE TABLE {table}")
        for key in keys:
            data = pq.read_table(io.BytesIO(store.get_bytes(key)))
            if data.num_rows:
                session.insert_arrow(table, data, settings={"insert_deduplication_token": f"{token}:{key}"})
            if table == "marts.royalty_ledger":
                counts["ledger lines"] += data.num_rows
    return counts


# --- per-period snapshots ---------------------------------------------------------------------------------


def period_bounds(period: str) -> tuple[date, date]:
    """(first day, last day) of a 'YYYY-MM' period."""
    first = date.fromisoformat(f"{period}-01")
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def rule_rows(period: str, contracts: list[Contract]) -> pa.Table:
    """One row per rule × payee for the contracts in force during the period."""
    first, last = period_bounds(period)
    cols: dict[str, list] = {
        k: []
        for k in (
            "period",
            "contract_ref",
            "contract_version",
            "rule_version",
            "creator_id",
            "account_id",
            "rule_id",
            "target_kind",
            "target_id",
            "base",
            "attribution_model",
            "rate_basis",
            "tier_start",
            "tier_rate",
            "deduction_per_unit",
            "currency",
            "territories",
            "effective_from",
            "effective_to",
            "payee_id",
            "share",
            "payee_rank",
        )
    }
    for c in contracts:
        if c.effective_to < first or c.effective_from > last:
            continue
        for rule in c.rules:
            rule_version = c.rule_version(rule)
            # The largest share (then the first payee id) takes the rounding remainder of a split.
            ranked = sorted(rule.splits, key=lambda s: (-s.share, s.payee_id))
            for rank, split in enumerate(ranked, start=1):
                row = {
                    "period": period,
                    "contract_ref": c.reference,
                    "contract_version": c.version,
                    "rule_version": rule_version,
                    "creator_id": c.creator_id,
                    "account_id": c.account_id(split.payee_id),
                    "rule_id": f"{c.reference}/{rule.rule_id}",
                    "target_kind": rule.target_kind,
                    "target_id": rule.target_id,
                    "base": rule.base,
                    "attribution_model": rule.attribution_model,
                    "rate_basis": rule.rate_basis,
                    "tier_start": [t.start for t in rule.tiers],
                    "tier_rate": [t.rate for t in rule.tiers],
                    "deduction_per_unit": rule.deduction_per_unit,
                    "currency": c.currency,
                    "territories": list(c.territories),
                    "effective_from": c.effective_from,
                    "effective_to": c.effective_to,
                    "payee_id": split.payee_id,
                    "share": split.share,
                    "payee_rank": rank,
                }
                for k, v in row.items():
                    cols[k].append(v)
    dec = pa.decimal128(38, 10)
    types = {
        "tier_start": pa.list_(dec),
        "tier_rate": pa.list_(dec),
        "deduction_per_unit": dec,
        "share": dec,
        "effective_from": pa.date32(),
        "effective_to": pa.date32(),
        "payee_rank": pa.uint16(),
        "territories": pa.list_(pa.string()),
    }
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})


def write_period_statuses(session: Session, periods: dict[str, str]) -> None:
    """Mirror Postgres's period statuses: the ledger model posts nothing into a period marked closed here."""
    ensure_tables(session)
    session.command("TRUNCATE TABLE royalty.periods")
    if periods:
        session.insert_arrow("royalty.periods", pa.table({"period": list(periods), "status": list(periods.values())}))


def write_snapshot(
    session: Session, period: str, rules: pa.Table, periods: dict[str, str], rates: dict[str, Decimal]
) -> None:
    """Replace the open period's snapshot (a closed period's snapshot is never touched)."""
    write_period_statuses(session, periods)
    session.command("ALTER TABLE royalty.rules DROP PARTITION {p:String}", {"p": period})
    if rules.num_rows:
        session.insert_arrow("royalty.rules", rules)
    session.command(
        "ALTER TABLE royalty.period_rates DELETE WHERE period = {p:String}",
        {"p": period},
        settings={"mutations_sync": 2},
    )
    if rates:
        session.insert_arrow(
            "royalty.period_rates",
            pa.table(
                {
                    "period": [period] * len(rates),
                    "currency": list(rates),
                    "rate_to_reporting": pa.array(list(rates.values()), pa.decimal128(38, 10)),
                }
            ),
        )


def currencies_to_convert(
    rules: pa.Table,
    payee_currencies: dict[str, str],
    sale_currencies: set[tuple[str, str]],
    credit_currencies: set[tuple[str, str]],
) -> set[str]:
    """The currencies a period converts between, so the ones that need an FX rate: a sale's (by SKU) or an
    attributed credit's (by asset) into its rule's contract currency, and a contract's into its payee's. One
    currency throughout needs no rate at all."""
    sold: dict[tuple[str, str], set[str]] = {}  # (kind, target) → currencies: one lookup per rule row
    for kind, found in (("sku", sale_currencies), ("asset", credit_currencies)):
        for target, c in found:
            sold.setdefault((kind, target), set()).add(c)
    pairs = set()
    for kind, target, currency, payee in zip(
        *(rules.column(c).to_pylist() for c in ("target_kind", "target_id", "currency", "payee_id")), strict=True
    ):
        pairs |= {(c, currency) for c in sold.get((kind, target), ())}
        if payee in payee_currencies:
            pairs.add((currency, payee_currencies[payee]))
    return {c for a, b in pairs if a != b for c in (a, b)}


def period_sale_currencies(session: Session, period: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(SKU, currency) of the sales and (asset, currency) of the attributed credits up to the period's end; no
    credits where attribution never ran."""
    sales = session.query_rows(
        "SELECT DISTINCT toString(sku), toString(currency) FROM raw.sales "
        "WHERE formatDateTime(sold_at, '%Y-%m') <= {p:String}",
        {"p": period},
    )
    credits = []
    if session.scalar("EXISTS TABLE marts.attribution_credits"):
        credits = session.query_rows(
            "SELECT DISTINCT toString(asset_id), toString(currency) FROM marts.attribution_credits "
            "WHERE formatDateTime(converted_at, '%Y-%m') <= {p:String}",
            {"p": period},
        )
    return {tuple(r) for r in sales}, {tuple(r) for r in credits}


def month_rates(session: Session, period: str) -> dict[str, Decimal]:
    """The period's month's rates (staging.stg_fx_rates: loaded by `mm fx load`, else the seed's), once built."""
    if not session.scalar("EXISTS TABLE staging.stg_fx_rates"):
        return {}
    rows = session.query_rows(
        "SELECT currency, toString(rate_to_reporting) FROM staging.stg_fx_rates WHERE month = toDate({m:String})",
        {"m": f"{period}-01"},
    )
    return {c: Decimal(r) for c, r in rows}

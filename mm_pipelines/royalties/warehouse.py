"""Royalty tables in ClickHouse: sales reports, per-period snapshots of the contracts, and statements.

The ledger itself is the dbt model marts.royalty_ledger; its table is created here, before dbt first
runs, so that dbt only ever appends to it (`full_refresh: false`) and no command can rebuild it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mm_pipelines.events.archive import archive_report, archived_reports
from mm_pipelines.events.contract import CURRENCIES
from mm_pipelines.events.csv_reports import csv_records
from mm_pipelines.royalties.contracts import WORLDWIDE, Contract
from mm_pipelines.stores.clickhouse import Session
from mm_pipelines.stores.objects import ObjectStore

D = "Decimal(38, 10)"
DDL = [
    "CREATE DATABASE IF NOT EXISTS raw",
    "CREATE DATABASE IF NOT EXISTS royalty",
    "CREATE DATABASE IF NOT EXISTS marts",
    # Sales reports as loaded; a corrected line comes back with the same sale_id and a higher revision.
    f"""CREATE TABLE IF NOT EXISTS raw.sales (
        sale_id String, revision UInt32, sold_at DateTime64(3, 'UTC'), sku String, territory LowCardinality(String),
        units Int64, net_amount {D}, currency LowCardinality(String), load_id String, file String, line UInt64,
        loaded_at DateTime64(3, 'UTC')
    ) ENGINE = MergeTree ORDER BY (sale_id, revision)
    SETTINGS non_replicated_deduplication_window = 1000""",
    f"""CREATE TABLE IF NOT EXISTS royalty.rules (
        period String, contract_ref String, contract_version String, rule_version String, creator_id String,
        account_id String, rule_id String, target_kind LowCardinality(String), target_id String, base LowCardinality(String),
        attribution_model LowCardinality(String), rate_basis LowCardinality(String),
        tier_start Array({D}), tier_rate Array({D}), deduction_per_unit {D}, currency LowCardinality(String),
        territories Array(String), effective_from Date, effective_to Date,
        payee_id String, share {D}, payee_rank UInt16
    ) ENGINE = MergeTree PARTITION BY period ORDER BY (period, rule_id, payee_id)""",
    "CREATE TABLE IF NOT EXISTS royalty.periods (period String, status LowCardinality(String)) ENGINE = MergeTree ORDER BY period",
    f"""CREATE TABLE IF NOT EXISTS royalty.period_rates (period String, currency LowCardinality(String), rate_to_reporting {D})
        ENGINE = MergeTree ORDER BY (period, currency)""",
    f"""CREATE TABLE IF NOT EXISTS marts.royalty_ledger (
        period String, entry LowCardinality(String), idempotency_key String, posted_at DateTime64(3, 'UTC'),
        sale_id String, revision UInt64, sold_at DateTime64(3, 'UTC'), sale_period String, territory LowCardinality(String),
        creator_id String, contract_ref String, contract_version String, rule_version String, account_id String,
        rule_id String, target_kind LowCardinality(String), target_id String, base LowCardinality(String), attribution_model LowCardinality(String),
        rate_basis LowCardinality(String), tier_index UInt16, rate_applied {D}, units Int64, tier_quantity {D},
        sale_amount {D}, sale_currency LowCardinality(String), fx_rate {D}, deduction {D}, base_amount {D},
        rule_royalty {D}, payee_id String, share {D}, payee_rank UInt16, royalty_amount {D}, currency LowCardinality(String)
    ) ENGINE = MergeTree PARTITION BY period ORDER BY (period, payee_id, idempotency_key)""",
    f"""CREATE TABLE IF NOT EXISTS royalty.statement_lines (
        period String, payee_id String, currency LowCardinality(String), account_id String,
        opening {D}, returned {D}, earnings {D}, reserve_held {D}, reserve_released {D}, advances {D},
        unrecouped_in {D}, recouped {D}, mg_topup {D}, balance {D}, paid {D}, withheld {D}, carried_out {D},
        unrecouped_out {D}, reserves_out Array(Tuple(String, {D})), carried_reason String,
        contract_versions Array(String), computed_at DateTime64(3, 'UTC')
    ) ENGINE = MergeTree PARTITION BY period ORDER BY (period, payee_id, account_id)""",
    # Payable but held (KYC, no bank details): it returns on the payee's payments account next period.
    f"ALTER TABLE royalty.statement_lines ADD COLUMN IF NOT EXISTS held {D} AFTER paid",
    "ALTER TABLE royalty.statement_lines ADD COLUMN IF NOT EXISTS held_reason String AFTER carried_reason",
]


def ensure_royalty_tables(session: Session) -> None:
    for statement in DDL:
        session.command(statement)


# --- sales reports ----------------------------------------------------------------------------------------

SALES_COLUMNS = ("sale_id", "revision", "sold_at", "sku", "territory", "units", "net_amount", "currency")


class SalesFileError(ValueError):
    pass


@dataclass(frozen=True)
class Sale:
    sale_id: str
    revision: int
    sold_at: datetime
    sku: str
    territory: str
    units: int
    net_amount: Decimal
    currency: str
    line: int


def parse_sales_csv(path: Path, text: str) -> list[Sale]:
    """Net sales lines; returns are negative units and amounts. Errors name file, line and field."""
    out = []
    for line, r in csv_records(path, text, SALES_COLUMNS, SalesFileError):
        def bad(field: str, why: str) -> SalesFileError:
            return SalesFileError(f"{path}:{line}: field {field!r} {why} (got {r.get(field)!r})")

        if not (r["sale_id"] or "").strip():
            raise bad("sale_id", "must not be empty")
        if not (r["revision"] or "").isdecimal():
            raise bad("revision", "must be a whole number >= 0")
        try:
            sold_at = datetime.fromisoformat(r["sold_at"].replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            raise bad("sold_at", "must be an RFC 3339 timestamp") from None
        if sold_at.tzinfo is None:
            raise bad("sold_at", "needs a time zone (e.g. 2026-10-01T12:00:00Z)")
        if not (r["sku"] or "").strip():
            raise bad("sku", "must not be empty")
        territory = (r["territory"] or "").strip()
        if len(territory) != 2 or not territory.isascii() or not territory.isalpha() or not territory.isupper() or territory == WORLDWIDE:
            raise bad("territory", "must be an ISO 3166 country code (two capital letters)")
        try:
            units = int(r["units"])
        except (TypeError, ValueError):
            raise bad("units", "must be a whole number (negative for returns)") from None
        try:
            amount = Decimal(r["net_amount"])
        except (TypeError, InvalidOperation):
            raise bad("net_amount", "must be a decimal number") from None
        if not amount.is_finite():
            raise bad("net_amount", "must be finite")
        if r["currency"] not in CURRENCIES:
            raise bad("currency", "must be an ISO 4217 code we accept")
        out.append(Sale(r["sale_id"].strip(), int(r["revision"]), sold_at.astimezone(timezone.utc), r["sku"].strip(), territory, units, amount, r["currency"], line))
    return out


def sales_table(sales: list[Sale], load_id: str, file: str, loaded_at: datetime) -> pa.Table:
    return pa.table({
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
    })


def load_sales_file(session: Session, path: Path, archive: ObjectStore | None = None) -> tuple[str, int]:
    """Validate the whole report, archive it, then insert it once: the file's SHA-256 is the insert dedup token."""
    data = path.read_bytes()
    load_id = hashlib.sha256(data).hexdigest()
    sales = parse_sales_csv(path, data.decode("utf-8-sig"))
    loaded_at = archive_report(archive, SALES_PREFIX, load_id, str(path), data) if archive is not None else datetime.now(timezone.utc)
    _insert_sales(session, sales, load_id, str(path), loaded_at, f"sales:{load_id}")
    return load_id, len(sales)


def _insert_sales(session: Session, sales: list[Sale], load_id: str, file: str, loaded_at: datetime, token: str) -> None:
    ensure_royalty_tables(session)
    if sales:
        session.insert_arrow("raw.sales", sales_table(sales, load_id, file, loaded_at), settings={"insert_deduplication_token": token})


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


def restore_royalties(session: Session, store: ObjectStore, token_prefix: str) -> tuple[int, int]:
    """Disaster recovery: reload every archived sales report, ledger and statement period; (reports, ledger lines)."""
    ensure_royalty_tables(session)
    session.command("TRUNCATE TABLE raw.sales")
    reports = list(archived_reports(store, SALES_PREFIX))
    for key, load_id, file, loaded_at, data in reports:
        _insert_sales(session, parse_sales_csv(Path(file), data.decode("utf-8-sig")), load_id, file, loaded_at, f"{token_prefix}:{key}")
    lines = 0
    for table, prefix in (("marts.royalty_ledger", LEDGER_PREFIX), ("royalty.statement_lines", STATEMENTS_PREFIX)):
        session.command(f"TRUNCATE TABLE {table}")
        for key in store.list_keys(f"{prefix}/"):
            data = pq.read_table(io.BytesIO(store.get_bytes(key)))
            if data.num_rows:
                session.insert_arrow(table, data, settings={"insert_deduplication_token": f"{token_prefix}:{key}"})
            lines += data.num_rows if table == "marts.royalty_ledger" else 0
    return len(reports), lines


# --- per-period snapshots ---------------------------------------------------------------------------------


def period_bounds(period: str) -> tuple[date, date]:
    """(first day, last day) of a 'YYYY-MM' period."""
    first = date.fromisoformat(f"{period}-01")
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


def rule_rows(period: str, contracts: list[Contract]) -> pa.Table:
    """One row per rule × payee for the contracts in force during the period."""
    first, last = period_bounds(period)
    cols: dict[str, list] = {k: [] for k in (
        "period", "contract_ref", "contract_version", "rule_version", "creator_id", "account_id", "rule_id", "target_kind", "target_id",
        "base", "attribution_model", "rate_basis", "tier_start", "tier_rate", "deduction_per_unit", "currency",
        "territories", "effective_from", "effective_to", "payee_id", "share", "payee_rank")}
    for c in contracts:
        if c.effective_to < first or c.effective_from > last:
            continue
        for rule in c.rules:
            rule_version = c.rule_version(rule)
            # The largest share (then the first payee id) takes the rounding remainder of a split.
            ranked = sorted(rule.splits, key=lambda s: (-s.share, s.payee_id))
            for rank, split in enumerate(ranked, start=1):
                row = {
                    "period": period, "contract_ref": c.reference, "contract_version": c.version,
                    "rule_version": rule_version, "creator_id": c.creator_id,
                    "account_id": c.account_id(split.payee_id), "rule_id": f"{c.reference}/{rule.rule_id}",
                    "target_kind": rule.target_kind, "target_id": rule.target_id, "base": rule.base,
                    "attribution_model": rule.attribution_model, "rate_basis": rule.rate_basis,
                    "tier_start": [t.start for t in rule.tiers], "tier_rate": [t.rate for t in rule.tiers],
                    "deduction_per_unit": rule.deduction_per_unit, "currency": c.currency,
                    "territories": list(c.territories), "effective_from": c.effective_from, "effective_to": c.effective_to,
                    "payee_id": split.payee_id, "share": split.share, "payee_rank": rank,
                }
                for k, v in row.items():
                    cols[k].append(v)
    dec = pa.decimal128(38, 10)
    types = {"tier_start": pa.list_(dec), "tier_rate": pa.list_(dec), "deduction_per_unit": dec, "share": dec,
             "effective_from": pa.date32(), "effective_to": pa.date32(), "payee_rank": pa.uint16(), "territories": pa.list_(pa.string())}
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})


def write_period_statuses(session: Session, periods: dict[str, str]) -> None:
    """Mirror Postgres's period statuses: the ledger model posts nothing into a period marked closed here."""
    ensure_royalty_tables(session)
    session.command("TRUNCATE TABLE royalty.periods")
    if periods:
        session.insert_arrow("royalty.periods", pa.table({"period": list(periods), "status": list(periods.values())}))


def write_snapshot(session: Session, period: str, rules: pa.Table, periods: dict[str, str], rates: dict[str, Decimal]) -> None:
    """Replace the open period's snapshot (a closed period's snapshot is never touched)."""
    write_period_statuses(session, periods)
    session.command("ALTER TABLE royalty.rules DROP PARTITION {p:String}", {"p": period})
    if rules.num_rows:
        session.insert_arrow("royalty.rules", rules)
    session.command("ALTER TABLE royalty.period_rates DELETE WHERE period = {p:String}", {"p": period}, settings={"mutations_sync": 2})
    if rates:
        session.insert_arrow("royalty.period_rates", pa.table({
            "period": [period] * len(rates), "currency": list(rates),
            "rate_to_reporting": pa.array(list(rates.values()), pa.decimal128(38, 10)),
        }))


def month_rates(session: Session, period: str) -> dict[str, Decimal]:
    """Finance's recorded rates for the period's month (seed reference.fx_rates), if the seed is built."""
    if not session.scalar("EXISTS TABLE reference.fx_rates"):
        return {}
    rows = session.query_rows(
        "SELECT currency, toString(rate_to_reporting) FROM reference.fx_rates WHERE month = toDate({m:String})",
        {"m": f"{period}-01"},
    )
    return {c: Decimal(r) for c, r in rows}

"""Every ClickHouse table the Python code owns; dbt declares the rest (staging, intermediate and marts models).

Each definition is exactly what earlier versions created, so existing warehouses keep working: change a table by
appending an `ALTER … IF NOT EXISTS` to its statements, never by editing its CREATE.
"""

from __future__ import annotations

from dataclasses import dataclass

from mm_pipelines.stores.clickhouse import Session

# Retried inserts are recognised by token within this many most recent blocks per table.
DEDUP_WINDOW = 10_000
D = "Decimal(38, 10)"


@dataclass(frozen=True)
class Table:
    name: str
    writer: str  # the code that writes it
    statements: tuple[str, ...]  # CREATE TABLE IF NOT EXISTS, then the ALTERs added since


TABLES = (
    Table(
        "raw.events",
        "events.ingest (Kafka offset ranges, event files); events.archive replays it",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.events (
            event_id String,
            event_type LowCardinality(String),
            occurred_at DateTime64(3, 'UTC'),
            user_id String,
            channel LowCardinality(String),
            campaign_id String,
            creative_id String,
            asset_id String,
            order_id Nullable(String),
            revenue Nullable(Decimal(38, 10)),
            currency LowCardinality(Nullable(String)),
            sku Nullable(String),
            schema_version UInt16,
            extra Map(String, String),
            topic LowCardinality(String),
            partition UInt32,
            offset UInt64,
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (toDate(occurred_at), event_type, user_id, event_id)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    Table(
        "raw.dead_letters",
        "events.ingest (malformed or PII-bearing events, with their source)",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.dead_letters (
            source LowCardinality(String),
            topic LowCardinality(String),
            partition UInt32,
            offset UInt64,
            file String,
            line UInt64,
            raw String,
            error String,
            dead_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (source, topic, partition, offset, file, line)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    Table(
        "raw.ingested_ranges",
        "events.ingest, last for each batch: the offsets ingestion resumes from",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.ingested_ranges (
            topic LowCardinality(String),
            partition UInt32,
            start_offset UInt64,
            end_offset UInt64,
            events UInt64,
            dead_letters UInt64,
            min_occurred_at Nullable(DateTime64(3, 'UTC')),
            max_occurred_at Nullable(DateTime64(3, 'UTC')),
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        ORDER BY (topic, partition, start_offset)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    # Written before a batch inserts anything: after a crash the retry re-plans the very same range
    # (and so the same dedup tokens), even if more events have arrived since.
    Table(
        "raw.ingest_intents",
        "events.ingest, before a batch inserts anything",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.ingest_intents (
            topic LowCardinality(String),
            partition UInt32,
            start_offset UInt64,
            end_offset UInt64,
            planned_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree
        ORDER BY (topic, partition, start_offset)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    # A restatement is a new load of the same key (stg_ad_spend keeps the latest).
    Table(
        "raw.ad_spend",
        "events.spend (ad-platform spend reports)",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.ad_spend (
            spend_date Date,
            channel LowCardinality(String),
            campaign_id String,
            amount Decimal(38, 10),
            currency LowCardinality(String),
            load_id String,
            file String,
            line UInt64,
            loaded_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (spend_date, channel, campaign_id, loaded_at)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    # Daily FX rates from Finance's files; a later file's rate for a day and currency wins (stg_fx_rates).
    Table(
        "raw.fx_rates",
        "events.fx_rates (mm fx load: ECB reference rates or date,currency,rate)",
        (
            f"""
        CREATE TABLE IF NOT EXISTS raw.fx_rates (
            rate_date Date,
            currency LowCardinality(String),
            rate_to_reporting Decimal(38, 10),
            source String,
            load_id String,
            file String,
            line UInt64,
            loaded_at DateTime64(3, 'UTC')
        ) ENGINE = MergeTree
        ORDER BY (currency, rate_date, loaded_at)
        SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}""",
        ),
    ),
    # A corrected line comes back with the same sale_id and a higher revision.
    Table(
        "raw.sales",
        "royalties.warehouse (sales reports as loaded)",
        (
            f"""CREATE TABLE IF NOT EXISTS raw.sales (
        sale_id String, revision UInt32, sold_at DateTime64(3, 'UTC'), sku String, territory LowCardinality(String),
        units Int64, net_amount {D}, currency LowCardinality(String), load_id String, file String, line UInt64,
        loaded_at DateTime64(3, 'UTC')
    ) ENGINE = MergeTree ORDER BY (sale_id, revision)
    SETTINGS non_replicated_deduplication_window = 1000""",
        ),
    ),
    Table(
        "royalty.rules",
        "assets.royalties (the contracts in force, per period, from Postgres)",
        (
            f"""CREATE TABLE IF NOT EXISTS royalty.rules (
        period String, contract_ref String, contract_version String, rule_version String, creator_id String,
        account_id String, rule_id String, target_kind LowCardinality(String), target_id String,
        base LowCardinality(String),
        attribution_model LowCardinality(String), rate_basis LowCardinality(String),
        tier_start Array({D}), tier_rate Array({D}), deduction_per_unit {D}, currency LowCardinality(String),
        territories Array(String), effective_from Date, effective_to Date,
        payee_id String, share {D}, payee_rank UInt16
    ) ENGINE = MergeTree PARTITION BY period ORDER BY (period, rule_id, payee_id)""",
        ),
    ),
    Table(
        "royalty.periods",
        "assets.royalties (Postgres's period statuses, mirrored)",
        (
            "CREATE TABLE IF NOT EXISTS royalty.periods (period String, status LowCardinality(String)) "
            "ENGINE = MergeTree ORDER BY period",
        ),
    ),
    Table(
        "royalty.period_rates",
        "assets.royalties (the FX rates recorded for a period)",
        (
            f"""CREATE TABLE IF NOT EXISTS royalty.period_rates (
        period String, currency LowCardinality(String), rate_to_reporting {D})
        ENGINE = MergeTree ORDER BY (period, currency)""",
        ),
    ),
    Table(
        "royalty.statement_lines",
        "royalties.statement_run (one period's statements)",
        (
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
        ),
    ),
    Table(
        "intermediate.attribution_fit",
        "assets.attribution (the data-driven models' daily fits)",
        (
            """
CREATE TABLE IF NOT EXISTS intermediate.attribution_fit (
    fit_date Date,
    model LowCardinality(String),
    scope LowCardinality(String),
    channel_set Array(String),
    channel String,
    value Float64,
    attributed_conversions Float64,
    journeys UInt64,
    converting_journeys UInt64,
    fit_days UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(fit_date)
ORDER BY (fit_date, model, scope, channel_set, channel)""",
        ),
    ),
    Table(
        "backfill.attribution_credits",
        "assets.backfill (Spark backfills over the archive)",
        (
            """
CREATE TABLE IF NOT EXISTS backfill.attribution_credits (
    conversion_id String,
    order_id String,
    user_id String,
    converted_at DateTime64(3, 'UTC'),
    conversion_date Date,
    model LowCardinality(String),
    touch_index UInt16,
    touch_count UInt16,
    touch_id String,
    touch_at Nullable(DateTime64(3, 'UTC')),
    touch_type LowCardinality(String),
    channel LowCardinality(String),
    campaign_id String,
    creative_id String,
    asset_id String,
    credit_share Decimal(18, 9),
    revenue Decimal(38, 2),
    revenue_credit Decimal(38, 2),
    currency LowCardinality(String)
) ENGINE = MergeTree
PARTITION BY conversion_date
ORDER BY (conversion_date, model, conversion_id, touch_index)""",
        ),
    ),
)

# Tables earlier versions created that nothing uses any more.
RETIRED = ("raw.event_landing",)  # the landing table, replaced by per-batch scratch tables


def ensure_tables(session: Session) -> None:
    """Create every table above that is missing, and drop retired ones. All of them at once: about 25 ms in chDB
    when they exist (0.2 s on an empty warehouse), so every writer calls it instead of tracking which it needs."""
    for database in dict.fromkeys(t.name.split(".")[0] for t in TABLES):
        session.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table in TABLES:
        for statement in table.statements:
            session.command(statement)
    for name in RETIRED:
        session.command(f"DROP TABLE IF EXISTS {name}")

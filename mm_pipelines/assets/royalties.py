"""Royalties, one monthly partition per period: contract snapshot → ledger (dbt) → statements → payout drafts.

Approvals, exports and confirmations are people's decisions and happen through `mm payouts` and the
confirmation sensor; the assets stop at draft batches.
"""

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
    multi_asset,
)

from mm_pipelines.assets.partitions import MONTHLY_PARTITIONS, period_of
from mm_pipelines.config import Settings
from mm_pipelines.resources import ClickHouseResource, ObjectStoreResource, PostgresResource
from mm_pipelines.royalties import bank_details, batches, statement_run, store
from mm_pipelines.royalties import warehouse as royalty_warehouse
from mm_pipelines.stores.warehouse_tables import ensure_tables

# Periods post in order, one run each: a period's statements open with the balances of the one before.
ONE_PERIOD_PER_RUN = BackfillPolicy.multi_run(1)
PREVIOUS_PERIOD = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)

RULES_KEY = AssetKey(["royalty", "rules"])
PERIODS_KEY = AssetKey(["royalty", "periods"])
PERIOD_RATES_KEY = AssetKey(["royalty", "period_rates"])
LEDGER_KEY = AssetKey(["marts", "royalty_ledger"])
STATEMENTS_KEY = AssetKey(["royalty", "statements"])
PAYOUT_BATCHES_KEY = AssetKey(["royalty", "payout_batches"])


class RoyaltyRunError(RuntimeError):
    pass


@multi_asset(
    name="royalty_rules_snapshot",
    specs=[
        AssetSpec(
            RULES_KEY,
            group_name="royalty",
            kinds={"postgres", "clickhouse"},
            description=(
                "The royalty rules × payees in force in the period, copied from Postgres with their contract versions."
            ),
        ),
        AssetSpec(
            PERIODS_KEY,
            group_name="royalty",
            kinds={"clickhouse"},
            description="Period statuses (open / closed) as recorded in Postgres.",
        ),
        AssetSpec(
            PERIOD_RATES_KEY,
            group_name="royalty",
            kinds={"clickhouse"},
            description="The FX rates recorded for the period; recorded once, never changed.",
        ),
    ],
    partitions_def=MONTHLY_PARTITIONS,
    backfill_policy=ONE_PERIOD_PER_RUN,
)
def royalty_rules_snapshot(context: AssetExecutionContext, postgres: PostgresResource, clickhouse: ClickHouseResource):
    """Copy the contracts in force into ClickHouse for the period, so each ledger line names its rule version."""
    period = period_of(context.partition_key)
    warehouse = clickhouse.get_warehouse()
    with postgres.get_db().connect() as conn:
        periods = dict(conn.execute("SELECT period, status FROM royalty_periods").fetchall())
        if periods.get(period) == "closed":
            context.log.info(f"Period {period} is closed: its snapshot is kept as it was")
            with warehouse.session(context.log.info) as s:
                royalty_warehouse.write_period_statuses(s, periods)
            for key in (RULES_KEY, PERIODS_KEY, PERIOD_RATES_KEY):
                yield MaterializeResult(asset_key=key, metadata={"period": period, "status": "closed"})
            return
        contracts = store.stored_contracts(conn)
        with warehouse.session(context.log.info) as s:
            ensure_tables(s)
            rates = store.record_period_rates(conn, period, royalty_warehouse.month_rates(s, period))
            sales, credits = royalty_warehouse.period_sale_currencies(s, period)
        rules = royalty_warehouse.rule_rows(period, contracts)
        payees = dict(conn.execute("SELECT payee_id, currency FROM payees").fetchall())
        needed = royalty_warehouse.currencies_to_convert(rules, payees, sales, credits)
        missing = sorted(needed - set(rates))
        if missing:
            raise RoyaltyRunError(
                f"no FX rate recorded for {period} in {', '.join(missing)}: "
                "load Finance's rates for the month with `mm fx load FILE` (the ECB's reference rates CSV, "
                "or date,currency,rate)"
            )
        with warehouse.session(context.log.info) as s:
            royalty_warehouse.write_snapshot(s, period, rules, periods, rates)
    yield MaterializeResult(
        asset_key=RULES_KEY,
        metadata={
            "period": period,
            "rule_rows": rules.num_rows,
            "contracts": len(set(rules.column("contract_ref").to_pylist())),
        },
    )
    yield MaterializeResult(
        asset_key=PERIODS_KEY,
        metadata={"closed": MetadataValue.json(sorted(p for p, st in periods.items() if st == "closed"))},
    )
    yield MaterializeResult(
        asset_key=PERIOD_RATES_KEY,
        metadata={"rates": MetadataValue.json({c: str(r) for c, r in sorted(rates.items())})},
    )


@asset(
    key=STATEMENTS_KEY,
    group_name="royalty",
    kinds={"python", "clickhouse", "postgres"},
    partitions_def=MONTHLY_PARTITIONS,
    backfill_policy=ONE_PERIOD_PER_RUN,
    deps=[LEDGER_KEY, AssetDep(STATEMENTS_KEY, partition_mapping=PREVIOUS_PERIOD)],
    description=(
        "Per-payee statements for the period from the ledger, the contract terms and last period's balances "
        "(docs/royalty_statements.md)."
    ),
)
def royalty_statements(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    clickhouse: ClickHouseResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    period = period_of(context.partition_key)
    with postgres.get_db().connect() as conn, clickhouse.get_warehouse().session(context.log.info) as s:
        result = statement_run.compute_period(conn, s, period)
        if result.skipped:
            context.log.info(result.skipped)
            return MaterializeResult(metadata={"period": period, "skipped": result.skipped})
        count = statement_run.write_period(conn, s, period, result)
        royalty_warehouse.archive_period(
            s, object_store.open(), "royalty.statement_lines", royalty_warehouse.STATEMENTS_PREFIX, period
        )
    st = result.statements
    return MaterializeResult(
        metadata={
            "period": period,
            "statements": count,
            "earnings": MetadataValue.json(_by_currency(st, "earnings")),
            "payable": MetadataValue.json(_by_currency(st, "paid")),
            "held": MetadataValue.json(_by_currency(st, "held")),
            "carried_below_threshold": sum(1 for x in st if x.carried_reason == "below threshold"),
        }
    )


def _by_currency(statements, field: str) -> dict[str, str]:
    totals: dict = {}
    for s in statements:
        totals[s.currency] = totals.get(s.currency, 0) + getattr(s, field)
    return {c: str(v) for c, v in sorted(totals.items())}


@asset(
    key=PAYOUT_BATCHES_KEY,
    group_name="royalty",
    kinds={"postgres"},
    partitions_def=MONTHLY_PARTITIONS,
    backfill_policy=ONE_PERIOD_PER_RUN,
    deps=[STATEMENTS_KEY],
    description=(
        "Draft payout batches (one per currency) for payees with verified KYC; others are held with the reason."
    ),
)
def royalty_payout_batches(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
    period = period_of(context.partition_key)
    vault = bank_details.vault(Settings.from_env())  # each line is drafted with the bank details the vault holds
    with postgres.get_db().connect() as conn:
        ids, holds = batches.create_batches(conn, period, actor=f"dagster:{context.run_id}", vault=vault)
        rows = conn.execute(
            "SELECT batch_id, currency, total, line_count, status FROM payout_batches "
            "WHERE period = %s ORDER BY batch_id",
            (period,),
        ).fetchall()
    return MaterializeResult(
        metadata={
            "period": period,
            "batches": MetadataValue.md(
                "\n".join(
                    ["| batch | currency | total | lines | status |", "|---|---|---|---|---|"]
                    + [f"| {b} | {c} | {t} | {n} | {st} |" for b, c, t, n, st in rows]
                )
                if rows
                else "none"
            ),
            "held": len(holds),
        }
    )

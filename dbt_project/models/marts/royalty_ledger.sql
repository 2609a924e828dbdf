-- Royalty accruals, append-only (docs/royalties.md, "Ledger"). Each run posts into run_var('royalty_period'), if it
-- is open: accrual lines for sale × rule × tier × payee not posted before, and reversal lines for posted ones the
-- period's terms no longer call for (a corrected sale, changed attribution, an amended rule). A closed period is
-- never written again; re-running a period posts nothing (every key is already there). Its columns are the
-- enforced contract in schema.yml; dbt creates the table on the first run and only appends to it after that.
{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false, on_schema_change='fail',
    tags=['royalty'], engine='MergeTree()', partition_by='period',
    order_by=['period', 'payee_id', 'idempotency_key']) }}
{%- set period = run_var('royalty_period') -%}
{%- set dec = 'toDecimal128({}, 10)' -%}
{%- set terms = ['rule_id', 'contract_ref', 'contract_version', 'rule_version', 'creator_id', 'target_kind',
    'target_id', 'base', 'attribution_model', 'rate_basis', 'tier_start', 'tier_rate', 'deduction_per_unit', 'currency',
    'territories', 'effective_from', 'effective_to'] -%}
{%- set line = ['sale_id', 'revision', 'sold_at', 'territory', 'units', 'sale_amount', 'sale_currency'] + terms %}
{#- Royalties run with or without ad events: attributed revenue is one optional source of earnings. Once credits were
    posted, a missing credits table is an error, never "no credits" (which would reverse every one of them). -#}
{%- set credits = load_relation(ref('attribution_credits')) %}
{%- if credits is none and execute and is_incremental() %}
    {%- set posted_credits = run_query(
        "select count() from " ~ this ~ " where target_kind = 'asset'").columns[0].values()[0] %}
    {%- if posted_credits > 0 %}
        {{ exceptions.raise_compiler_error(
            "marts.attribution_credits is missing, yet the ledger holds " ~ posted_credits
            ~ " lines of attributed revenue: rebuild attribution (mm materialize) before posting royalties") }}
    {%- endif %}
{%- endif %}

-- A ClickHouse result column keeps its qualifier (`p.sale_id`) unless aliased: the self-aliases name the columns.
-- noqa: disable=AL09
with is_open as (
    select count() = 0 as open
    from {{ source('royalty', 'periods') }}
    where period = '{{ period }}' and status = 'closed'
),

rules as (
    select * from {{ source('royalty', 'rules') }}
    where period = '{{ period }}' and (select is_open.open from is_open)
),

rule_terms as (
    select
        rule_id,
        any(contract_ref) as contract_ref,
        any(contract_version) as contract_version,
        any(rule_version) as rule_version,
        any(creator_id) as creator_id,
        any(target_kind) as target_kind,
        any(target_id) as target_id,
        any(base) as base,
        any(attribution_model) as attribution_model,
        any(rate_basis) as rate_basis,
        any(tier_start) as tier_start,
        any(tier_rate) as tier_rate,
        any(deduction_per_unit) as deduction_per_unit,
        any(currency) as currency,
        any(territories) as territories,
        any(effective_from) as effective_from,
        any(effective_to) as effective_to
    from rules
    group by rule_id
),

period_end as (
    select toDateTime64('{{ period }}-01 00:00:00', 3, 'UTC') + interval 1 month as t
),

sales as (
    select *
    from {{ ref('stg_sales') }}
    where sold_at < (select period_end.t from period_end)
    order by sale_id asc, revision desc
    limit 1 by sale_id
),

-- Rule-level base lines the period's terms call for: net sales of a SKU, or revenue attributed to an asset.
desired as (
    select
        s.sale_id as sale_id,
        toUInt64(s.revision) as revision,
        s.sold_at as sold_at,
        toString(s.territory) as territory,
        s.units as units, s.net_amount as sale_amount, toString(s.currency) as sale_currency,
        {{ aliased_columns('r', terms) }}
    from sales as s
    inner join rule_terms as r on r.target_kind = 'sku' and s.sku = r.target_id
    where
        toDate(s.sold_at) between r.effective_from and r.effective_to
        and (has(r.territories, 'WW') or has(r.territories, toString(s.territory)))
    {%- if credits is not none %}

    union all

    -- A credit's revision hashes what the royalty depends on: if attribution changes, the old line is reversed.
    select
        concat(c.conversion_id, '#', c.model, '#', toString(c.touch_index)) as sale_id,
        cityHash64(c.touch_id, toString(c.revenue_credit), c.currency) as revision,
        c.converted_at as sold_at, 'WW' as territory, toInt64(0) as units,
        {{ dec.format('c.revenue_credit') }} as sale_amount, toString(c.currency) as sale_currency,
        {{ aliased_columns('r', terms) }}
    from {{ ref('attribution_credits') }} as c
    inner join rule_terms as r
        on r.target_kind = 'asset' and c.asset_id = r.target_id and c.model = r.attribution_model
    where
        c.converted_at < (select period_end.t from period_end)
        and c.conversion_date between r.effective_from and r.effective_to
    {%- endif %}
),

posted as (
    {%- if is_incremental() %}
    select * from {{ this }}
    {%- else %}
    -- The first run: nothing posted yet, in the ledger's own columns.
        select * from null('{{ contract_structure() }}')
    {%- endif %}
),

posted_groups as (
    select
        sale_id,
        revision,
        rule_id,
        rule_version,
        countIf(entry = 'reversal') > 0 as reversed
    from posted
    where payee_rank = 1
    group by sale_id, revision, rule_id, rule_version
),

to_reverse as (
    select
        sale_id,
        revision,
        rule_id,
        rule_version
    from posted_groups
    where
        not reversed
        and rule_id in (select rule_terms.rule_id from rule_terms)
        and (sale_id, revision, rule_id, rule_version) not in (
            select
                desired.sale_id,
                desired.revision,
                desired.rule_id,
                desired.rule_version
            from desired
        )
),

reversals as (
    -- Columns are qualified: ClickHouse would otherwise read `entry` in WHERE as this SELECT's alias.
    select
        '{{ period }}' as period,
        'reversal' as entry,
        lower(hex(SHA256(concat(p.idempotency_key, '|reversal')))) as idempotency_key,
        now64(3) as posted_at,
        p.sale_id as sale_id,
        p.revision as revision,
        p.sold_at as sold_at,
        p.sale_period as sale_period,
        p.territory as territory,
        p.creator_id as creator_id,
        p.contract_ref as contract_ref,
        p.contract_version as contract_version,
        p.rule_version as rule_version,
        p.account_id as account_id,
        p.rule_id as rule_id,
        p.target_kind as target_kind,
        p.target_id as target_id,
        p.base as base,
        p.attribution_model as attribution_model,
        p.rate_basis as rate_basis,
        p.tier_index as tier_index,
        p.rate_applied as rate_applied,
        -p.units as units,
        -p.tier_quantity as tier_quantity,
        -p.sale_amount as sale_amount,
        p.sale_currency as sale_currency,
        p.fx_rate as fx_rate,
        -p.deduction as deduction,
        -p.base_amount as base_amount,
        -p.rule_royalty as rule_royalty,
        p.payee_id as payee_id,
        p.share as share,
        p.payee_rank as payee_rank,
        -p.royalty_amount as royalty_amount,
        p.currency as currency
    from posted as p
    where
        p.entry = 'accrual'
        and (p.sale_id, p.revision, p.rule_id, p.rule_version) in (
            select
                to_reverse.sale_id,
                to_reverse.revision,
                to_reverse.rule_id,
                to_reverse.rule_version
            from to_reverse
        )
),

-- Tiers follow the cumulative quantity already posted for the rule (all periods, net of reversals).
prior as (
    select
        rule_id,
        sum(tier_quantity) as quantity
    from (
        select
            rule_id,
            tier_quantity
        from posted
        where payee_rank = 1
        union all
        select
            rule_id,
            tier_quantity
        from reversals
        where payee_rank = 1
    ) as posted_tiers
    group by rule_id
),

rates as (
    select
        currency,
        rate_to_reporting
    from {{ source('royalty', 'period_rates') }}
    where period = '{{ period }}'
),

converted as (
    select
        {{ aliased_columns('n', line) }},
        if(
            n.sale_currency = n.currency,
            {{ dec.format('1') }},
            {{ dec.format(
                "round(toDecimal256(throwIf(fs.rate_to_reporting = 0 or fc.rate_to_reporting = 0, "
                ~ "'a sale or contract currency has no FX rate recorded for " ~ period
                ~ ": load it with mm fx load')"
                ~ " + fs.rate_to_reporting, 20) / toDecimal256(fc.rate_to_reporting, 20), 10)"
            ) }}
        ) as fx_rate,
        {{ dec.format('n.units * n.deduction_per_unit') }} as deduction,
        {{ dec.format('round(n.sale_amount * fx_rate, 10) - deduction') }} as net_base,
        multiIf(
            n.rate_basis = 'units',
            {{ dec.format('n.units') }},
            n.rate_basis = 'revenue',
            net_base,
            {{ dec.format('0') }}
        ) as quantity
    from (
        select d.* from desired as d
        where (d.sale_id, d.revision, d.rule_id, d.rule_version) not in (
            select
                posted_groups.sale_id,
                posted_groups.revision,
                posted_groups.rule_id,
                posted_groups.rule_version
            from posted_groups
        )
    ) as n
    left join rates as fs on n.sale_currency = fs.currency
    left join rates as fc on n.currency = fc.currency
),

cumulative as (
    select
        {{ aliased_columns('c', line + ['fx_rate', 'deduction', 'net_base', 'quantity']) }},
        coalesce(p.quantity, {{ dec.format('0') }})
        + sum(c.quantity)
            over (partition by c.rule_id order by c.sold_at, c.sale_id rows between unbounded preceding and 1 preceding)
            as cum_before
    from converted as c
    left join prior as p on c.rule_id = p.rule_id
),

tiered as (
    select
        *,
        arrayJoin(arrayEnumerate(tier_start)) as tier_index,
        -- The first tier also holds a cumulative quantity below 0 (returns posted before the sales they offset):
        -- the next line's overlap then starts from there, and no line falls outside every tier.
        if(tier_index = 1, {{ dec.format("'-100000000000000000000'") }}, tier_start[tier_index]) as tier_from,
        if(tier_index < length(tier_start), tier_start[tier_index + 1], {{ dec.format("'100000000000000000000'") }})
            as tier_to,
        least(cum_before, cum_before + quantity) as lo,
        greatest(cum_before, cum_before + quantity) as hi,
        greatest({{ dec.format('0') }}, least(hi, tier_to) - greatest(lo, tier_from)) as overlap
    from cumulative
),

portions as (
    select
        *,
        tier_rate[tier_index] as rate_applied,
        if(quantity < 0, -overlap, overlap) as tier_quantity,
        if(
            quantity = 0,
            net_base,
            {{ dec.format(
                "round(toDecimal256(net_base, 20) * toDecimal256(tier_quantity, 20) / toDecimal256(quantity, 20), 10)"
            ) }}
        ) as base_amount,
        {{ dec.format('round(base_amount * rate_applied, 10)') }} as rule_royalty
    from tiered
    where multiIf(
        rate_basis = 'flat', tier_index = 1,
        rate_basis = 'date',
        tier_index = greatest(1, arrayLastIndex(x -> x <= toDecimal128(toUInt32(toDate(sold_at)), 10), tier_start)),
        quantity = 0, tier_from <= cum_before and cum_before < tier_to,
        overlap > 0
    )
),

accruals as (
    select
        '{{ period }}' as period,
        'accrual' as entry,
        lower(
            hex(
                SHA256(
                    concat_ws(
                        '|',
                        t.sale_id,
                        toString(t.revision),
                        t.rule_id,
                        t.rule_version,
                        toString(t.tier_index),
                        p.payee_id
                    )
                )
            )
        ) as idempotency_key,
        now64(3) as posted_at,
        t.sale_id,
        t.revision,
        t.sold_at,
        formatDateTime(t.sold_at, '%Y-%m') as sale_period,
        t.territory,
        t.creator_id,
        t.contract_ref,
        t.contract_version,
        t.rule_version,
        p.account_id,
        t.rule_id,
        t.target_kind,
        t.target_id,
        t.base,
        t.attribution_model,
        t.rate_basis,
        toUInt16(t.tier_index) as tier_index,
        -- Units in this tier (unit tiers), or on the line's first tier only, so that units add up.
        t.rate_applied,
        multiIf(
            t.rate_basis = 'units',
            toInt64(t.tier_quantity),
            t.rate_basis = 'revenue' and t.tier_from > t.lo,
            0,
            t.units
        ) as units,
        t.tier_quantity,
        t.sale_amount,
        t.sale_currency,
        t.fx_rate,
        t.deduction,
        t.base_amount,
        t.rule_royalty,
        p.payee_id,
        p.share,
        p.payee_rank,
        -- Every payee but the first-ranked gets its share rounded half away from zero; the first takes the rest,
        -- so a line's splits add up to its royalty exactly.
        {{ dec.format('round(t.rule_royalty * p.share, 10)') }} as rounded_share,
        if(
            p.payee_rank = 1,
            t.rule_royalty - sum(if(p.payee_rank = 1, {{ dec.format('0') }}, rounded_share))
                over (partition by t.sale_id, t.revision, t.rule_id, t.tier_index),
            rounded_share
        ) as royalty_amount,
        t.currency
    from portions as t
    inner join rules as p on t.rule_id = p.rule_id
),

lines as (
    select
        period,
        entry,
        idempotency_key,
        posted_at,
        sale_id,
        revision,
        sold_at,
        sale_period,
        territory,
        creator_id,
        contract_ref,
        contract_version,
        rule_version,
        account_id,
        rule_id,
        target_kind,
        target_id,
        base,
        attribution_model,
        rate_basis,
        tier_index,
        rate_applied,
        units,
        tier_quantity,
        sale_amount,
        sale_currency,
        fx_rate,
        deduction,
        base_amount,
        rule_royalty,
        payee_id,
        share,
        payee_rank,
        {{ dec.format('royalty_amount') }} as royalty_amount,
        currency
    from accruals

    union all

    select
        period,
        entry,
        idempotency_key,
        posted_at,
        sale_id,
        revision,
        sold_at,
        sale_period,
        territory,
        creator_id,
        contract_ref,
        contract_version,
        rule_version,
        account_id,
        rule_id,
        target_kind,
        target_id,
        base,
        attribution_model,
        rate_basis,
        tier_index,
        rate_applied,
        units,
        tier_quantity,
        sale_amount,
        sale_currency,
        fx_rate,
        deduction,
        base_amount,
        rule_royalty,
        payee_id,
        share,
        payee_rank,
        royalty_amount,
        currency
    from reversals
)

-- In the column types of the contract (schema.yml).
select
    period,
    toLowCardinality(entry) as entry,
    idempotency_key,
    toDateTime64(posted_at, 3, 'UTC') as posted_at,
    sale_id,
    revision,
    sold_at,
    sale_period,
    toLowCardinality(territory) as territory,
    creator_id,
    contract_ref,
    contract_version,
    rule_version,
    account_id,
    rule_id,
    toLowCardinality(target_kind) as target_kind,
    target_id,
    toLowCardinality(base) as base,
    toLowCardinality(attribution_model) as attribution_model,
    toLowCardinality(rate_basis) as rate_basis,
    tier_index,
    rate_applied,
    units,
    tier_quantity,
    sale_amount,
    toLowCardinality(sale_currency) as sale_currency,
    fx_rate,
    deduction,
    base_amount,
    rule_royalty,
    payee_id,
    share,
    payee_rank,
    royalty_amount,
    toLowCardinality(currency) as currency
from lines

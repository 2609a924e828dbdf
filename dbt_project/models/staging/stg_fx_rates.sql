-- The month's FX rate per currency, what every conversion of the platform multiplies by. A month some file of
-- `mm fx load` covers: the mean of its daily rates (a later file's rate wins a day), half-to-even to 10 decimals.
-- Other months keep the fx_rates seed's rate. A view: a load takes effect without a rebuild.
{{ config(materialized='view') }}
with daily as (
    select
        currency,
        rate_date,
        argMax(rate_to_reporting, (loaded_at, load_id)) as rate,
        argMax(source, (loaded_at, load_id)) as source
    from {{ source('raw', 'fx_rates') }}
    group by currency, rate_date
),

loaded as (
    select
        currency,
        toStartOfMonth(rate_date) as month,
        toDecimal128(roundBankers(toDecimal256(sum(rate), 30) / count(), 10), 10) as rate_to_reporting,
        concat('loaded ', arrayStringConcat(arraySort(groupUniqArray(source)), ', ')) as source,
        toUInt32(count()) as days
    from daily
    group by currency, month
)

select
    currency,
    month,
    rate_to_reporting,
    source,
    days
from loaded
union all
select
    s.currency,
    s.month,
    s.rate_to_reporting,
    'seed fx_rates' as source,
    toUInt32(0) as days
from {{ ref('fx_rates') }} as s
left anti join loaded as l on s.currency = l.currency and s.month = l.month

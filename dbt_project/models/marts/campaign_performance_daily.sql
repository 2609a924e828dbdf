{{ daily_partitioned('event_date', '(event_date, channel, campaign_id)') }}
-- Daily performance per channel and campaign. Each conversion's revenue is converted to the reporting
-- currency at its month's recorded rate and rounded half-to-even to the cent before summing, so the
-- mart's totals equal the sum of the per-conversion amounts Finance sees.
with events as (
    select * from {{ ref('stg_events') }}
    where {{ in_partition_range('event_date') }}
),

rates as (
    select
        currency,
        month,
        rate_to_reporting
    from {{ ref('stg_fx_rates') }}
),

converted as (
    select
        e.event_date,
        e.channel,
        e.campaign_id,
        e.event_type,
        e.revenue,
        if(
            e.event_type = 'conversion' and r.currency != '',
            roundBankers(toDecimal128(e.revenue * r.rate_to_reporting, 10), 2),
            null
        ) as revenue_reporting
    from events as e
    left join rates as r
        on e.currency = r.currency and r.month = toStartOfMonth(e.event_date)
)

select
    event_date,
    channel,
    campaign_id,
    countIf(event_type = 'impression') as impressions,
    countIf(event_type = 'click') as clicks,
    countIf(event_type = 'conversion') as conversions,
    countIf(event_type = 'conversion' and revenue_reporting is null) as unconverted_conversions,
    toDecimal128(sumIf(coalesce(revenue_reporting, 0), event_type = 'conversion'), 2) as revenue,
    '{{ run_var("reporting_currency") }}' as revenue_currency,
    if(impressions > 0, clicks / impressions, null) as ctr
from converted
group by event_date, channel, campaign_id

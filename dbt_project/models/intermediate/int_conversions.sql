{{ daily_partitioned('conversion_date', '(conversion_date, conversion_id)') }}
-- One row per conversion, its revenue in the reporting currency as integer cents: the month's recorded rate,
-- rounded half-to-even per conversion (as in campaign_performance_daily). No rate or no revenue: 0.
select
    e.event_id as conversion_id,
    coalesce(e.order_id, '') as order_id,
    e.user_id,
    e.occurred_at as converted_at,
    e.event_date as conversion_date,
    toInt64(
        if(
            r.month = toDate(0),
            0,
            roundBankers(toDecimal128(coalesce(e.revenue, 0) * r.rate_to_reporting, 10), 2) * 100
        )
    ) as revenue_cents
from {{ ref('stg_events') }} as e
left join {{ ref('stg_fx_rates') }} as r
    on e.currency = r.currency and r.month = toStartOfMonth(e.event_date)
where e.event_type = 'conversion' and {{ in_partition_range('e.event_date') }}

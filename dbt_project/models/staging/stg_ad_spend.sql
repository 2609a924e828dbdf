-- Ad spend per day, channel and campaign in the reporting currency (cents, half-to-even at the month's
-- rate). Platforms restate spend: the latest load of a (day, channel, campaign) wins.
with latest as (
    select
        spend_date,
        channel,
        campaign_id,
        argMax(amount, (loaded_at, load_id)) as amount,
        argMax(currency, (loaded_at, load_id)) as currency
    from {{ source('raw', 'ad_spend') }}
    group by spend_date, channel, campaign_id
)

select
    s.spend_date,
    s.channel,
    s.campaign_id,
    s.amount,
    s.currency,
    toDecimal128(if(r.month = toDate(0), 0, roundBankers(toDecimal128(s.amount * r.rate_to_reporting, 10), 2)), 2)
        as spend,
    r.month != toDate(0) as converted
from latest as s
left join {{ ref('stg_fx_rates') }} as r
    on s.currency = r.currency and r.month = toStartOfMonth(s.spend_date)

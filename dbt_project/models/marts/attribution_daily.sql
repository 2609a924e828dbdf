{{ daily_partitioned('date', '(date, model, channel, campaign_id)') }}
-- Per day, model, channel and campaign: attributed conversions and revenue beside ad spend, with CPA and
-- ROAS. Spend appears under every model (it does not depend on the model), also where nothing converted.
with credits as (
    select
        conversion_date as date,
        model,
        channel,
        campaign_id,
        sum(credit_share) as conversions,
        sum(revenue_credit) as revenue
    from {{ ref('attribution_credits') }}
    where {{ in_partition_range('conversion_date') }}
    group by date, model, channel, campaign_id
),

spend as (
    select
        spend_date as date,
        model,
        channel,
        campaign_id,
        sum(spend) as spend
    from {{ ref('stg_ad_spend') }}
    array join
        [
            'first_touch',
            'last_touch',
            'last_non_direct',
            'linear',
            'position_based',
            'time_decay',
            'markov',
            'shapley'
        ] as model
    where {{ in_partition_range('spend_date') }}
    group by date, model, channel, campaign_id
)

select
    date,
    model,
    channel,
    campaign_id,
    toDecimal64(c.conversions, 9) as conversions,
    toDecimal128(c.revenue, 2) as revenue,
    toDecimal128(s.spend, 2) as spend,
    '{{ run_var("reporting_currency") }}' as currency,
    if(conversions > 0, roundBankers(toDecimal128(spend, 12) / conversions, 2), null) as cpa,
    if(spend > 0, roundBankers(toDecimal128(revenue, 12) / spend, 4), null) as roas
from credits as c
full outer join spend as s using (date, model, channel, campaign_id)

{{ daily_partitioned('conversion_date', '(conversion_date, conversion_id)') }}
-- One row per conversion with its path: the user's touches strictly before it within their lookback,
-- ordered by (touch_at, touch_id), after the configured path transforms.
-- path: Array(Tuple(touch_at, touch_id, touch_type, channel, campaign_id, creative_id, asset_id)).
with conversions as (
    select * from {{ ref('int_conversions') }}
    where {{ in_partition_range('conversion_date') }}
),

user_touches as (
    select
        user_id,
        groupArray((touch_at, touch_id, touch_type, channel, campaign_id, creative_id, asset_id, lookback_ms)) as touches
    from {{ ref('int_touchpoints') }}
    where user_id in (select user_id from conversions)
        and touch_at >= (select min(converted_at) from conversions) - toIntervalDay(
            (select greatest({{ var('attribution_click_lookback_days') }}, {{ var('attribution_impression_lookback_days') }},
                max(lookback_days)) from {{ ref('attribution_lookback_windows') }}))
    group by user_id
),

eligible as (
    select
        c.conversion_id,
        c.order_id,
        c.user_id,
        c.converted_at,
        c.conversion_date,
        c.revenue_cents,
        arrayMap(
            t -> (t.1, t.2, t.3, t.4, t.5, t.6, t.7),
            arraySort(arrayFilter(
                t -> t.1 < c.converted_at
                    and toUnixTimestamp64Milli(c.converted_at) - toUnixTimestamp64Milli(t.1) <= t.8,
                ut.touches
            ))
        ) as eligible_path
    from conversions as c
    left join user_touches as ut on ut.user_id = c.user_id
),

{{ path_transform_ctes('eligible', 'eligible_path') }}

select
    conversion_id,
    order_id,
    user_id,
    converted_at,
    conversion_date,
    revenue_cents,
    {{ transformed_column('eligible_path') }} as path,
    arrayMap(t -> t.4, path) as channels,
    arrayMap(t -> toUnixTimestamp64Milli(converted_at) - toUnixTimestamp64Milli(t.1), path) as ages_ms
from eligible_transformed

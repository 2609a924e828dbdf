{{ daily_partitioned('journey_date', '(journey_date, channels)') }}
-- Channel journeys per day, the input of the data-driven fit: every conversion's (non-empty) path, and
-- per user the touches after their last conversion (within the click lookback of their last touch),
-- dated on the last touch. Transforms as for conversion paths.
with converting as (
    select
        conversion_date as journey_date,
        channels,
        count() as converting,
        toUInt64(0) as non_converting
    from {{ ref('int_conversion_paths') }}
    where {{ in_partition_range('conversion_date') }} and length(channels) > 0
    group by journey_date, channels
),

last_conversion as (
    select
        user_id,
        max(converted_at) as last_converted_at
    from {{ ref('int_conversions') }}
    group by user_id
),

open_touches as (
    select
        t.user_id,
        arraySort(groupArray((t.touch_at, t.touch_id, t.touch_type, t.channel))) as touches
    from {{ ref('int_touchpoints') }} as t
    left join last_conversion as l on t.user_id = l.user_id
    where t.touch_at > l.last_converted_at
        {#- Only users active in the range can have a journey dated in it (the filter below); checking that
            first saves work for a few days and costs more than it saves over many (6 s of 10 at 10M events). #}
    {%- if is_narrow_partition_range(7) %}
        and t.user_id in (
            select user_id from {{ ref('int_touchpoints') }} where {{ in_partition_range('toDate(touch_at)') }}
        )
    {%- endif %}
    group by t.user_id
),

open_journeys as (
    select
        toDate(tupleElement(touches[-1], 1)) as journey_date,
        arrayFilter(
            x -> toUnixTimestamp64Milli(tupleElement(touches[-1], 1)) - toUnixTimestamp64Milli(x.1)
            <= {{ run_var('attribution_click_lookback_days') }} * 86400000,
            touches
        ) as open_path
    from open_touches
),

{{ path_transform_ctes('open_journeys', 'open_path') }},

non_converting as (
    select
        journey_date,
        arrayMap(x -> x.4, {{ transformed_column('open_path') }}) as channels,
        toUInt64(0) as converting,
        count() as non_converting
    from open_journeys_transformed
    where {{ in_partition_range('journey_date') }}
    group by journey_date, channels
)

select
    journey_date,
    channels,
    sum(converting) as converting,
    sum(non_converting) as non_converting
from (
    select * from converting
    union all
    select * from non_converting
) as journeys
group by journey_date, channels

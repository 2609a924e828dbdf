-- Impressions and clicks with the lookback window (ms) of their channel and touch type: the seed's
-- per-channel override, else the var default for the touch type. A view: the paths and the journeys each
-- read it once with their own filters, so writing its 9.5M rows (5 s at 10M events) bought nothing. Daily like
-- its table, so that the days a paths run reads are tracked (their lookback); a run only re-creates the view.
{{ config(materialized='view', tags=['daily']) }}
select
    t.user_id,
    t.event_id as touch_id,
    t.occurred_at as touch_at,
    t.event_type as touch_type,
    t.channel,
    t.campaign_id,
    t.creative_id,
    t.asset_id,
    toInt64(if(
        w.channel = '',
        if(
            t.event_type = 'click',
            {{ run_var('attribution_click_lookback_days') }},
            {{ run_var('attribution_impression_lookback_days') }}
        ),
        w.lookback_days
    )) * 86400000 as lookback_ms
from {{ ref('stg_events') }} as t
left join {{ ref('attribution_lookback_windows') }} as w
    on t.channel = w.channel and t.event_type = w.touch_type
where t.event_type in ('impression', 'click')

-- One row per event_id: a producer retry or a replayed message is counted once (the first delivery wins).
-- Only event_ids delivered more than once are sorted to pick their first delivery; sorting all events to
-- deduplicate the few repeated ones cost most of a 10M-event build.
{%- set columns = (
    "event_id, event_type, occurred_at, toDate(occurred_at) as event_date, user_id, channel, campaign_id,"
    ~ " creative_id, asset_id, order_id, revenue, currency, sku"
) %}
with repeated as (
    select event_id
    from {{ source('raw', 'events') }}
    group by event_id
    having count() > 1
)

select {{ columns }}
from {{ source('raw', 'events') }}
where event_id not in (select repeated.event_id from repeated)

union all

select {{ columns }}
from (
    select *
    from {{ source('raw', 'events') }}
    where event_id in (select repeated.event_id from repeated)
    -- sqlfluff's ClickHouse dialect cannot parse LIMIT … BY, which keeps the first delivery per event_id.
    order by event_id, ingested_at, topic, partition, offset  -- noqa: PRS
    limit 1 by event_id
)

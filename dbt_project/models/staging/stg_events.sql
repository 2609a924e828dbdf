-- One row per event_id: a producer retry or a replayed message is counted once (the first delivery wins).
select
    event_id,
    event_type,
    occurred_at,
    toDate(occurred_at) as event_date,
    user_id,
    channel,
    campaign_id,
    creative_id,
    asset_id,
    order_id,
    revenue,
    currency,
    sku
from {{ source('raw', 'events') }}
order by event_id, ingested_at, topic, partition, offset
limit 1 by event_id

{{ config(materialized="view") }}
-- A view: sales reports load at any time and the ledger must see them without waiting for a staging rebuild.
-- One row per sale line revision: a report loaded twice, or two reports repeating a line, count once
-- (latest load wins).
select
    sale_id,
    revision,
    sold_at,
    sku,
    territory,
    units,
    net_amount,
    currency
from {{ source('raw', 'sales') }}
order by sale_id asc, revision asc, loaded_at desc, load_id asc
limit 1 by sale_id, revision

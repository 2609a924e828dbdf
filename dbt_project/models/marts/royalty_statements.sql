-- Statements per period × payee × account, as the statement engine computed them (docs/royalty_statements.md).
-- A view: the engine's table is the record, replaced for an open period and never after its payout batch exists.
{{ config(materialized='view', tags=['royalty']) }}
select
    period,
    payee_id,
    currency,
    account_id,
    opening,
    returned,
    earnings,
    reserve_held,
    reserve_released,
    advances,
    unrecouped_in,
    recouped,
    mg_topup,
    balance,
    paid,
    held,
    withheld,
    carried_out,
    unrecouped_out,
    reserves_out,
    carried_reason,
    held_reason,
    contract_versions,
    computed_at
from {{ source('royalty', 'statement_lines') }}

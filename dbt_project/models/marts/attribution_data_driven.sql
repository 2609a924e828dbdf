{{ daily_partitioned('fit_date', '(fit_date, model, channel)') }}
-- Channel-level results of the data-driven fits per day: Markov removal effects and Shapley values, with
-- conversions credited by the usual normalisation (total conversions × value / Σ values).
select
    fit_date,
    model,
    channel,
    value,
    attributed_conversions,
    journeys,
    converting_journeys,
    fit_days
from {{ source('attribution', 'attribution_fit') }}
where scope = 'channel' and {{ in_partition_range('fit_date') }}

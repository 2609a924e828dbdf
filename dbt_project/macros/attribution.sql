{#- Attribution building blocks shared by the models; docs/attribution.md is the specification. -#}

{#- Rows whose `column` (a Date) is in the run's partition range (run_var attribution_start_date inclusive,
    attribution_end_date exclusive); every row when dbt runs without a range. -#}
{% macro in_partition_range(column) -%}
    {%- if has_partition_range() -%}
        ({{ column }} >= toDate('{{ run_var('attribution_start_date') }}') and {{ column }} < toDate('{{ run_var('attribution_end_date') }}'))
    {%- else -%}
        1
    {%- endif -%}
{%- endmacro %}

{#- Whether dbt runs for a partition range (a Dagster run), not over every day. -#}
{% macro has_partition_range() -%}
    {{- return(run_var('attribution_start_date') is not none and run_var('attribution_end_date') is not none) -}}
{%- endmacro %}

{#- A range of at most `days` days: worth a prefilter that only pays off when few days are rebuilt. -#}
{% macro is_narrow_partition_range(days) -%}
    {%- set start = run_var('attribution_start_date') -%}
    {%- set end = run_var('attribution_end_date') -%}
    {{- return(has_partition_range() and (
        modules.datetime.date.fromisoformat(end | string) - modules.datetime.date.fromisoformat(start | string)).days <= days) -}}
{%- endmacro %}

{#- CTEs `<relation>_transformed`: `<relation>` plus column transformed_column(column), the configured path
    transforms applied in order to `column` (an array of touch tuples whose 4th element is the channel). One
    CTE and one new column per transform, so every expression reads a plain column. -#}
{% macro path_transform_ctes(relation, column) -%}
    {%- set ns = namespace(prev=relation) -%}
    {%- for t in run_var('attribution_path_transforms') -%}
        {%- set c = column if loop.first else column ~ '_t' ~ (loop.index - 1) -%}
        {%- if t == 'collapse_repeats' -%}
            {%- set expr = "arrayFilter((x, prev) -> x.4 != prev, " ~ c ~ ", arrayPopBack(arrayPushFront(arrayMap(x -> x.4, " ~ c ~ "), '')))" -%}
        {%- elif t == 'first_occurrence' -%}
            {%- set expr = "arrayFilter((x, k) -> k = 1, " ~ c ~ ", arrayEnumerateUniq(arrayMap(x -> x.4, " ~ c ~ ")))" -%}
        {%- elif t == 'drop_direct' -%}
            {%- set expr = "arrayFilter((x, all_direct) -> x.4 != 'direct' or all_direct, " ~ c ~ ", arrayMap(x -> arrayAll(y -> y.4 = 'direct', " ~ c ~ "), " ~ c ~ "))" -%}
        {%- elif t == 'drop_trailing_direct' -%}
            {%- set expr = "arraySlice(" ~ c ~ ", 1, if(arrayLastIndex(x -> x.4 != 'direct', " ~ c ~ ") = 0, length(" ~ c ~ "), arrayLastIndex(x -> x.4 != 'direct', " ~ c ~ ")))" -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error("unknown attribution path transform '" ~ t ~ "': use collapse_repeats, first_occurrence, drop_direct or drop_trailing_direct") }}
        {%- endif %}
{{ relation }}_t{{ loop.index }} as (select *, {{ expr }} as {{ column }}_t{{ loop.index }} from {{ ns.prev }}),
        {%- set ns.prev = relation ~ '_t' ~ loop.index -%}
    {%- endfor %}
{{ relation }}_transformed as (select * from {{ ns.prev }})
{%- endmacro %}

{% macro transformed_column(column) -%}
    {{ column }}{% if run_var('attribution_path_transforms') %}_t{{ run_var('attribution_path_transforms') | length }}{% endif %}
{%- endmacro %}

{% macro to_float(value) -%}toFloat64('{{ value }}'){%- endmacro %}

{#- Daily-partitioned incremental model: a partition run replaces exactly its days, so re-running is idempotent
    and a full refresh equals the sum of partition runs. -#}
{% macro daily_partitioned(date_column, order_by) -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by=date_column,
        order_by=order_by,
        tags=['daily'],
        pre_hook="{{ assert_sort_key('" ~ order_by ~ "') }}",
    ) }}
{%- endmacro %}

{#- Pre-hook of daily models: an existing table sorted otherwise than the model now says cannot take the
    run's partitions (ClickHouse replaces partitions only between tables of one structure). Say so, and how
    to rebuild it, instead of failing on REPLACE PARTITION. -#}
{% macro assert_sort_key(order_by) -%}
    {%- if execute and is_incremental() and not should_full_refresh() -%}
        {%- set rows = run_query("select sorting_key from system.tables where database = '" ~ this.schema ~ "' and name = '" ~ this.identifier ~ "'").rows -%}
        {%- set wanted = order_by | replace('(', '') | replace(')', '') | replace(' ', '') -%}
        {%- if rows and rows[0][0] | replace(' ', '') != wanted -%}
            {{ exceptions.raise_compiler_error(this ~ " is sorted by (" ~ rows[0][0] ~ "), the model now by " ~ order_by ~ ": drop it (`mm sql --write 'DROP TABLE " ~ this ~ "'`) and rebuild every day (`mm materialize " ~ this.schema ~ "/" ~ this.identifier ~ "`)") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

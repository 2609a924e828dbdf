{#- Attribution building blocks shared by the models; docs/attribution.md is the specification. -#}

{#- Rows whose `column` (a Date) is in the partition range Dagster passes as vars (attribution_start_date
    inclusive, attribution_end_date exclusive); every row when dbt runs without a range. -#}
{% macro in_partition_range(column) -%}
    {%- if var('attribution_start_date', none) and var('attribution_end_date', none) -%}
        ({{ column }} >= toDate('{{ var("attribution_start_date") }}') and {{ column }} < toDate('{{ var("attribution_end_date") }}'))
    {%- else -%}
        1
    {%- endif -%}
{%- endmacro %}

{#- The configured path transforms, applied in order to an array of touch tuples whose 4th element is the channel. -#}
{% macro transformed_path(path) -%}
    {%- set ns = namespace(expr=path) -%}
    {%- for t in var('attribution_path_transforms') -%}
        {%- set p = ns.expr -%}
        {%- if t == 'collapse_repeats' -%}
            {%- set ns.expr = "arrayFilter((x, prev) -> x.4 != prev, " ~ p ~ ", arrayPushFront(arrayPopBack(arrayMap(x -> x.4, " ~ p ~ ")), ''))" -%}
        {%- elif t == 'first_occurrence' -%}
            {%- set ns.expr = "arrayFilter((x, k) -> k = 1, " ~ p ~ ", arrayEnumerateUniq(arrayMap(x -> x.4, " ~ p ~ ")))" -%}
        {%- elif t == 'drop_direct' -%}
            {%- set ns.expr = "if(arrayAll(x -> x.4 = 'direct', " ~ p ~ "), " ~ p ~ ", arrayFilter(x -> x.4 != 'direct', " ~ p ~ "))" -%}
        {%- elif t == 'drop_trailing_direct' -%}
            {%- set ns.expr = "if(arrayAll(x -> x.4 = 'direct', " ~ p ~ "), " ~ p ~ ", arraySlice(" ~ p ~ ", 1, arrayLastIndex(x -> x.4 != 'direct', " ~ p ~ ")))" -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error("unknown attribution path transform '" ~ t ~ "': use collapse_repeats, first_occurrence, drop_direct or drop_trailing_direct") }}
        {%- endif -%}
    {%- endfor -%}
    {{ ns.expr }}
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
    ) }}
{%- endmacro %}

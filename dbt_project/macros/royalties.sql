{# `a.x as x, a.y as y`: ClickHouse names `a.*` columns after a join with their alias prefix; this keeps names plain. #}
{% macro aliased_columns(alias, names) -%}
    {%- for c in names %}{{ alias }}.{{ c }} as {{ c }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

{# The model's contract columns as a ClickHouse structure ('name Type, …'), e.g. for the null() table function. #}
{% macro contract_structure() -%}
    {%- for c in model.columns.values() %}{{ c.name }} {{ c.data_type | replace("'", "\\'") }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

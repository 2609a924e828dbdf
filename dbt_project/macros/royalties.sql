{# `a.x as x, a.y as y`: ClickHouse names `a.*` columns after a join with their alias prefix; this keeps names plain. #}
{% macro aliased_columns(alias, names) -%}
    {%- for c in names %}{{ alias }}.{{ c }} as {{ c }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

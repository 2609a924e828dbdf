{#- A per-run value: the environment variable DBT_VAR_<NAME> (JSON) that Dagster sets for one dbt command, else
    the dbt var of that name (--vars, or the default in dbt_project.yml). Values change with every run; dbt keeps
    its partial parse across environment variables (it re-parses only the files that read one that changed) but
    throws all of it away whenever --vars change. Read it in model SQL only, never in a config, ref or source. -#}
{% macro run_var(name) -%}
    {%- set value = env_var('DBT_VAR_' ~ name | upper, '') -%}
    {{- return(fromjson(value) if value else var(name, none)) -}}
{%- endmacro %}

{#- A per-run value: the environment variable DBT_VAR_<NAME> (JSON) that Dagster sets for one dbt command, else
    the dbt var of that name (--vars, or the default in dbt_project.yml). Values change with every run. The
    environment is read only when dbt runs the SQL (`execute`), never while it parses: dbt records the environment
    variables a file reads while parsing and re-parses that file whenever one changes, so the per-run values never
    cost a re-parse (a new range re-parsed five files, 1.3 s per command). --vars still work, but dbt throws its
    whole parse away whenever they change. Read it in model SQL only, never in a config, ref or source. -#}
{% macro run_var(name) -%}
    {%- set value = env_var('DBT_VAR_' ~ name | upper, '') if execute else '' -%}
    {{- return(fromjson(value) if value else var(name, none)) -}}
{%- endmacro %}

{#- Create a model's table, empty, from its enforced contract and its engine, partition and order config, without
    running the model's SQL (which reads other models): what restoring the model's archived rows needs before dbt
    first built it (mm_pipelines.recovery). Does nothing if the table exists. -#}
{% macro create_contracted_table(model_name) %}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ model_name) -%}
    {%- if node is none or not node.config.contract.enforced -%}
        {{ exceptions.raise_compiler_error("model " ~ model_name ~ " has no enforced contract to create its table from") }}
    {%- endif -%}
    {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias, type='table') -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- do columns.append(adapter.quote(column.name) ~ ' ' ~ column.data_type) -%}
    {%- endfor -%}
    {%- set partition_by = node.config.get('partition_by') -%}
    {%- set order_by = node.config.get('order_by') -%}
    {%- do adapter.create_schema(relation) -%}
    {% call statement('create_contracted_table') %}
        create table if not exists {{ relation }} ({{ columns | join(', ') }})
        engine = {{ node.config.get('engine', 'MergeTree()') }}
        {%- if partition_by %} partition by ({{ partition_by if partition_by is string else partition_by | join(', ') }}){% endif %}
        order by ({{ (order_by if order_by is string else order_by | join(', ')) if order_by else 'tuple()' }})
    {% endcall %}
{% endmacro %}

{# Models land in the database their layer names (staging, intermediate, marts), not target_schema_layer. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}

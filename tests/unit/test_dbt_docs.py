"""The dbt project documents every source, seed and model and each of their columns, with the ClickHouse type
the column really has (dagster-dbt shows both in the UI), and holds the tests the Great Expectations suites
leave to dbt."""

from pathlib import Path

import pytest
import yaml

from mm_pipelines.config import dbt_project_dir

pytestmark = pytest.mark.unit

PROJECT = dbt_project_dir()


def _documents() -> list[tuple[Path, dict]]:
    files = [*sorted((PROJECT / "models").rglob("*.yml")), PROJECT / "seeds" / "schema.yml"]
    return [(f, yaml.safe_load(f.read_text(encoding="utf-8"))) for f in files]


def _entries() -> list[tuple[str, dict]]:
    """(name, entry) of every model, seed and source table, e.g. ('source raw.sales', {...})."""
    out = []
    for _, doc in _documents():
        for kind in ("models", "seeds"):
            out += [(f"{kind[:-1]} {m['name']}", m) for m in doc.get(kind, [])]
        for source in doc.get("sources", []):
            assert source.get("description"), f"source {source['name']} has no description"
            out += [(f"source {source['name']}.{t['name']}", t) for t in source["tables"]]
    return out


def _sql_names(kind: str) -> set[str]:
    folder = "models" if kind == "model" else "seeds"
    return {p.stem for p in (PROJECT / folder).rglob("*.sql" if kind == "model" else "*.csv")}


def test_every_model_and_seed_has_an_entry():
    named = {name for name, _ in _entries()}
    for kind in ("model", "seed"):
        missing = {f"{kind} {n}" for n in _sql_names(kind)} - named
        assert not missing, f"no schema.yml entry for {sorted(missing)}"


@pytest.mark.parametrize("name, entry", _entries(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_entry_and_column_is_described_and_typed(name, entry):
    assert (entry.get("description") or "").strip(), f"{name} has no description"
    columns = entry.get("columns", [])
    if name == "source royalty.statement_lines" or not name.startswith("source"):
        assert columns, f"{name} lists no columns"
    for column in columns:
        assert (column.get("description") or "").strip(), f"{name}.{column['name']} has no description"
        assert (column.get("data_type") or "").strip(), f"{name}.{column['name']} has no data_type"


def test_every_source_table_is_in_a_dagster_group_and_has_an_asset_key():
    for name, entry in _entries():
        if name.startswith("source"):
            dagster = (entry.get("meta") or {}).get("dagster") or {}
            assert dagster.get("group") and dagster.get("group") != "default", f"{name} has no Dagster group"
            assert dagster.get("asset_key"), f"{name} has no Dagster asset key"


def _tests(entry: dict, column: str | None = None) -> list:
    if column is None:
        return entry.get("data_tests", [])
    return next(c for c in entry["columns"] if c["name"] == column).get("data_tests", [])


def _names(tests: list) -> set[str]:
    return {t if isinstance(t, str) else next(iter(t)) for t in tests}


def test_dbt_holds_the_checks_the_expectation_suites_leave_to_it():
    """mm_pipelines.checks drops uniqueness, not-null and accepted values from its suites: dbt must test them."""
    entries = dict(_entries())
    events = entries["model stg_events"]
    assert {"unique", "not_null"} <= _names(_tests(events, "event_id"))
    assert "not_null" in _names(_tests(events, "occurred_at"))
    assert "accepted_values" in _names(_tests(events, "event_type"))
    performance = entries["model campaign_performance_daily"]
    assert "unique_combination" in _names(_tests(performance))
    assert "not_null" in _names(_tests(performance, "event_date"))
    assert "not_null" in _names(_tests(performance, "channel"))
    assert "accepted_values" in _names(_tests(entries["model attribution_credits"], "model"))

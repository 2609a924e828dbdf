"""Every asset of the code location sits in a named group with a description, so the Dagster UI shows no
"default" group and no asset without a word on what it is (dbt sources included)."""

import pytest

from mm_pipelines.definitions import build_definitions

pytestmark = pytest.mark.integration


def test_every_asset_has_a_group_and_a_description(mm_home):
    graph = build_definitions().resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    assert {"raw/sales", "raw/ad_spend", "raw/events", "marts/royalty_ledger"} <= {k.to_user_string() for k in keys}
    ungrouped = [k.to_user_string() for k in keys if graph.get(k).group_name in (None, "default")]
    assert not ungrouped, f"assets in the default group: {ungrouped}"
    undescribed = [k.to_user_string() for k in keys if not (graph.get(k).description or "").strip()]
    assert not undescribed, f"assets without a description: {undescribed}"

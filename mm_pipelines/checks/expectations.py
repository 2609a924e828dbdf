"""Great Expectations 1.x suites, run in-process on a DataFrame (dagster-ge does not support GX 1.x), and their
outcomes as a Dagster check result."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

if TYPE_CHECKING:  # pandas costs 0.4 s to import, in every run worker and CLI start: only the checks need it
    import pandas as pd


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None
    detail: dict[str, Any]


def no_violations(columns) -> list:
    """Expectations that every one of these violation-count columns is 0."""
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=0) for c in columns]


def validate(df: pd.DataFrame, suite_name: str, expectations: list) -> list[ExpectationOutcome]:
    """Validate `df` against `expectations` (gx.expectations.* instances) with an ephemeral context."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas(f"{suite_name}_source")
        .add_dataframe_asset(f"{suite_name}_frame")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": df})
    outcomes = []
    for r in result.results:
        config = r.expectation_config
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=r.result.get("unexpected_count"),
                detail={
                    k: v
                    for k, v in r.result.items()
                    if k in ("observed_value", "partial_unexpected_list", "unexpected_percent")
                },
            )
        )
    return outcomes


def check_result(outcomes: list[ExpectationOutcome], rows: int) -> AssetCheckResult:
    """A blocking check's result: the failed expectations named in its description, every outcome in its metadata."""
    failed = [o for o in outcomes if not o.success]
    return AssetCheckResult(
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            "; ".join(f"{o.expectation}({o.column}): {o.unexpected_count} unexpected" for o in failed)
            or f"all {len(outcomes)} expectations met on {rows} rows"
        ),
        metadata={
            "rows": rows,
            "expectations": MetadataValue.json(
                [
                    {
                        "expectation": o.expectation,
                        "column": o.column,
                        "success": o.success,
                        "unexpected_count": o.unexpected_count,
                        "detail": {k: str(v) for k, v in o.detail.items()},
                    }
                    for o in outcomes
                ]
            ),
        },
    )

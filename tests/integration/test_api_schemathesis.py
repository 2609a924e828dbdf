"""Schemathesis against the service's own OpenAPI schema: generated requests for every operation, 0 server errors.

(Schemathesis' pytest plugin does not run under this pytest, so each operation's Hypothesis strategy is driven
here directly; the generation and the calls are Schemathesis' own.)"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from mm_pipelines.identity.roles import Role

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("MM_TEST_FUZZ_EXAMPLES", "30"))


def fuzz(operation, headers: dict, calls: list, failures: list) -> None:
    @given(operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        response = case.call(headers=headers)
        calls.append(operation.label)
        if response.status_code >= 500:
            failures.append(f"{operation.label}: {response.status_code} {response.text[:200]}")

    call()


def test_no_generated_request_makes_the_service_fail(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    # A token with every role, so that generated requests get past authorization into the handlers.
    headers = api.headers("fuzz", *Role)
    calls, failures = [], []
    for result in schema.get_all_operations():
        fuzz(result.ok(), headers, calls, failures)
    operations = set(calls)
    print(f"{len(calls)} generated requests over {len(operations)} operations, {len(failures)} server errors")
    assert len(operations) >= 20
    assert failures == []

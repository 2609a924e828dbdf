import pytest

from mm_pipelines.checks.freshness import freshness_verdict

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "lag, minutes, passed, words",
    [
        ({0: 0, 1: 0}, None, True, "caught up"),
        ({0: 0, 1: 0}, 600.0, True, "caught up"),
        ({0: 5, 1: 0}, 3.0, True, "5 messages waiting"),
        ({0: 5, 1: 2}, 30.0, False, "7 messages waiting on the bus and last ingestion 30.0 min ago"),
        ({0: 5}, None, False, "never ingested"),
    ],
)
def test_freshness_verdict(lag, minutes, passed, words):
    ok, description = freshness_verdict(lag, minutes, 15)
    assert ok is passed and words in description

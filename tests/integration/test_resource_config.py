"""What the Dagster UI shows of the resources: the effective backends, never a secret."""

import pytest

pytestmark = pytest.mark.integration

SECRET = "hunter2-do-not-show"


def ui_config(defs) -> str:
    """Every resource's configured values as the code location serves them to the UI."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    snap = RepositorySnap.from_def(defs.get_repository_def())
    return serialize_value([(r.name, r.configured_values) for r in snap.resources])


def test_the_ui_shows_each_backend_and_no_secret(mm_home, monkeypatch):
    from mm_pipelines.definitions import build_definitions

    monkeypatch.setenv("MM_CLICKHOUSE_URL", "https://analyst@ch.example:8443")
    monkeypatch.setenv("MM_CLICKHOUSE_PASSWORD", SECRET)
    monkeypatch.setenv("MM_POSTGRES_DSN", "postgresql://mm@db.example:5432/mm")
    monkeypatch.setenv("MM_EVENT_BUS", "kafka://b1:9092,b2:9092")
    monkeypatch.setenv("MM_PAYOUT_SIGNING_KEY", SECRET + "-key")
    shown = ui_config(build_definitions())
    assert SECRET not in shown
    for value in (
        "https://analyst@ch.example:8443",
        "postgresql://mm@db.example:5432/mm",
        "kafka://b1:9092,b2:9092",
        f"file://{mm_home}/objects",
        "MM_CLICKHOUSE_PASSWORD",
    ):  # the password as the variable it is read from
        assert value in shown, value


def test_the_resources_resolve_the_password_in_the_run(mm_home, monkeypatch):
    from mm_pipelines.resources import build_resources

    monkeypatch.setenv("MM_CLICKHOUSE_URL", "https://analyst@ch.example:8443")
    monkeypatch.setenv("MM_CLICKHOUSE_PASSWORD", SECRET)
    resolved = build_resources()["clickhouse"].process_config_and_initialize()  # as a run does
    assert resolved.get_warehouse().password == SECRET


@pytest.mark.parametrize(
    "var, url, fix",
    [
        ("MM_CLICKHOUSE_URL", "https://analyst:s3cret@ch.example:8443", "set MM_CLICKHOUSE_PASSWORD"),
        ("MM_POSTGRES_DSN", "postgresql://mm:s3cret@db.example/mm", "set PGPASSWORD"),
    ],
)
def test_a_password_inside_a_url_is_refused_for_the_ui(mm_home, monkeypatch, var, url, fix):
    from mm_pipelines.config import ConfigError
    from mm_pipelines.resources import build_resources

    monkeypatch.setenv(var, url)
    with pytest.raises(ConfigError, match=f"^{var} has a password in it: remove it from the URL and {fix}$") as info:
        build_resources()
    assert "s3cret" not in str(info.value)


def test_resources_built_without_arguments_read_the_settings(mm_home, monkeypatch):
    from mm_pipelines.resources import ClickHouseResource, EventBusResource, PostgresResource

    monkeypatch.setenv("MM_EVENTS_TOPIC", "mm.events.test")
    assert ClickHouseResource().get_warehouse().embedded_path == mm_home / "warehouse"
    assert EventBusResource().events_topic() == "mm.events.test" and EventBusResource(topic="t").events_topic() == "t"
    assert PostgresResource().get_db().embedded_dir == mm_home / "postgres"

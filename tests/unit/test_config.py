import pytest

from mm_pipelines.config import ConfigError, Settings, redact

pytestmark = pytest.mark.unit


def test_defaults_are_embedded_under_home(tmp_path):
    s = Settings.from_env({"MM_HOME": str(tmp_path)})
    assert s.clickhouse_url == f"chdb://{tmp_path}/warehouse"
    assert s.embedded_warehouse == tmp_path / "warehouse"
    assert s.event_bus_url == f"log://{tmp_path}/eventlog"
    assert s.object_store_url == f"file://{tmp_path}/objects"
    assert s.postgres_dsn is None
    assert s.events_topic == "mm.events.v1"


def test_each_backend_is_one_setting(tmp_path):
    s = Settings.from_env(
        {
            "MM_HOME": str(tmp_path),
            "MM_CLICKHOUSE_URL": "https://analyst:s3cret@ch.example:8443",
            "MM_EVENT_BUS": "kafka://b1:9092,b2:9092",
            "MM_OBJECT_STORE": "s3://mm-prod/platform",
            "MM_POSTGRES_DSN": "postgresql://mm@db/mm",
        }
    )
    assert s.embedded_warehouse is None
    assert s.event_bus_url == "kafka://b1:9092,b2:9092"
    described = " ".join(s.describe().values())
    assert "s3cret" not in described and "analyst:***@ch.example:8443" in described


@pytest.mark.parametrize(
    "var, value, fragment",
    [
        ("MM_CLICKHOUSE_URL", "mysql://x", "MM_CLICKHOUSE_URL"),
        ("MM_EVENT_BUS", "rabbit://x", "kafka://"),
        ("MM_OBJECT_STORE", "gs://bucket", "s3://"),
        ("MM_EVENTS_PARTITIONS", "zero", "MM_EVENTS_PARTITIONS"),
        ("MM_EVENTS_PARTITIONS", "0", "positive"),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(tmp_path, var, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({"MM_HOME": str(tmp_path), var: value})


def test_redact_keeps_user_and_host():
    assert redact("http://u:p@h:1/x") == "http://u:***@h:1/x"
    assert redact("http://h:1") == "http://h:1"

from pathlib import Path

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


def test_a_typo_in_a_variable_name_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"^MM_CLICKHOUSE_ULR is not a setting: did you mean MM_CLICKHOUSE_URL\?$"):
        Settings.from_env({"MM_HOME": str(tmp_path), "MM_CLICKHOUSE_ULR": "http://ch:8123"})
    with pytest.raises(ConfigError, match=r"^MM_NOTHING_LIKE_IT is not a setting: remove it"):
        Settings.from_env({"MM_NOTHING_LIKE_IT": "1"})


def test_variables_the_platform_sets_for_itself_are_allowed(tmp_path):
    s = Settings.from_env(
        {
            "MM_HOME": str(tmp_path),
            "MM_TEST_KAFKA": "127.0.0.1:19092",
            "MM_TEST_POSTGRES_DSN": "postgresql://x",
            "MM_DBT_TARGET": "server",
            "MM_CLICKHOUSE_HOST": "ch",
            "MM_CLICKHOUSE_PORT": "8123",
            "MM_CLICKHOUSE_USER": "u",
            "MM_CLICKHOUSE_SECURE": "false",
            "MM_SERVICES_DIR": "/tmp/services",
            "mm_not_ours": "lower-case names are other programs' variables",
        }
    )
    assert s.home == tmp_path


def test_every_mm_variable_the_repository_mentions_is_a_setting_or_allowed():
    """A variable a script, test or document uses but the model refuses would break whoever sets it."""
    import re

    from mm_pipelines.config import NOT_SETTINGS, NOT_SETTINGS_PREFIXES, repo_root

    root = repo_root()
    here = {Path(__file__).resolve(), root / "mm_pipelines" / "config.py"}  # they spell wrong names on purpose
    paths = [root / n for n in ("README.md", "Makefile", "setup.py", "dagster.yaml", "workspace.yaml")]
    for folder in ("mm_pipelines", "tests", "scripts", "benchmarks", "docs", "dbt_project", "helm", "deploy"):
        paths += [
            p
            for p in (root / folder).rglob("*")
            if p.suffix in {".py", ".md", ".sh", ".yml", ".yaml", ".sql", ".tpl", ""}
        ]
    mentioned = set()
    for path in paths:
        if path.is_file() and path.resolve() not in here and "target" not in path.parts:
            mentioned |= set(re.findall(r"\bMM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")))
    known = {Settings.env_name(f) for f in Settings.model_fields} | NOT_SETTINGS
    families = {"MM_ATTRIBUTION", "MM_PAYOUT", "MM_TEST_S"}  # prefixes written as a family: MM_ATTRIBUTION_*, …
    assert {v for v in mentioned - known - families if not v.startswith(NOT_SETTINGS_PREFIXES)} == set()


def test_the_environment_is_read_at_call_time_and_a_given_mapping_replaces_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", "kafka://from-the-process:9092")
    assert Settings.from_env().event_bus_url == "kafka://from-the-process:9092"
    assert Settings.from_env({"MM_HOME": str(tmp_path)}).event_bus_url == f"log://{tmp_path}/eventlog"


def test_blank_text_is_unset_and_a_blank_number_is_refused(tmp_path):
    s = Settings.from_env(
        {"MM_HOME": str(tmp_path), "MM_CLICKHOUSE_URL": "", "MM_EVENTS_TOPIC": " ", "MM_PAYOUT_DEBTOR_NAME": ""}
    )
    assert s.clickhouse_url == f"chdb://{tmp_path}/warehouse" and s.events_topic == "mm.events.v1"
    assert s.payout_debtor_name == "Market and Media Ltd"
    with pytest.raises(ConfigError, match="^MM_LICENSE_EXPIRY_DAYS='' must be a whole number of days"):
        Settings.from_env({"MM_LICENSE_EXPIRY_DAYS": ""})


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("MM_WAREHOUSE_LOCK_TIMEOUT", "ten", "MM_WAREHOUSE_LOCK_TIMEOUT='ten' is not a number of seconds (0 or more)"),
        (
            "MM_ATTRIBUTION_FRESHNESS_HOURS",
            "-1",
            "MM_ATTRIBUTION_FRESHNESS_HOURS='-1' is not a number of hours (0 or more)",
        ),
        ("MM_RAW_FRESHNESS_MINUTES", "soon", "MM_RAW_FRESHNESS_MINUTES='soon' is not a number of minutes (0 or more)"),
        ("MM_LICENSE_EXPIRY_DAYS", "30d", "MM_LICENSE_EXPIRY_DAYS='30d' must be a whole number of days (0 or more)"),
        (
            "MM_ATTRIBUTION_REPROCESS_DAYS",
            "-2",
            "MM_ATTRIBUTION_REPROCESS_DAYS='-2' must be a whole number of days (0 or more)",
        ),
        (
            "MM_PAYOUT_DUAL_APPROVAL_ABOVE",
            "lots",
            "MM_PAYOUT_DUAL_APPROVAL_ABOVE='lots' is not an amount: write a decimal number",
        ),
        (
            "MM_ATTRIBUTION_SHAPLEY_VALUE",
            "revenue",
            "MM_ATTRIBUTION_SHAPLEY_VALUE='revenue' is unknown: the Shapley value must be",
        ),
        (
            "MM_CLICKHOUSE_URL",
            "mysql://analyst:s3cret@h",
            "MM_CLICKHOUSE_URL='mysql://analyst:***@h' has an unknown scheme",
        ),
    ],
)
def test_each_error_is_one_line_with_the_variable_the_value_and_the_fix(tmp_path, var, value, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MM_HOME": str(tmp_path), var: value})
    assert str(info.value).startswith(message) and "\n" not in str(info.value) and "s3cret" not in str(info.value)


def test_defaults_match_the_embedded_platform_and_the_domain_objects(tmp_path):
    from decimal import Decimal

    from mm_pipelines.attribution.config import AttributionConfig
    from mm_pipelines.royalties.batches import PayoutSettings

    s = Settings.from_env({"MM_HOME": str(tmp_path)})
    assert (s.events_partitions, s.warehouse_lock_timeout, s.attribution_reprocess_days, s.failpoint) == (
        4,
        900,
        2,
        None,
    )
    assert (s.attribution_freshness_hours, s.raw_freshness_minutes, s.license_expiry_days) == (36, 15, 30)
    assert AttributionConfig.from_settings(s, tmp_path / "no-seed.csv") == AttributionConfig()
    assert PayoutSettings.from_settings(s) == PayoutSettings(Decimal("10000"), None, None, None, 5)
    assert s.model_fields_set == {"home"}


def test_secrets_are_never_shown(tmp_path):
    s = Settings.from_env(
        {
            "MM_HOME": str(tmp_path),
            "MM_CLICKHOUSE_PASSWORD": "pw-1",
            "MM_PAYOUT_SIGNING_KEY": "key-2",
            "MM_CLICKHOUSE_URL": "https://analyst:pw-3@ch.example:8443",
        }
    )
    shown = repr(s) + str(s.rows()) + str(s.describe())
    assert "pw-1" not in shown and "key-2" not in shown and "pw-3" not in shown
    rows = {var: (value, source) for var, value, source, _ in s.rows()}
    assert rows["MM_CLICKHOUSE_PASSWORD"] == ("***", "set") and rows["MM_EVENTS_TOPIC"] == ("mm.events.v1", "default")
    assert s.clickhouse_password.get_secret_value() == "pw-1"
    with pytest.raises(ConfigError, match=r"^MM_EVENTS_PARTITIONS='x'"):
        Settings.from_env({"MM_CLICKHOUSE_PASSWORD": "pw-1", "MM_EVENTS_PARTITIONS": "x"})

import pytest

from mm_pipelines.config import Settings
from mm_pipelines.dbt_cli import _needs_warehouse, _server_env

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "args, needs",
    [
        (["build", "--select", "fqn:*"], True),
        (["docs", "generate"], True),
        (["seed"], True),
        (["parse", "--quiet"], False),
        (["--quiet", "parse"], False),
        (["docs", "serve", "--port", "8580"], False),
        (["deps"], False),
    ],
)
def test_only_commands_that_touch_the_warehouse_take_its_lock(args, needs):
    assert _needs_warehouse(args) is needs


def test_server_target_comes_from_the_one_clickhouse_url(tmp_path, monkeypatch):
    monkeypatch.delenv("MM_CLICKHOUSE_PASSWORD", raising=False)
    env = _server_env(
        Settings.from_env({"MM_HOME": str(tmp_path), "MM_CLICKHOUSE_URL": "https://analyst:p%40ss@ch.example:8443"})
    )
    assert env == {
        "MM_DBT_TARGET": "server",
        "MM_CLICKHOUSE_HOST": "ch.example",
        "MM_CLICKHOUSE_PORT": "8443",
        "MM_CLICKHOUSE_USER": "analyst",
        "MM_CLICKHOUSE_PASSWORD": "p@ss",
        "MM_CLICKHOUSE_SECURE": "true",
    }
    # The password is a setting like the URL, read from the same environment.
    env = _server_env(
        Settings.from_env(
            {
                "MM_HOME": str(tmp_path),
                "MM_CLICKHOUSE_URL": "http://ch:8123",
                "MM_CLICKHOUSE_PASSWORD": "from-secret-store",
            }
        )
    )
    assert env["MM_CLICKHOUSE_PASSWORD"] == "from-secret-store" and env["MM_CLICKHOUSE_SECURE"] == "false"


def test_version_is_answered_without_dbt_and_parses_as_dagster_dbt_reads_it():
    """DbtCliResource runs `<executable> --version` once per run and takes the first x.y.z as dbt-core's version."""
    import re
    import subprocess
    import sys
    from importlib import metadata
    from pathlib import Path

    out = subprocess.run(
        [str(Path(sys.executable).parent / "mm-dbt"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"(\d+\.\d+\.\d+)", out).group(1) == metadata.version("dbt-core")

"""The platform's one patch of dbt (mm_pipelines.dbt_cli.install_chdb_hook): dbt-clickhouse's client, built from
the profile's `embedded` target, is an in-process chDB client on the warehouse folder."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

HOOKED = """
import sys
from pathlib import Path
from dbt.adapters.clickhouse.httpclient import ChHttpClient
from mm_pipelines.dbt_cli import install_chdb_hook

install_chdb_hook(Path(sys.argv[1]))
# What dbt-clickhouse hands the constructor: its connection settings, an HTTP session id among them.
adapter_client = type("AdapterClient", (), {"_conn_settings": {"session_id": "dbt-1", "max_threads": 1}})()
client = ChHttpClient._create_client(adapter_client, None)
client.command("CREATE DATABASE IF NOT EXISTS hooked")
client.command("CREATE TABLE hooked.t (n UInt8) ENGINE = MergeTree ORDER BY n")
client.command("INSERT INTO hooked.t VALUES (7)")
print(type(client).__module__, client.query("SELECT n FROM hooked.t").result_rows)
"""


def test_dbt_clickhouse_gets_a_chdb_client_on_the_warehouse_folder(tmp_path):
    warehouse = tmp_path / "warehouse"
    done = subprocess.run([sys.executable, "-c", HOOKED, str(warehouse)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "chdb" in done.stdout and "[(7,)]" in done.stdout  # the in-process engine, not an HTTP client
    assert any(warehouse.iterdir())  # the tables live in the folder

"""`mm-dbt`: dbt with the analytics store chosen by MM_CLICKHOUSE_URL.

dbt-clickhouse always builds an HTTP client from the profile. For the embedded warehouse this
wrapper replaces that one constructor with a `chdb://` client on the same on-disk warehouse and
holds the warehouse lock for the whole dbt command, so dbt waits for (and is waited on by) other
processes instead of failing to open the engine. For a ClickHouse server it only fills in the
`server` target's connection variables from the URL. Within a Dagster run the command runs in a fork of
the run's dbt server, which has dbt imported already (mm_pipelines.dbt_server).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mm_pipelines.config import Settings
from mm_pipelines.stores.clickhouse import server_client_kwargs, warehouse_lock

# Settings dbt-clickhouse sends per HTTP session that an in-process engine has no use for.
_HTTP_ONLY_SETTINGS = {"session_id"}

# dbt commands that never open the warehouse: no need to wait for (or block) anybody.
_NO_WAREHOUSE = {("docs", "serve"), ("parse",), ("deps",), ("clean",), ("ls",), ("list",)}


def install_chdb_hook(warehouse: Path) -> None:
    import clickhouse_connect
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    def _create_client(self, credentials):
        settings = {k: v for k, v in self._conn_settings.items() if k not in _HTTP_ONLY_SETTINGS}
        return clickhouse_connect.get_client(dsn=f"chdb://{warehouse}", settings=settings)

    ChHttpClient._create_client = _create_client


def _server_env(settings: Settings) -> dict[str, str]:
    kw = server_client_kwargs(settings.clickhouse_url, os.environ.get("MM_CLICKHOUSE_PASSWORD"))
    return {
        "MM_DBT_TARGET": "server",
        "MM_CLICKHOUSE_HOST": kw["host"],
        "MM_CLICKHOUSE_PORT": str(kw["port"]),
        "MM_CLICKHOUSE_USER": kw["username"],
        "MM_CLICKHOUSE_PASSWORD": kw["password"],
        "MM_CLICKHOUSE_SECURE": "true" if kw["secure"] else "false",
    }


def _needs_warehouse(args: list[str]) -> bool:
    words = tuple(a for a in args if not a.startswith("-"))
    return not any(words[: len(cmd)] == cmd for cmd in _NO_WAREHOUSE)


def main() -> None:
    from mm_pipelines.dbt_server import run_on_server

    code = run_on_server(sys.argv)
    if code is not None:
        sys.exit(code)
    run_dbt()


def run_dbt() -> None:
    from dbt.cli.main import cli

    settings = Settings.from_env()
    warehouse = settings.embedded_warehouse
    if warehouse is None:
        for key, value in _server_env(settings).items():
            os.environ.setdefault(key, value)
        sys.exit(cli(prog_name="mm-dbt"))
    os.environ["MM_DBT_TARGET"] = "embedded"
    install_chdb_hook(warehouse)
    if not _needs_warehouse(sys.argv[1:]):
        sys.exit(cli(prog_name="mm-dbt"))
    warehouse.mkdir(parents=True, exist_ok=True)
    # dbt's CLI ends by raising SystemExit, which releases the lock on its way out.
    with warehouse_lock(warehouse).held(lambda msg: print(msg, file=sys.stderr, flush=True)):
        cli(prog_name="mm-dbt")


if __name__ == "__main__":
    main()

"""`mm-dbt`: dbt with the analytics store chosen by MM_CLICKHOUSE_URL; the platform's only patch of dbt.

dbt-clickhouse 1.10 always builds an HTTP client from the profile. For the embedded warehouse this wrapper
replaces that one constructor with a `chdb://` client on the same on-disk warehouse (install_chdb_hook) and holds
the warehouse lock for the whole dbt command, so dbt waits for (and is waited on by) other processes instead of
failing to open the engine, which one process at a time may hold. For a ClickHouse server it only fills in the
`server` target's connection variables from the URL. dbt's artifacts and logs go under MM_HOME
(Settings.dbt_target_path, dbt_log_path), never into the project folder.

Remove the hook once dbt-clickhouse ships its own embedded driver (`driver: chdb` with `chdb_path`, proposed in
ClickHouse/dbt-clickhouse#693 for issue #297, on clickhouse-connect's `interface="chdb"` backend): the profile's
`embedded` target then names the warehouse folder itself. The lock stays while chDB opens a folder for one
process at a time.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from mm_pipelines.config import Settings
from mm_pipelines.stores.clickhouse import server_client_kwargs, warehouse_lock

# Settings dbt-clickhouse sends per HTTP session that an in-process engine has no use for.
_HTTP_ONLY_SETTINGS = {"session_id"}

# dbt commands that never open the warehouse: no need to wait for (or block) anybody.
_NO_WAREHOUSE = {("docs", "serve"), ("parse",), ("deps",), ("clean",), ("ls",), ("list",)}


def install_chdb_hook(warehouse: Path) -> None:
    """dbt-clickhouse's client constructor, replaced by one that opens the embedded warehouse in this process."""
    import clickhouse_connect
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    def _create_client(self, credentials):
        settings = {k: v for k, v in self._conn_settings.items() if k not in _HTTP_ONLY_SETTINGS}
        return clickhouse_connect.get_client(dsn=f"chdb://{warehouse}", settings=settings)

    ChHttpClient._create_client = _create_client


def _server_env(settings: Settings) -> dict[str, str]:
    """The `server` target's connection variables (profiles.yml), from MM_CLICKHOUSE_URL."""
    kw = server_client_kwargs(
        settings.clickhouse_url,
        settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None,
    )
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


def print_version() -> None:
    """`mm-dbt --version` as dbt prints it, without importing dbt (~2 s): DbtCliResource asks it once per run."""
    print(
        f"Core:\n  - installed: {metadata.version('dbt-core')}\n\n"
        f"Plugins:\n  - clickhouse: {metadata.version('dbt-clickhouse')}"
    )


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print_version()
        return
    from dbt.cli.main import cli

    settings = Settings.from_env()
    # dbt writes into the project folder unless told otherwise: that folder is the installed package, shared
    # by every user of it. dagster-dbt sets both paths to each command's own folder; flags still win.
    os.environ.setdefault("DBT_TARGET_PATH", str(settings.dbt_target_path))
    os.environ.setdefault("DBT_LOG_PATH", str(settings.dbt_log_path))
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

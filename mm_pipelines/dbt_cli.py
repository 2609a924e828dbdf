"""`mm-dbt`: dbt with the analytics store chosen by MM_CLICKHOUSE_URL.

dbt-clickhouse always builds an HTTP client from the profile. For the embedded warehouse this
wrapper replaces that one constructor with a `chdb://` client on the same on-disk warehouse and
holds the warehouse lock for the whole dbt command, so dbt waits for (and is waited on by) other
processes instead of failing to open the engine. For a ClickHouse server it only fills in the
`server` target's connection variables from the URL. dbt's artifacts and logs go under MM_HOME
(Settings.dbt_target_path, dbt_log_path), never into the project folder. Within a Dagster run the
command runs in a fork of the run's dbt server, which has dbt imported already (mm_pipelines.dbt_server).

Every Dagster run passes its own partition range as dbt vars, and dbt re-parses the whole project when the
command-line vars differ from the last parse (2 s of each command). The project's vars are read only in
model SQL, which dbt renders at execution, so `mm-dbt` leaves the vars the project declares out of that
check (keep_parse_across_vars).
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


def keep_parse_across_vars() -> None:
    """Partial parsing survives a change on the command line of vars that dbt_project.yml declares: by the
    project's rule they are read only in model SQL, never in a config, ref or source. Other vars still count."""
    from dbt.parser.manifest import ManifestLoader

    check = ManifestLoader.build_manifest_state_check

    def build_manifest_state_check(self):
        declared = self.root_project.vars.to_dict()
        cli_vars = self.root_project.cli_vars
        self.root_project.cli_vars = {k: v for k, v in cli_vars.items() if k not in declared}
        try:
            return check(self)
        finally:
            self.root_project.cli_vars = cli_vars

    ManifestLoader.build_manifest_state_check = build_manifest_state_check


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

    keep_parse_across_vars()
    settings = Settings.from_env()
    # dbt writes into the project folder unless told otherwise: that folder is the installed package, shared
    # by every user of it. A Dagster step sets both paths to its own invocation folder; flags still win.
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

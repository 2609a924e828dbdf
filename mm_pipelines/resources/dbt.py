"""The dbt resource: dagster-dbt's DbtCliResource running `mm-dbt`."""

import os
import shutil
import sys
from functools import cached_property
from pathlib import Path

from dagster import InitResourceContext
from dagster_dbt import DbtCliResource
from dagster_dbt.compat import DBT_PYTHON_VERSION
from packaging.version import Version
from pydantic import PrivateAttr

from mm_pipelines.config import Settings
from mm_pipelines.dbt_server import SERVER_ENV, DbtServer


def mm_dbt_executable() -> str:
    """`mm-dbt` beside this interpreter: dbt with the embedded-warehouse hook."""
    candidate = Path(sys.executable).parent / "mm-dbt"
    return str(candidate) if candidate.exists() else (shutil.which("mm-dbt") or "mm-dbt")


class MMDbtCliResource(DbtCliResource):
    """dagster-dbt as this platform uses it, without the dbt start-ups a run would pay: each `mm-dbt` runs
    in a fork of the run's dbt server (mm_pipelines.dbt_server); dagster-dbt's own start-ups are skipped,
    asking the executable for its version, and importing dbt into the run worker to open an adapter that
    only serves row-count and column metadata (row counts are read from the warehouse instead:
    mm_pipelines.assets.dbt.with_row_counts).

    dagster-dbt gives each dbt command its own folder (artifacts and dbt.log) under DBT_TARGET_PATH, and
    seeds it with the saved parse found there: the run points it at MM_HOME's dbt target, where the
    definitions' parse is, instead of the project folder."""

    _server: DbtServer | None = PrivateAttr(default=None)
    _saved_env: dict[str, str | None] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        super().setup_for_execution(context)
        self._server = DbtServer()
        target = Settings.from_env().dbt_target_path
        self._saved_env = {k: os.environ.get(k) for k in (SERVER_ENV, "DBT_TARGET_PATH")}
        os.environ.update({SERVER_ENV: self._server.path, "DBT_TARGET_PATH": str(target)})

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._server is not None:
            self._server.stop()

    @cached_property
    def _cli_version(self) -> Version:
        # `mm-dbt` runs the dbt-core installed beside dagster-dbt.
        return DBT_PYTHON_VERSION

    def _initialize_dbt_core_adapter(self, args):
        return None

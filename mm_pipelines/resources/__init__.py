"""Dagster resources, configured per environment in one place.

Every resource reads its backend from the environment when a run starts (see mm_pipelines.config),
so the same definitions run on the embedded platform and on real services. Fields set here override
the environment, which is how tests point a code location at throwaway services.
"""


import os
import shutil
import sys
from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource
from dagster_dbt.compat import DBT_PYTHON_VERSION
from packaging.version import Version
from pydantic import PrivateAttr

from mm_pipelines.config import Settings, dbt_project_dir
from mm_pipelines.dbt_server import SERVER_ENV, DbtServer
from mm_pipelines.events.bus import EventBus, open_event_bus
from mm_pipelines.stores.clickhouse import Warehouse
from mm_pipelines.stores.objects import ObjectStore, open_object_store
from mm_pipelines.stores.postgres import MetadataDB


class ClickHouseResource(ConfigurableResource):
    """The analytics store (chDB on disk by default, or a ClickHouse server)."""

    url: str | None = None

    def get_warehouse(self) -> Warehouse:
        return Warehouse(self.url or Settings.from_env().clickhouse_url)


class EventBusResource(ConfigurableResource):
    """The event bus (embedded log by default, or Kafka) and the canonical events topic."""

    url: str | None = None
    topic: str | None = None
    partitions: int | None = None

    def open(self) -> EventBus:
        return open_event_bus(self.url or Settings.from_env().event_bus_url)

    def events_topic(self) -> str:
        return self.topic or Settings.from_env().events_topic

    def events_partitions(self) -> int:
        return self.partitions or Settings.from_env().events_partitions


class ObjectStoreResource(ConfigurableResource):
    url: str | None = None

    def open(self) -> ObjectStore:
        return open_object_store(self.url or Settings.from_env().object_store_url)


class PostgresResource(ConfigurableResource):
    """The metadata DB; the password comes from PGPASSWORD or the DSN, never from this config."""

    dsn: str | None = None

    def get_db(self) -> MetadataDB:
        settings = Settings.from_env()
        return MetadataDB(self.dsn or settings.postgres_dsn, settings.home / "postgres")


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


def build_resources() -> dict:
    return {
        "clickhouse": ClickHouseResource(),
        "event_bus": EventBusResource(),
        "object_store": ObjectStoreResource(),
        "postgres": PostgresResource(),
        "dbt": MMDbtCliResource(
            project_dir=os.fspath(dbt_project_dir()),
            profiles_dir=os.fspath(dbt_project_dir()),
            dbt_executable=mm_dbt_executable(),
        ),
    }

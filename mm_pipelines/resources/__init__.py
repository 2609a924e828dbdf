"""Dagster resources, configured per environment in one place.

Every resource reads its backend from the environment when a run starts (see mm_pipelines.config),
so the same definitions run on the embedded platform and on real services. Fields set here override
the environment, which is how tests point a code location at throwaway services.
"""


import os

from dagster import ConfigurableResource

from mm_pipelines.config import Settings, dbt_project_dir
from mm_pipelines.events.bus import EventBus, open_event_bus
from mm_pipelines.stores.clickhouse import Warehouse
from mm_pipelines.stores.objects import ObjectStore, open_object_store
from mm_pipelines.resources.dbt import MMDbtCliResource, mm_dbt_executable
from mm_pipelines.stores.postgres import MetadataDB

__all__ = ["ClickHouseResource", "EventBusResource", "ObjectStoreResource", "PostgresResource", "build_resources", "mm_dbt_executable"]


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

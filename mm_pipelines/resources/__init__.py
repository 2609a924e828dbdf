"""Dagster resources, configured per environment in one place.

`build_resources()` fills every resource from the settings (mm_pipelines.config) when the code location
loads, so the Dagster UI shows where each backend lives. Secrets are never config values: they are
`EnvVar`s, resolved in the run, and a URL or DSN with a password in it is refused. A resource built with
no arguments reads the settings when used; fields set explicitly win, which is how tests point a code
location at throwaway services.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

from dagster import ConfigurableResource, EnvVar

from mm_pipelines.config import ConfigError, Settings, dbt_project_dir
from mm_pipelines.resources.dbt import dbt_resource, mm_dbt_executable
from mm_pipelines.stores.bus import EventBus, open_event_bus
from mm_pipelines.stores.clickhouse import Warehouse
from mm_pipelines.stores.objects import ObjectStore, open_object_store
from mm_pipelines.stores.postgres import MetadataDB

__all__ = [
    "ClickHouseResource",
    "EventBusResource",
    "ObjectStoreResource",
    "PostgresResource",
    "build_resources",
    "mm_dbt_executable",
]


class ClickHouseResource(ConfigurableResource):
    """The analytics store (chDB on disk by default, or a ClickHouse server)."""

    url: str | None = None
    password: str | None = None  # an EnvVar: MM_CLICKHOUSE_PASSWORD
    lock_timeout_s: float | None = None

    def get_warehouse(self) -> Warehouse:
        return Warehouse(self.url or Settings.from_env().clickhouse_url, self.password, self.lock_timeout_s)


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
    """The object store (a local folder by default, or S3 with credentials from boto's AWS_* variables)."""

    url: str | None = None

    def open(self) -> ObjectStore:
        return open_object_store(self.url or Settings.from_env().object_store_url)


class PostgresResource(ConfigurableResource):
    """The metadata DB; the password comes from PGPASSWORD (libpq reads it), never from this config."""

    dsn: str | None = None
    embedded_dir: str | None = None  # the embedded Postgres folder when no DSN is set

    def get_db(self) -> MetadataDB:
        if self.dsn is None and self.embedded_dir is None:
            settings = Settings.from_env()
            return MetadataDB(settings.postgres_dsn, settings.home / "postgres")
        return MetadataDB(self.dsn, Path(self.embedded_dir or Settings.from_env().home / "postgres"))


def without_password(variable: str, url: str, instead: str) -> str:
    """The URL, refused when it embeds a password: config values are shown in the Dagster UI."""
    if urlsplit(url).password:
        raise ConfigError(f"{variable} has a password in it: remove it from the URL and {instead}")
    return url


def build_resources(settings: Settings | None = None) -> dict:
    settings = settings or Settings.from_env()
    project_dir = os.fspath(dbt_project_dir(settings))
    return {
        "clickhouse": ClickHouseResource(
            url=without_password("MM_CLICKHOUSE_URL", settings.clickhouse_url, "set MM_CLICKHOUSE_PASSWORD"),
            password=EnvVar("MM_CLICKHOUSE_PASSWORD") if settings.clickhouse_password is not None else None,
            lock_timeout_s=settings.warehouse_lock_timeout,
        ),
        "event_bus": EventBusResource(
            url=settings.event_bus_url, topic=settings.events_topic, partitions=settings.events_partitions
        ),
        "object_store": ObjectStoreResource(url=settings.object_store_url),
        "postgres": PostgresResource(
            dsn=without_password("MM_POSTGRES_DSN", settings.postgres_dsn, "set PGPASSWORD")
            if settings.postgres_dsn
            else None,
            embedded_dir=os.fspath(settings.home / "postgres"),
        ),
        "dbt": dbt_resource(project_dir),
    }

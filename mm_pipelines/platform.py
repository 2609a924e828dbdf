"""The platform's backends, built from Settings; shared by the CLI, Dagster resources and tests."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mm_pipelines.config import Settings
from mm_pipelines.stores.bus import EventBus, open_event_bus
from mm_pipelines.stores.clickhouse import Warehouse
from mm_pipelines.stores.objects import ObjectStore, open_object_store
from mm_pipelines.stores.postgres import MetadataDB


@dataclass
class Platform:
    settings: Settings

    @classmethod
    def from_env(cls) -> Platform:
        return cls(Settings.from_env())

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.settings.clickhouse_url)

    @cached_property
    def bus(self) -> EventBus:
        return open_event_bus(self.settings.event_bus_url)

    @cached_property
    def objects(self) -> ObjectStore:
        return open_object_store(self.settings.object_store_url)

    @cached_property
    def metadata(self) -> MetadataDB:
        return MetadataDB(self.settings.postgres_dsn, self.settings.home / "postgres")

    def close(self) -> None:
        if "bus" in self.__dict__:
            self.bus.close()

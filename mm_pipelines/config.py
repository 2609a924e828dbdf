"""Where every backend lives, read from the environment at run time (never at import time).

One setting per backend; each defaults to an embedded implementation under ``MM_HOME`` so that a
fresh clone runs the whole platform with no servers:

| variable            | embedded default                    | production                                   |
|---------------------|-------------------------------------|----------------------------------------------|
| MM_HOME             | ``<checkout>/.mm``                  | any writable folder                          |
| MM_CLICKHOUSE_URL   | ``chdb://$MM_HOME/warehouse``       | ``https://user@host:8443`` (+ MM_CLICKHOUSE_PASSWORD) |
| MM_POSTGRES_DSN     | embedded Postgres (pgserver)        | ``postgresql://user@host/db`` (+ PGPASSWORD)  |
| MM_EVENT_BUS        | ``log://$MM_HOME/eventlog``         | ``kafka://host:9092[,host2:9092]``           |
| MM_OBJECT_STORE     | ``file://$MM_HOME/objects``         | ``s3://bucket[/prefix]`` (+ AWS_* variables) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

EVENTS_TOPIC = "mm.events.v1"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and how to fix it."""


def repo_root() -> Path | None:
    """The checkout this package runs from (editable install), or None when installed elsewhere."""
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "dbt_project" / "dbt_project.yml").exists() else None


def dbt_project_dir() -> Path:
    override = os.environ.get("MM_DBT_PROJECT_DIR")
    if override:
        return Path(override)
    root = repo_root()
    if root is None:
        raise ConfigError(
            "MM_DBT_PROJECT_DIR is not set and no checkout was found: "
            "set MM_DBT_PROJECT_DIR to the dbt_project folder"
        )
    return root / "dbt_project"


def redact(url: str) -> str:
    """The URL with any password removed, safe for logs and the Dagster UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class Settings:
    home: Path
    clickhouse_url: str
    postgres_dsn: str | None  # None: embedded Postgres under home
    event_bus_url: str
    object_store_url: str
    events_topic: str
    events_partitions: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        root = repo_root()
        default_home = (root / ".mm") if root else Path.home() / ".mm"
        home = Path(env.get("MM_HOME") or default_home).expanduser().resolve()
        partitions_raw = env.get("MM_EVENTS_PARTITIONS", "4")
        try:
            partitions = int(partitions_raw)
            if partitions < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"MM_EVENTS_PARTITIONS={partitions_raw!r} is not a positive whole number"
            ) from None
        settings = cls(
            home=home,
            clickhouse_url=env.get("MM_CLICKHOUSE_URL") or f"chdb://{home / 'warehouse'}",
            postgres_dsn=env.get("MM_POSTGRES_DSN") or None,
            event_bus_url=env.get("MM_EVENT_BUS") or f"log://{home / 'eventlog'}",
            object_store_url=env.get("MM_OBJECT_STORE") or f"file://{home / 'objects'}",
            events_topic=env.get("MM_EVENTS_TOPIC") or EVENTS_TOPIC,
            events_partitions=partitions,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = [
            ("MM_CLICKHOUSE_URL", self.clickhouse_url, ("chdb", "http", "https")),
            ("MM_EVENT_BUS", self.event_bus_url, ("log", "kafka")),
            ("MM_OBJECT_STORE", self.object_store_url, ("file", "s3")),
        ]
        if self.postgres_dsn:
            checks.append(("MM_POSTGRES_DSN", self.postgres_dsn, ("postgresql", "postgres")))
        for name, url, schemes in checks:
            scheme = urlsplit(url).scheme
            if scheme not in schemes:
                allowed = ", ".join(f"{s}://" for s in schemes)
                raise ConfigError(f"{name}={redact(url)!r} has an unknown scheme: use one of {allowed}")

    @property
    def embedded_warehouse(self) -> Path | None:
        """The chDB warehouse folder, or None when a ClickHouse server is configured."""
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme != "chdb":
            return None
        return Path(parts.netloc + parts.path)

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    @property
    def dbt_target_path(self) -> Path:
        """dbt's artifacts (manifest, saved parse, compiled SQL, run results): per user, never in the installed project."""
        return self.home / "dbt" / "target"

    @property
    def dbt_log_path(self) -> Path:
        """dbt.log of the dbt commands run outside a Dagster step (a step's log sits in its own target folder)."""
        return self.home / "dbt" / "logs"

    def describe(self) -> dict[str, str]:
        """Each backend as shown to people: no secrets."""
        return {
            "home": str(self.home),
            "analytics store": redact(self.clickhouse_url),
            "metadata DB": redact(self.postgres_dsn) if self.postgres_dsn else f"embedded Postgres ({self.home / 'postgres'})",
            "event bus": self.event_bus_url,
            "object store": self.object_store_url,
        }

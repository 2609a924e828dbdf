"""Replay and disaster-recovery restore from the object-store archive (`mm replay`).

Each domain archives its own data and knows how to put it back; this module lists what they archive, in the
order a restore needs, and runs them. Tables dbt owns (the royalty ledger) are created by dbt from their model
contracts before their archived rows go back in.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from mm_pipelines.config import dbt_project_dir
from mm_pipelines.events import archive, fx_rates, spend
from mm_pipelines.resources.dbt import mm_dbt_executable
from mm_pipelines.royalties import warehouse as royalty_warehouse
from mm_pipelines.stores.clickhouse import Session, Warehouse
from mm_pipelines.stores.objects import ObjectStore
from mm_pipelines.stores.warehouse_tables import ensure_tables


@dataclass(frozen=True)
class ArchivedData:
    """What one domain keeps in the archive and how a full restore puts it back."""

    name: str
    counts: tuple[str, ...]  # what `restore` returns counts of, as `mm replay` shows them
    restore: Callable[[Session, ObjectStore, str], dict[str, int]]  # (session, archive, replay token)
    dbt_models: dict[str, str] = field(default_factory=dict)  # dbt model → archive prefix of its rows


# Restored in this order, after the events themselves.
ARCHIVED = (
    ArchivedData("dead letters and ingested ranges", ("dead letters", "ranges"), archive.restore_ingestion),
    ArchivedData("spend reports", ("spend reports",), spend.restore_spend),
    ArchivedData("FX rate files", ("fx rate files",), fx_rates.restore_fx),
    ArchivedData(
        "sales reports, royalty ledger and statements",
        ("sales reports", "ledger lines"),
        royalty_warehouse.restore_royalties,
        {"royalty_ledger": royalty_warehouse.LEDGER_PREFIX},
    ),
)
RESTORED_COUNTS = tuple(name for data in ARCHIVED for name in data.counts)


class RecoveryError(RuntimeError):
    pass


@dataclass
class ReplayReport:
    days: int = 0
    files: int = 0
    events: int = 0
    restored: dict[str, int] = field(default_factory=dict)


def create_dbt_tables(models: list[str]) -> None:
    """Have dbt create its models' tables, empty, from their contracts (macro create_contracted_table): their
    SQL reads models a restore has not rebuilt yet. Runs outside any warehouse session (dbt takes the lock)."""
    project = str(dbt_project_dir())
    for model in models:
        result = subprocess.run(
            [
                mm_dbt_executable(),
                "run-operation",
                "create_contracted_table",
                "--args",
                json.dumps({"model_name": model}),
                "--project-dir",
                project,
                "--profiles-dir",
                project,
                "--quiet",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            detail = (result.stdout + result.stderr).strip().splitlines()
            raise RecoveryError(
                f"dbt could not create the table of model {model}: {detail[-1] if detail else 'no output'}"
            )


def replay(
    warehouse: Warehouse,
    store: ObjectStore,
    first: date,
    last: date,
    everything: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Rebuild raw.events for [first, last] from the archive. With `everything` (disaster recovery), every domain's
    archived data is restored too, so ingestion resumes where it stopped and loaded reports and the ledger are back."""
    # Unique to this replay: the tables still remember the original inserts' dedup tokens.
    token = f"replay:{uuid.uuid4().hex}"
    with warehouse.session() as s:
        ensure_tables(s)
        report = ReplayReport(**archive.replay_days(s, store, first, last, token, progress))
    if everything:
        for data in ARCHIVED:
            create_dbt_tables([model for model, prefix in data.dbt_models.items() if store.list_keys(f"{prefix}/")])
            with warehouse.session() as s:
                report.restored |= data.restore(s, store, token)
    return report

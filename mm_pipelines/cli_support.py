"""What every `mm` command shares: one-line user errors, consoles, progress, and running Dagster jobs in process."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mm_pipelines.config import Settings, repo_root

# Readable tables when piped too (rich falls back to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


class UserError(Exception):
    """A failure the user can fix: printed as one line plus what to do, exit code 1."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    )


def _platform():
    from mm_pipelines.platform import Platform

    return Platform(Settings.from_env())


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME with the checkout's dagster.yaml, so runs from the CLI show up in `mm dev`."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    root = repo_root()
    if root and (root / "dagster.yaml").exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(root / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


# Step logs go to the run's event log (the UI shows them); the terminal gets warnings and errors only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@contextmanager
def _stdout_to(path: Path):
    """Send this process's stdout (dbt's log lines among it) to a file, at the descriptor level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _execute(job_name: str | None, selection=None, days: tuple[date, date] | None = None, partition_key: str | None = None) -> bool:
    """Run a job (or an asset selection) in this process on the local Dagster instance, over `days` for daily assets."""
    from dagster import DagsterInstance, materialize

    from mm_pipelines.assets.partitions import range_tags

    settings = Settings.from_env()
    ensure_dagster_home(settings)
    from mm_pipelines.definitions import defs

    log = settings.home / "logs" / f"{job_name or 'materialize'}.log"
    err.print(f"  step output: {log}")
    with DagsterInstance.get() as instance, _stdout_to(log):
        if job_name:
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET, tags=range_tags(*days) if days else {},
                partition_key=partition_key,
            )
        else:
            assets = list(defs.assets or []) + list(defs.asset_checks or [])
            result = materialize(
                assets, selection=selection, instance=instance, resources=defs.resources, raise_on_error=False,
                run_config=QUIET, tags=range_tags(*days) if days else {},
            )
        failed_checks = [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
        ]
        for check in failed_checks:
            err.print(f"[red]check failed[/red] {check.asset_key.to_user_string()}:{check.check_name} {check.description or ''}")
        if not result.success:
            for e in result.all_events:
                if e.is_step_failure:
                    err.print(f"[red]step failed[/red] {e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}")
        return result.success and not failed_checks

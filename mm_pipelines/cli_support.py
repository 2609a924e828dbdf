"""What every `mm` command shares: one-line user errors, consoles, progress, and running Dagster jobs in process."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mm_pipelines.config import Settings, repo_root

# Readable tables when piped too (rich falls back to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def say(text: str, to: Console = console) -> None:
    """A message as one line however long its paths are (tables keep rich's wrapping): users and scripts grep it."""
    to.print(text, soft_wrap=True)


class UserError(Exception):
    """A failure the user can fix: printed as one line plus what to do, exit code 1."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


def progress_bar() -> Progress:
    """A transient bar on stderr for a command's own loops (loading, replaying)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def open_platform():
    """The platform's backends as configured in the environment now (never at import)."""
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


# Step logs go to the run's event log (the UI shows them); the terminal gets warnings and errors only, as
# RunProgress lines: Dagster's console logger would print every failure again with its stack trace.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


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


@cache
def platform_definitions():
    """The code location, built once per command (building it may parse the dbt project)."""
    from mm_pipelines.definitions import build_definitions

    return build_definitions()


# Metadata that counts what a materialization wrote: Dagster's own key (dbt tables), then the platform's
# Python assets' ("rows" of the attribution fit and backfill, "events" ingested).
ROW_COUNT_KEYS = ("dagster/row_count", "rows", "events")


@dataclass
class StepReport:
    started: float
    partitions: Counter = field(default_factory=Counter)  # asset -> partitions materialized
    rows: dict[str, int] = field(default_factory=dict)  # asset -> rows written (a range run repeats them per partition)
    checks: list = field(default_factory=list)  # AssetCheckEvaluation


class RunProgress:
    """A run's progress from its events as they happen: a bar of steps done on a terminal, and one line per
    step (its assets with rows written, its checks) that reads the same when piped. Failed checks get a line
    each: WARN ones in yellow, ERROR ones (those guarding money among them) in red."""

    def __init__(self, title: str, steps: int):
        self.title = title
        # stdout is the step log file during a run (_stdout_to): only stderr belongs to the display.
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            redirect_stdout=False,
        )
        self.task = self.progress.add_task(title, total=steps)
        self.steps: dict[str, StepReport] = {}
        self.passed = 0
        self.warnings: list = []
        self.failures: list = []

    def __enter__(self) -> RunProgress:
        self.started = time.monotonic()
        if err.is_terminal:  # piped: the step lines alone
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress.live.is_started:  # a Progress never started still prints a blank line when stopped
            self.progress.stop()

    def print(self, line: str) -> None:
        # Not wrapped: a piped line stays one line, whole for grep.
        err.print(line, highlight=False, soft_wrap=True)

    def __call__(self, entry) -> None:
        """An instance event listener: called with each event of the run, in the thread that logs it."""
        from dagster import AssetCheckSeverity, DagsterEventType

        event = entry.dagster_event
        if event is None and entry.level == logging.WARNING:  # a step's warning (its errors fail it: a line below)
            self.print(f"[yellow]⚠[/yellow] {entry.step_key or entry.job_name}: {entry.user_message}")
        if event is None or event.step_key is None:  # run-level events: the summary covers them
            return
        kind = event.event_type
        step = self.steps.setdefault(event.step_key, StepReport(time.monotonic()))
        if kind == DagsterEventType.STEP_START:
            step.started = time.monotonic()
            self.progress.update(self.task, description=f"{self.title} · {event.step_key}")
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            m = event.event_specific_data.materialization
            key = m.asset_key.to_user_string()
            step.partitions[key] += 1
            rows = next((m.metadata[k].value for k in ROW_COUNT_KEYS if k in m.metadata), None)
            if isinstance(rows, int):
                step.rows.setdefault(key, rows)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.event_specific_data
            step.checks.append(check)
            name = f"{check.asset_key.to_user_string()}:{check.check_name} {check.description or ''}".rstrip()
            if check.passed:
                self.passed += 1
            elif check.severity == AssetCheckSeverity.WARN:
                self.warnings.append(check)
                self.print(f"[yellow]⚠ warning[/yellow] {name}")
            else:
                self.failures.append(check)
                self.print(f"[red]✗ check failed[/red] {name}")
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_SKIPPED):
            self.progress.advance(self.task)
            if line := self._step_line(event, step):
                self.print(line)

    def _step_line(self, event, step: StepReport) -> str | None:
        key = event.step_key
        if event.is_step_skipped:
            return f"[dim]– {key} skipped (an upstream step failed or a blocking check did not pass)[/dim]"
        took = f"[dim]{time.monotonic() - step.started:.1f}s[/dim]"
        own_check = not step.partitions and step.checks  # a check's own step: a failed check already has its line
        if event.is_step_failure:
            if own_check:  # a blocking check that failed fails its step
                return None
            error = event.event_specific_data.error
            while error.cause is not None:  # Dagster wraps what the step raised: show that
                error = error.cause
            message = error.message.strip().splitlines()[0]
            return f"[red]✗ step failed[/red] {key} {took}: {message}"
        if own_check:
            names = ", ".join(f"{c.asset_key.to_user_string()}:{c.check_name}" for c in step.checks if c.passed)
            return f"[green]✓[/green] check {names} {took}" if names else None
        return f"[green]✓[/green] {key} {took}  {_assets_written(step)}"

    def summary(self) -> str:
        parts = [f"{self.passed} check{'s' if self.passed != 1 else ''} passed"]
        if self.warnings:
            parts.append(f"[yellow]{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}[/yellow]")
        if self.failures:
            parts.append(f"[red]{len(self.failures)} failed[/red]")
        done = int(self.progress.tasks[0].completed)
        return (
            f"{self.title}: {done} step{'s' if done != 1 else ''} "
            f"in {time.monotonic() - self.started:.1f}s; {', '.join(parts)}"
        )


def _assets_written(step: StepReport, shown: int = 4) -> str:
    """The step's assets, the most rows first, e.g.
    'staging/stg_events 6,012 rows, marts/campaign_performance_daily 645 rows, +6 more'."""
    keys = sorted(step.partitions, key=lambda k: -step.rows.get(k, -1))
    entries = []
    for key in keys[:shown]:
        entry = key + (f" {step.rows[key]:,} rows" if key in step.rows else "")
        entries.append(entry + (f" ×{step.partitions[key]} partitions" if step.partitions[key] > 1 else ""))
    if len(keys) > shown:
        entries.append(f"+{len(keys) - shown} more")
    checks = len(step.checks)
    if checks:
        entries.append(f"{checks} dbt test{'s' if checks != 1 else ''}")
    return ", ".join(entries)


def select_assets(text: str):
    """Dagster's own asset selection syntax (keys, `group:`, `tag:`, `+` for lineage, `*` for all) resolved
    against the code location: the selection and the keys it matches, or a UserError when it matches none."""
    from dagster import AssetSelection, BetaWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # group: selections carry a beta parameter
        selection = AssetSelection.from_string(text)
    keys = selection.resolve(platform_definitions().resolve_asset_graph(), allow_missing=True)
    if not keys:
        hint = "see the asset keys with `mm dev`, e.g. raw/events, group:marts, '*'"
        raise UserError(f"No asset matches {text!r}", hint)
    return selection, keys


def run_job(
    job_name: str | None, selection=None, days: tuple[date, date] | None = None, partition_key: str | None = None
) -> bool:
    """Run a job of the code location (or an asset selection as a job) in this process on the local Dagster
    instance, over the daily partitions `days` (Dagster's partition-range run tags: one run, not one per day),
    showing its progress. True when every step succeeded and no ERROR check failed: a failed WARN check
    (freshness) is shown, not a failure."""
    from dagster import DagsterInstance, define_asset_job

    from mm_pipelines.assets.partitions import range_tags

    settings = Settings.from_env()
    ensure_dagster_home(settings)
    defs = platform_definitions()
    job = (
        defs.resolve_job_def(job_name)
        if job_name
        else define_asset_job("materialize", selection=selection).resolve(asset_graph=defs.resolve_asset_graph())
    )
    title = job.name + (f" {days[0]} … {days[1]}" if days else f" {partition_key}" if partition_key else "")
    log = settings.home / "logs" / f"{job.name}.log"
    err.print(f"  step output: {log}")
    run_id = str(uuid.uuid4())
    with DagsterInstance.get() as instance, RunProgress(title, len(job.graph.nodes)) as progress, _stdout_to(log):
        instance.add_event_listener(run_id, progress)
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
            run_config=QUIET,
            tags=range_tags(*days) if days else {},
            partition_key=partition_key,
        )
    err.print(progress.summary(), highlight=False)
    return result.success and not progress.failures

"""`mm`: the platform's command line for data engineers, analysts and ops."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import subprocess
import sys
import time
import warnings
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mm_pipelines.attribution.config import MODELS
from mm_pipelines.cli_api import serve, token
from mm_pipelines.cli_db import db_app
from mm_pipelines.cli_royalties import audit_app, payouts_app, royalties_app
from mm_pipelines.cli_support import (
    UserError,
    console,
    ensure_dagster_home,
    err,
    open_platform,
    progress_bar,
    run_job,
    say,
    select_assets,
)
from mm_pipelines.config import ConfigError, Settings, repo_root
from mm_pipelines.process_group import run_in_process_group

app = typer.Typer(help="Market & Media data platform.", no_args_is_help=True, add_completion=False)
events_app = typer.Typer(help="Generate and load canonical events.", no_args_is_help=True)
app.add_typer(events_app, name="events")
spend_app = typer.Typer(help="Ad spend reports.", no_args_is_help=True)
app.add_typer(spend_app, name="spend")
fx_app = typer.Typer(help="FX rates (Finance's rate files).", no_args_is_help=True)
app.add_typer(fx_app, name="fx")
attribution_app = typer.Typer(help="Multi-touch attribution.", no_args_is_help=True)
app.add_typer(attribution_app, name="attribution")
app.add_typer(royalties_app, name="royalties")
app.add_typer(payouts_app, name="payouts")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.command("api")(serve)
app.command("token")(token)


@events_app.command("generate")
def events_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write ('-' for stdout).")] = Path("-"),
    events: Annotated[int, typer.Option(help="Approximate number of events.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 7,
    days: Annotated[int, typer.Option(help="Days of activity, from 2026-10-01.")] = 28,
) -> None:
    """Generate a realistic synthetic dataset of canonical events."""
    from mm_pipelines.events.generator import generate_events, to_jsonl

    data = generate_events(events=events, seed=seed, days=days)
    if str(out) == "-":
        sys.stdout.buffer.writelines(to_jsonl(data))
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.writelines(to_jsonl(data))
    err.print(f"Wrote {len(data):,} events to {out}")


@events_app.command("load")
def events_load(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of canonical events.")],
    strict: Annotated[bool, typer.Option(help="Exit non-zero if any line was quarantined.")] = False,
    force: Annotated[bool, typer.Option(help="Load even if this exact file was loaded before.")] = False,
) -> None:
    """Produce a file's valid events to the event bus; quarantine invalid lines with their reason."""
    report = _load(file, force)
    if report.quarantined and strict:
        raise typer.Exit(1)


def _load(file: Path, force: bool):
    from mm_pipelines.events.loader import load_file

    if not file.is_file():
        raise UserError(f"{file}: no such file", "give the path of a JSON Lines file of canonical events")
    platform = open_platform()
    try:
        with progress_bar() as progress:
            task = progress.add_task(f"Loading {file.name}", total=None)
            report = load_file(
                platform,
                file,
                force=force,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        platform.close()
    if report.already_loaded_at:
        err.print(
            f"{file}: already loaded at {report.already_loaded_at:%Y-%m-%d %H:%M:%S %Z} "
            f"(sha256 {report.sha256[:12]}…); nothing produced. Use --force to load it again."
        )
        return report
    table = Table(title=f"Loaded {file}")
    for col in ("lines", "produced", "quarantined", "topic"):
        table.add_column(col, justify="right" if col != "topic" else "left")
    table.add_row(
        f"{report.lines:,}", f"{report.produced:,}", f"{len(report.quarantined):,}", platform.settings.events_topic
    )
    err.print(table)
    if report.quarantined:
        reasons = Table(title="Quarantined lines (raw.dead_letters)")
        reasons.add_column("reason")
        reasons.add_column("lines", justify="right")
        reasons.add_column("first line numbers")
        by_reason: dict[str, list[int]] = {}
        for line, reason in report.quarantined:
            by_reason.setdefault(reason, []).append(line)
        for reason, lines in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            reasons.add_row(
                reason, f"{len(lines):,}", ", ".join(str(n) for n in lines[:5]) + (" …" if len(lines) > 5 else "")
            )
        err.print(reasons)
        err.print(
            'Inspect them with: mm sql "SELECT line, error, raw FROM raw.dead_letters '
            f"WHERE file = '{report.file}' ORDER BY line\""
        )
    return report


@events_app.command("produce")
def events_produce(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSON Lines file to produce (default: generate events).")
    ] = None,
    events: Annotated[int, typer.Option(help="Approximate number of generated events.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated events.")] = 7,
) -> None:
    """Produce events to the events topic as they are (no validation: ingestion dead-letters bad ones)."""
    from mm_pipelines.events.generator import generate_events, to_jsonl

    platform = open_platform()
    topic = platform.settings.events_topic
    if file is not None:
        if not file.is_file():
            raise UserError(f"{file}: no such file", "give the path of a JSON Lines file")
        records = []
        for n, line in enumerate(file.read_bytes().splitlines(), 1):
            if line.strip():
                try:
                    key = str(json.loads(line).get("user_id", "")).encode()
                except (ValueError, AttributeError):
                    key = f"{file.name}:{n}".encode()  # unparseable: ingestion will dead-letter it
                records.append((key, line))
    else:
        data = generate_events(events=events, seed=seed)
        records = [(e["user_id"].encode(), line.rstrip(b"\n")) for e, line in zip(data, to_jsonl(data))]
    try:
        platform.bus.ensure_topic(topic, platform.settings.events_partitions)
        with progress_bar() as progress:
            task = progress.add_task(f"Producing to {topic}", total=len(records))
            for i in range(0, len(records), 50_000):
                platform.bus.produce(topic, records[i : i + 50_000])
                progress.update(task, completed=min(i + 50_000, len(records)))
    finally:
        platform.close()
    err.print(f"Produced {len(records):,} events to {topic} on {platform.settings.event_bus_url}")


@app.command()
def replay(
    from_: Annotated[str | None, typer.Option("--from", help="First event date (YYYY-MM-DD).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last event date (YYYY-MM-DD).")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Disaster recovery: every archived day, dead letters and ingestion offsets.")
    ] = False,
) -> None:
    """Rebuild raw tables from the Parquet archive in the object store."""
    from mm_pipelines.events.archive import archived_days
    from mm_pipelines.recovery import RESTORED_COUNTS, RecoveryError
    from mm_pipelines.recovery import replay as replay_archive

    platform = open_platform()
    days = archived_days(platform.objects)
    if not days:
        raise UserError(
            f"No archived events in {platform.settings.object_store_url}",
            "ingest events first (mm materialize raw/events)",
        )
    try:
        first = date.fromisoformat(from_) if from_ else days[0]
        last = date.fromisoformat(to) if to else days[-1]
    except ValueError as e:
        raise UserError(f"--from/--to: {e}", "give dates as YYYY-MM-DD") from None
    if not everything and not (from_ and to):
        raise UserError(
            "Say which days to replay", "use --from DATE --to DATE, or --all for a full disaster-recovery replay"
        )
    if first > last:
        raise UserError(f"--from {first} is after --to {last}", "swap the dates")
    with progress_bar() as progress:
        task = progress.add_task("Replaying days", total=(last - first).days + 1)
        try:
            report = replay_archive(
                platform.warehouse,
                platform.objects,
                first,
                last,
                everything,
                progress=lambda d, t: progress.update(task, completed=d),
            )
        except RecoveryError as e:
            raise UserError(
                str(e), "check the dbt project with `mm-dbt parse`, then run `mm replay --all` again"
            ) from None
    table = Table(title=f"Replayed {first} … {last} from {platform.settings.object_store_url}")
    for col in ("days", "files", "events", *RESTORED_COUNTS):
        table.add_column(col, justify="right")
    table.add_row(
        f"{report.days:,}",
        f"{report.files:,}",
        f"{report.events:,}",
        *(f"{report.restored.get(c, 0):,}" for c in RESTORED_COUNTS),
    )
    err.print(table)
    err.print("Rebuild what depends on them with: mm materialize")


def _returns_rows(query: str) -> bool:
    """Queries print a table; statements (CREATE, DROP, INSERT, ALTER …) only their success."""
    return _first_word(query) in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK")


def _first_word(query: str) -> str:
    words = re.sub(r"(--[^\n]*|/\*.*?\*/)", " ", query, flags=re.S).split()
    return words[0].lstrip("(").upper() if words else ""


def _without_text(t):
    """The same Arrow type with every string as binary: ClickHouse strings are bytes, not always UTF-8."""
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.binary()
    if pa.types.is_map(t):
        return pa.map_(_without_text(t.key_type), _without_text(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_without_text(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_without_text(f.type)) for f in t])
    return t


def _readable(value):
    """Bytes as text, each byte that is not UTF-8 shown escaped (\\xff) instead of failing the whole query."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, (list, tuple)):
        return type(value)(_readable(v) for v in value)
    if isinstance(value, dict):
        return {k: _readable(v) for k, v in value.items()}
    return value


def readable_rows(result) -> list[dict]:
    import pyarrow as pa

    binary = result.cast(pa.schema([f.with_type(_without_text(f.type)) for f in result.schema]))
    return [{k: _readable(v) for k, v in row.items()} for row in binary.to_pylist()]


@app.command()
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL to run on the analytics store; if it starts with a comment, put -- before it: mm sql -- '-- …'."
        ),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    write: Annotated[
        bool,
        typer.Option("--write", help="Allow statements that change data or schema (CREATE, DROP, INSERT, ALTER …)."),
    ] = False,
) -> None:
    """Run SQL on the analytics store and print the result; read-only unless --write."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    if format not in ("table", "csv", "json"):
        raise UserError(f"--format {format!r} is not supported", "use --format table, csv or json")
    if not write and not _returns_rows(query):
        raise UserError(
            f"mm sql is read-only: {_first_word(query) or 'this statement'} would change the analytics store",
            "pass --write to run statements that change data or schema",
        )
    warehouse = open_platform().warehouse
    if not _returns_rows(query):
        warehouse.command(query)
        err.print("OK")
        return
    try:
        # The server enforces it too: a query that would write is refused whatever its first word.
        result = warehouse.query_arrow(query, settings=None if write else {"readonly": 2})
    except DatabaseError as e:
        if "(READONLY)" in str(e):
            raise UserError(
                "mm sql is read-only: the analytics store refused a query that would change it",
                "pass --write to run statements that change data or schema",
            ) from None
        raise
    rows = readable_rows(result)
    names = result.column_names
    if format == "json":
        sys.stdout.write(json.dumps(rows, default=str, indent=None) + "\n")
    elif format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(names)
        writer.writerows([[r[n] for n in names] for r in rows])
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(*names)
        for r in rows:
            table.add_row(*("" if r[n] is None else str(r[n]) for n in names))
        console.print(table)
        err.print(f"{len(rows):,} row{'s' if len(rows) != 1 else ''}")


@app.command("materialize")
def materialize_cmd(
    selection: Annotated[
        str,
        typer.Argument(
            help="Asset selection, e.g. '*', 'raw/events', 'marts/campaign_performance_daily', 'group:marts'."
        ),
    ] = "*",
    from_: Annotated[
        str | None, typer.Option("--from", help="First day of the daily partitions to build (YYYY-MM-DD).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Last day of the daily partitions to build (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Materialize assets (and run their checks) without the UI.

    Two runs: the unpartitioned assets (ingestion, staging) first, then the daily ones over --from … --to, by
    default the days raw.events holds once the first run has ingested what was pending."""
    from dagster import AssetKey, AssetSelection

    explicit = _date_range(from_, to) if (from_ or to) else None
    # '*' means the platform; the Spark backfill runs only when asked for by name,
    # royalty periods by `mm royalties run`.
    periods = AssetSelection.groups("royalty") - AssetSelection.assets(AssetKey(["marts", "royalty_statements"]))
    chosen, keys = select_assets(selection)
    if selection == "*":
        chosen = chosen - AssetSelection.groups("backfill") - periods
    elif keys & periods.resolve(_asset_graph()):
        raise UserError(
            f"{selection!r} selects royalty assets, which run one period at a time", "use `mm royalties run YYYY-MM`"
        )
    daily = AssetSelection.tag("partitioning", "daily")
    ok = True
    if (chosen - daily).resolve(_asset_graph()):
        ok = run_job(None, chosen - daily)
    if ok and (chosen & daily).resolve(_asset_graph()):
        days = explicit or _event_days(Settings.from_env())
        if days is None:
            err.print("No events in raw.events yet: the daily attribution assets have no day to build.")
        else:
            ok = run_job(None, chosen & daily, days)
    if not ok:
        raise UserError(
            f"Materializing {selection!r} failed", "see the step errors above; `mm dev` shows the run's logs"
        )


def _asset_graph():
    from mm_pipelines.cli_support import platform_definitions

    return platform_definitions().resolve_asset_graph()


def _date_range(from_: str | None, to: str | None) -> tuple[date, date]:
    if not (from_ and to):
        raise UserError("Give both --from and --to", "e.g. --from 2026-10-01 --to 2026-10-28")
    try:
        first, last = date.fromisoformat(from_), date.fromisoformat(to)
    except ValueError as e:
        raise UserError(f"--from/--to: {e}", "give dates as YYYY-MM-DD") from None
    if first > last:
        raise UserError(f"--from {first} is after --to {last}", "swap the dates")
    return first, last


def _event_days(settings: Settings) -> tuple[date, date] | None:
    """The days the warehouse holds events for, or None before anything was ingested."""
    from mm_pipelines.stores.clickhouse import Warehouse

    try:
        lo, hi = Warehouse(settings.clickhouse_url).query_rows(
            "SELECT min(toDate(occurred_at)), max(toDate(occurred_at)), count() FROM raw.events"
        )[0][:2]
    except Exception:  # no raw.events yet
        return None
    return (lo, hi) if lo.year > 1970 else None


def _dataset_days(path: Path) -> tuple[date, date]:
    """First and last event day of a JSON Lines dataset sorted by time (the generator's output)."""
    with open(path, "rb") as f:
        first = json.loads(f.readline())
        f.seek(max(0, path.stat().st_size - 65536))
        last = json.loads(f.read().splitlines()[-1])
    return date.fromisoformat(first["occurred_at"][:10]), date.fromisoformat(last["occurred_at"][:10])


def _summary(settings: Settings) -> Table:
    from mm_pipelines.stores.clickhouse import Warehouse

    rows = Warehouse(settings.clickhouse_url).query_rows(
        """SELECT channel, sum(impressions), sum(clicks), sum(conversions), sum(revenue), any(revenue_currency)
        FROM marts.campaign_performance_daily GROUP BY channel ORDER BY sum(revenue) DESC, channel"""
    )
    currency = rows[0][5] if rows else "USD"
    table = Table(title="Campaign performance per channel (marts.campaign_performance_daily)")
    for col in ("channel", "impressions", "clicks", "CTR", "conversions", f"revenue {currency}", "per conv."):
        table.add_column(col, justify="left" if col == "channel" else "right", no_wrap=True)

    def cells(imp, clk, conv, rev):
        return (
            f"{imp:,}",
            f"{clk:,}",
            f"{clk / imp:.2%}" if imp else "–",
            f"{conv:,}",
            f"{rev:,.2f}",
            f"{rev / conv:,.2f}" if conv else "–",
        )

    totals = [0, 0, 0, Decimal(0)]
    for channel, imp, clk, conv, rev, _ in rows:
        totals = [totals[0] + imp, totals[1] + clk, totals[2] + conv, totals[3] + rev]
        table.add_row(channel, *cells(imp, clk, conv, rev))
    table.add_section()
    table.add_row("total", *cells(*totals), style="bold")
    return table


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Approximate number of synthetic events.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Same seed, same dataset, same numbers.")] = 7,
) -> None:
    """Generate a dataset, land it on the event bus, run the platform job, print campaign performance."""
    from mm_pipelines.events.generator import generate_events, to_jsonl

    settings = Settings.from_env()
    config = Table(title="Platform", show_header=False)
    for k, v in settings.describe().items():
        config.add_row(k, v)
    err.print(config)
    dataset = settings.home / "demo" / f"events-seed{seed}-n{events}.jsonl"
    started = time.perf_counter()
    if not dataset.exists():
        with err.status(f"Generating {events:,} synthetic events…"):
            data = generate_events(events=events, seed=seed)
            dataset.parent.mkdir(parents=True, exist_ok=True)
            tmp = dataset.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.writelines(to_jsonl(data))
            tmp.replace(dataset)
    err.print(f"[green]✓[/green] dataset {dataset}")
    _load(dataset, force=False)
    days = _dataset_days(dataset)
    _load_demo_spend(settings, seed, events, days)
    err.print(f"Running platform_job for {days[0]} … {days[1]}: ingest → dbt build → attribution → data-quality checks")
    if not run_job("platform_job", days=days):
        raise UserError("platform_job failed", "see the errors above; `mm dev` shows the run's logs")
    err.print(f"[green]✓[/green] demo done in {time.perf_counter() - started:.1f}s")
    console.print(_summary(settings))
    console.print(_compare_table(settings, days[0], days[1], "channel"))


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Open the Dagster UI (and daemon) on this platform."""
    settings = Settings.from_env()
    ensure_dagster_home(settings)
    root = repo_root()
    workspace = ["-w", str(root / "workspace.yaml")] if root else ["-m", "mm_pipelines.definitions"]
    err.print(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={settings.dagster_home})")
    dagster = Path(sys.executable).parent / "dagster"
    raise typer.Exit(
        run_in_process_group([str(dagster), "dev", *workspace, "-h", host, "-p", str(port)], cwd=root or None)
    )


@app.command()
def docs(
    port: Annotated[int, typer.Option(help="Port of the docs site.")] = 8580,
    serve: Annotated[bool, typer.Option(help="Serve the site after generating it.")] = True,
) -> None:
    """Generate the dbt docs (model catalog and lineage) for analysts, and serve them."""
    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.resources import mm_dbt_executable

    project = dbt_project_dir()
    settings = Settings.from_env()
    base = [mm_dbt_executable()]
    flags = [
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(settings.dbt_target_path),
        "--log-path",
        str(settings.dbt_log_path),
    ]
    if subprocess.call([*base, "docs", "generate", *flags]) != 0:
        raise UserError("dbt docs generate failed", "run `mm materialize` first so every model exists, then retry")
    err.print(f"Docs generated in {settings.dbt_target_path}")
    if serve:
        raise typer.Exit(
            run_in_process_group(
                [*base, "docs", "serve", "--port", str(port), "--host", "127.0.0.1", "--no-browser", *flags]
            )
        )


@app.command(
    help="Show every MM_* setting: its effective value (secrets as ***), whether it is set or the default, "
    "and what it is for."
)
def config() -> None:
    from rich.table import Column
    from rich.text import Text  # values are shown as they are, never read as markup

    table = Table(Column("variable", no_wrap=True), "value", "source", "description")
    for row in Settings.from_env().rows():
        table.add_row(*map(Text, row))
    console.print(table)


def _load_demo_spend(settings: Settings, seed: int, events: int, days: tuple[date, date]) -> None:
    """The synthetic catalog's spend report for the dataset's days, loaded like any report (idempotent)."""
    import random

    from mm_pipelines.events.generator import build_catalog
    from mm_pipelines.events.spend import generate_spend_csv, load_spend_file
    from mm_pipelines.stores.clickhouse import Warehouse
    from mm_pipelines.stores.objects import open_object_store

    catalog = build_catalog(random.Random(seed))
    path = settings.home / "demo" / f"spend-seed{seed}-n{events}-{days[0]}-{days[1]}.csv"
    if not path.exists():
        scale = Decimal(events) / 400_000
        path.write_text(generate_spend_csv(catalog.campaigns, days[0], (days[1] - days[0]).days + 1, seed, scale))
    with Warehouse(settings.clickhouse_url).session() as s:
        _, rows = load_spend_file(s, path, open_object_store(settings.object_store_url))
    err.print(f"[green]✓[/green] ad spend {path} ({rows:,} rows)")


@fx_app.command("load")
def fx_load(
    file: Annotated[
        Path, typer.Argument(help="The ECB's reference rates CSV (Date,USD,JPY,…) or a CSV date,currency,rate.")
    ],
) -> None:
    """Load daily FX rates into raw.fx_rates; each month's rate is the mean of its days (a later file wins a day)."""
    from mm_pipelines.events.fx_rates import FxFileError, load_fx_file, months_in_effect

    if not file.exists():
        raise UserError(f"{file}: no such file", "give the path of an FX rates CSV")
    settings = Settings.from_env()
    platform = open_platform()
    try:
        with platform.warehouse.session() as s:
            load_id, parsed = load_fx_file(s, file, settings.reporting_currency, platform.objects)
            months = months_in_effect(s, load_id)
    except FxFileError as e:
        raise UserError(str(e), "fix that line of the file and load it again (nothing was loaded)") from None
    if months:
        table = Table(title=f"Monthly rates to {settings.reporting_currency} now in effect")
        for name in ("month", "currency", "rate", "days"):
            table.add_column(name, justify="right" if name in ("rate", "days") else "left")
        for row in months:
            table.add_row(*(str(v) for v in row))
        console.print(table)
    skipped = f"; left out {', '.join(parsed.skipped_currencies)}" if parsed.skipped_currencies else ""
    err.print(
        f"Loaded {len(parsed.rates):,} daily rates ({parsed.format}) from {file} (load {load_id[:12]}){skipped}. "
        "Days built before keep the rate they were built with: rebuild them with mm materialize --from … --to …"
    )


@spend_app.command("load")
def spend_load(
    file: Annotated[Path, typer.Argument(help="CSV with header date,channel,campaign_id,amount,currency.")],
) -> None:
    """Load an ad spend report into raw.ad_spend (a restated report is loaded again: the latest wins)."""
    from mm_pipelines.events.spend import SpendFileError, load_spend_file

    if not file.exists():
        raise UserError(f"{file}: no such file", "give the path of a spend CSV")
    platform = open_platform()
    try:
        with platform.warehouse.session() as s:
            load_id, rows = load_spend_file(s, file, platform.objects)
    except SpendFileError as e:
        raise UserError(str(e), "fix that line of the report and load it again (nothing was loaded)") from None
    err.print(f"Loaded {rows:,} spend rows from {file} (load {load_id[:12]}); rebuild with: mm materialize")


METRICS = {"revenue": "attributed revenue", "conversions": "attributed conversions", "roas": "ROAS (revenue / spend)"}


def _compare_rows(settings: Settings, first: date, last: date, by: str) -> list[tuple]:
    from mm_pipelines.stores.clickhouse import Warehouse

    column = {"channel": "channel", "campaign": "campaign_id"}[by]
    return Warehouse(settings.clickhouse_url).query_rows(
        f"""SELECT {column}, model, sum(conversions), sum(revenue), sum(spend), any(currency)
        FROM marts.attribution_daily WHERE date BETWEEN {{first:Date}} AND {{last:Date}}
        GROUP BY {column}, model ORDER BY {column}, model""",
        {"first": first, "last": last},
    )


def _compare_table(settings: Settings, first: date, last: date, by: str, metric: str = "revenue") -> Table:
    cells: dict[str, dict[str, tuple]] = {}
    spend: dict[str, Decimal] = {}
    currency = "USD"
    for key, model, conv, rev, sp, cur in _compare_rows(settings, first, last, by):
        cells.setdefault(key, {})[model] = (conv, rev)
        spend[key] = sp  # the same under every model
        currency = cur or currency

    def show(conv: Decimal, rev: Decimal, sp: Decimal) -> str:
        if metric == "conversions":
            return f"{conv:,.1f}"
        if metric == "roas":
            return f"{rev / sp:,.2f}" if sp else "–"
        return f"{rev:,.0f}"

    unit = f" ({currency})" if metric == "revenue" else ""
    table = Table(title=f"{METRICS[metric].capitalize()}{unit} by {by}, {first} … {last} (marts.attribution_daily)")
    table.add_column(by, no_wrap=True)
    for model in MODELS:
        table.add_column(model.replace("_", " "), justify="right")
    table.add_column(f"spend ({currency})", justify="right")
    totals = {m: [Decimal(0), Decimal(0)] for m in MODELS}
    for key in sorted(cells, key=lambda k: (-max((v[1] for v in cells[k].values()), default=0), k)):
        row = []
        for model in MODELS:
            conv, rev = cells[key].get(model, (Decimal(0), Decimal(0)))
            totals[model][0] += conv
            totals[model][1] += rev
            row.append(show(conv, rev, spend.get(key, Decimal(0))))
        table.add_row(key, *row, f"{spend.get(key, 0):,.0f}")
    table.add_section()
    all_spend = sum(spend.values(), Decimal(0))
    table.add_row("total", *(show(*totals[m], all_spend) for m in MODELS), f"{all_spend:,.0f}", style="bold")
    return table


@attribution_app.command("compare")
def attribution_compare(
    from_: Annotated[str, typer.Option("--from", help="First conversion day (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last conversion day (YYYY-MM-DD).")],
    by: Annotated[str, typer.Option("--by", help="channel or campaign.")] = "channel",
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="revenue, conversions or roas (table format).")
    ] = "revenue",
    format: Annotated[
        str, typer.Option("--format", "-f", help="table, csv or json (csv and json carry every metric).")
    ] = "table",
) -> None:
    """Every attribution model side by side: attributed revenue, conversions or ROAS per channel or campaign."""
    if by not in ("channel", "campaign"):
        raise UserError(f"--by {by!r} is not supported", "use --by channel or --by campaign")
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r} is not supported", "use --metric revenue, conversions or roas")
    if format not in ("table", "csv", "json"):
        raise UserError(f"--format {format!r} is not supported", "use --format table, csv or json")
    first, last = _date_range(from_, to)
    settings = Settings.from_env()
    if format == "table":
        console.print(_compare_table(settings, first, last, by, metric))
        return
    records = [
        {by: k, "model": m, "conversions": str(c), "revenue": str(r), "spend": str(sp)}
        for k, m, c, r, sp, _ in _compare_rows(settings, first, last, by)
    ]
    if format == "json":
        print(json.dumps(records, indent=2))
    else:
        w = csv.DictWriter(sys.stdout, fieldnames=[by, "model", "conversions", "revenue", "spend"])
        w.writeheader()
        w.writerows(records)


def main() -> None:
    import click

    from mm_pipelines.stores.bus import EventBusError
    from mm_pipelines.stores.clickhouse import WarehouseLockTimeout, WarehouseUnavailable

    # clickhouse-connect logs each failed request before raising it; the error below says it once.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    # Dagster flags single-run backfill policies as beta on every load; the CLI shows errors, not notices.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    try:
        code = app(standalone_mode=False)
    except (click.ClickException, typer.TyperException) as e:
        # Usage errors name the bad argument or option. Typer 0.2x raises its own copy of click's exceptions.
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except UserError as e:
        say(f"[red]error:[/red] {e}" + (f"\n  fix: {e.hint}" if e.hint else ""), to=err)
        sys.exit(1)
    except ConfigError as e:
        say(f"[red]configuration error:[/red] {e}", to=err)
        sys.exit(1)
    except (EventBusError, WarehouseLockTimeout, WarehouseUnavailable) as e:
        say(f"[red]error:[/red] {e}", to=err)
        sys.exit(1)
    except Exception as e:
        # A database error on user SQL is the user's to fix: one line, not a traceback.
        if type(e).__module__.startswith("clickhouse_connect"):
            from clickhouse_connect.driver.exceptions import OperationalError

            first = str(e).strip().splitlines()[0]
            hint = (
                "the server stopped answering: check that ClickHouse is up and MM_CLICKHOUSE_URL"
                if isinstance(e, OperationalError)
                else 'check the SQL and table names (mm sql "SHOW TABLES FROM marts")'
            )
            err.print(f"[red]ClickHouse error:[/red] {first}\n  fix: {hint}")
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)

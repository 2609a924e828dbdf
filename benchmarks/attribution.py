"""Attribution at scale on the embedded platform (chDB), with Spark and pandas in the same run.

    .venv/bin/python benchmarks/attribution.py [--events 10000000] [--users 1000000] [--conversions 500000]
        [--days 60] [--repeat 1] [--skip-spark] [--skip-pandas] [--home DIR]

1. A fresh platform home; the dataset is generated inside ClickHouse by one INSERT … SELECT FROM numbers(N),
   pseudo-random from hashes of the row number (the same arguments always give the same rows).
2. The production path, timed stage by stage (docs/attribution.md), as Dagster's ops split it: (a) dbt build of
   the unpartitioned models (seeds, spend, sales), (b) the daily event models (staging, conversion paths and
   journeys, campaign performance), (c) the data-driven fit in Python, (d) the daily attribution marts.
   Each dbt command gets the run's values as environment variables and starts from the saved parse, as in a
   Dagster run (mm_pipelines.assets.dbt.run_env, dbt_command).
   One build varies by several seconds on a 2-core machine: --repeat N builds N times on the same events
   (dropping the models in between) and shows the median build, with every build's total.
3. Spark: raw.events exported to the Parquet archive layout, then the rule-based backfill over the whole range.
4. pandas: the six rule-based models as an analyst would write them (benchmarks/attribution_pandas.py).

Peak RSS: a subprocess's own peak (wait4); for in-process stages and the Spark JVM the kernel's peak RSS
(VmHWM) is reset before the stage, so each figure belongs to its stage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()

# The last day is fixed, so a run is reproducible; the fx_rates seed covers 2026-09 … 2026-12.
END = date(2026, 11, 21)  # exclusive
FX_FIRST = date(2026, 9, 1)
GOAL_S = 60.0
# Each user is active over a window of this many days: paths get several touches, as real journeys do.
ACTIVE_DAYS = 14
# Event share per channel (percent): impressions come from paid media; clicks and visits from every channel.
IMPRESSION_CHANNELS = {
    "display": 30,
    "paid_social": 25,
    "video": 15,
    "paid_search": 12,
    "ctv": 8,
    "email": 6,
    "affiliate": 4,
}
CLICK_CHANNELS = {
    "paid_search": 28,
    "organic_search": 18,
    "direct": 14,
    "paid_social": 12,
    "email": 8,
    "display": 5,
    "affiliate": 5,
    "referral": 4,
    "video": 3,
    "ctv": 3,
}
UNPAID = ("organic_search", "direct", "referral")
CAMPAIGNS, CREATIVES, ASSETS = 8, 4, 200
CURRENCIES = {"USD": 80, "EUR": 12, "GBP": 8}
PANDAS_TIMEOUT_S = 600
PANDAS_SAMPLE = 10  # the fallback runs on 1/PANDAS_SAMPLE of the users
# What a build creates (raw.events stays): dropped between repeated builds.
MODEL_DATABASES = ("staging", "intermediate", "marts", "reference")


@dataclass
class Stage:
    name: str
    seconds: float
    peak_mb: float | None = None
    rows: str = ""


def _pick(weights: dict[str, int], key: str) -> str:
    """SQL: one of `weights`' names, chosen by a hash of the row number (weights are percentages)."""
    assert sum(weights.values()) == 100
    names = ", ".join(f"'{k}'" for k in weights)
    bounds, acc = [], 0
    for w in weights.values():
        acc += w
        bounds.append(str(acc))
    return f"[{names}][arrayFirstIndex(x -> sipHash64(number, '{key}') % 100 < x, [{', '.join(bounds)}])]"


def generation_sql(events: int, users: int, conversions: int, first: date, days: int) -> str:
    """One INSERT … SELECT: conversions are rows < `conversions`, the rest impressions (75% of all) and clicks.

    Users are skewed (user = users × u^1.5 for uniform u: low ids are the heavy users); each user's events fall
    in an ACTIVE_DAYS window that starts on a day chosen by the user's hash.
    """
    from mm_pipelines.config import EVENTS_TOPIC
    from mm_pipelines.events.event_schema import SCHEMA_VERSION

    active = min(ACTIVE_DAYS, days)
    impression_ppm = min(1_000_000, round(0.75 * events / max(1, events - conversions) * 1_000_000))
    unpaid = ", ".join(f"'{c}'" for c in UNPAID)
    conversion = "event_type = 'conversion'"
    return f"""
    INSERT INTO raw.events
    SELECT
        lower(hex(sipHash128(number, 'event'))) AS event_id,
        multiIf(number < {conversions}, 'conversion',
                sipHash64(number, 'type') % 1000000 < {impression_ppm}, 'impression', 'click') AS event_type,
        addMilliseconds(toDateTime64('{first.isoformat()} 00:00:00', 3, 'UTC'),
            (sipHash64(user_n, 'active') % {days - active + 1}) * 86400000
            + sipHash64(number, 'at') % {active * 86_400_000}) AS occurred_at,
        concat('u-', leftPad(toString(user_n), 8, '0')) AS user_id,
        if(event_type = 'impression', {_pick(IMPRESSION_CHANNELS, "impression_channel")},
           {_pick(CLICK_CHANNELS, "click_channel")}) AS channel,
        if(channel IN ({unpaid}), concat(channel, '-none'),
           concat(channel, '-cmp-', toString(sipHash64(number, 'campaign') % {CAMPAIGNS}))) AS campaign_id,
        if(channel IN ({unpaid}), 'none',
           concat(campaign_id, '-cr-', toString(sipHash64(number, 'creative') % {CREATIVES}))) AS creative_id,
        if(channel IN ({unpaid}), '',
           concat('asset-', leftPad(toString(cityHash64(creative_id) % {ASSETS}), 4, '0'))) AS asset_id,
        if({conversion}, concat('ord-', lower(hex(sipHash64(number, 'order')))), NULL) AS order_id,
        if({conversion}, toDecimal128(499 + sipHash64(number, 'revenue') % 19500, 10) / 100, NULL) AS revenue,
        if({conversion}, {_pick(CURRENCIES, "currency")}, NULL) AS currency,
        if({conversion}, concat('sku-', leftPad(toString(sipHash64(number, 'sku') % 40), 3, '0')), NULL) AS sku,
        {SCHEMA_VERSION} AS schema_version,
        map('device', ['desktop', 'mobile', 'tablet'][1 + sipHash64(number, 'device') % 3]) AS extra,
        '{EVENTS_TOPIC}' AS topic,
        cityHash64(user_id) % 4 AS partition,
        number AS offset,
        addMilliseconds(occurred_at, 200 + sipHash64(number, 'lag') % 5000) AS ingested_at
    FROM (
        SELECT number,
               toUInt64(pow(sipHash64(number, 'user') / 18446744073709551616., 1.5) * {users}) % {users} AS user_n
        FROM numbers({events})
    )"""


def _status_mb(field: str, pid: int | str = "self") -> float:
    """VmHWM (peak RSS since start or the last reset) or VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int | str = "self") -> None:
    """Start a new peak-RSS measurement for the process (Linux: '5' to clear_refs resets VmHWM)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def run_child(
    cmd: list[str],
    out: Path,
    err: Path | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
) -> tuple[float, int, float, bool]:
    """Run a command, stdout to `out` (stderr too unless `err`); (seconds, exit code, its peak RSS MB, timed out).

    os.wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the maximum over every child so far.
    """
    t0 = time.perf_counter()
    with out.open("wb") as stdout:
        if err is None:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, env=env)
        else:
            with err.open("wb") as stderr:
                proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=stderr, env=env)
    timer = threading.Timer(timeout_s, proc.kill) if timeout_s else None
    if timer:
        timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    timed_out = timer is not None and not timer.is_alive()
    if timer:
        timer.cancel()
    return time.perf_counter() - t0, proc.returncode, usage.ru_maxrss / 1024, timed_out


def dbt_build(home: Path, step: str, args: list[str], run_env: dict[str, str]) -> tuple[float, float, list[dict]]:
    """One `mm-dbt build` as Dagster runs it, the run's values in its environment; (seconds, peak RSS MB, node
    results). Fails loudly."""
    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.resources import mm_dbt_executable

    project = dbt_project_dir()
    target = home / "dbt-target"
    log = home / "logs" / f"dbt-{step}.log"
    cmd = [
        mm_dbt_executable(),
        "build",
        *args,
        "--profiles-dir",
        str(project),
        "--target-path",
        str(target),
        "--log-path",
        str(home / "dbt-logs"),
    ]
    seconds, code, peak_mb, _ = run_child(cmd, log, cwd=project, env={**os.environ, **run_env})
    if code:
        console.print(log.read_text(), markup=False, highlight=False)
        raise SystemExit(f"dbt step ({step}) failed with exit code {code}: {' '.join(cmd)}")
    return seconds, peak_mb, json.loads((target / "run_results.json").read_text())["results"]


def spark_stages(home: Path, config, first: date, end: date, memory: str) -> tuple[list[Stage], int]:
    """JVM start-up, then the rule-based backfill over [first, end); the JVM's peak RSS per stage."""
    from pyspark import SparkContext

    from mm_pipelines.attribution.spark_backfill import run_backfill, spark_session
    from mm_pipelines.config import dbt_project_dir

    # Spark's default 1 GB driver would spill the whole shuffle to disk: give it what the machine has.
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {memory} pyspark-shell")
    t0 = time.perf_counter()
    spark = spark_session()
    jvm = spark._jvm.java.lang.ProcessHandle.current().pid()
    start_s = time.perf_counter() - t0
    start_mb = _status_mb("VmHWM", jvm)
    reset_peak(jvm)
    t0 = time.perf_counter()
    rows = run_backfill(
        home / "objects",
        dbt_project_dir() / "seeds" / "fx_rates.csv",
        config,
        first,
        end - timedelta(days=1),
        home / "spark-out",
    )
    backfill_s = time.perf_counter() - t0
    backfill_mb = _status_mb("VmHWM", jvm)
    spark.stop()
    # stop() leaves the JVM (and its heap) alive until Python exits; pandas should not run beside it.
    gateway = SparkContext._gateway
    gateway.shutdown()
    gateway.proc.stdin.close()  # the gateway JVM exits at EOF on its stdin
    gateway.proc.wait()
    SparkContext._gateway = SparkContext._jvm = None
    return [
        Stage("spark: JVM start-up", start_s, start_mb),
        Stage(f"spark: rule-based backfill (6 models, driver {memory})", backfill_s, backfill_mb, f"{rows:,} credits"),
    ], rows


def pandas_run(home: Path, url: str) -> tuple[dict, int, str]:
    """The pandas baseline in a child process; at 1/PANDAS_SAMPLE of the users if the full size fails.

    Returns its figures, the sample it ran at and why the full size failed ("" if it did not)."""
    script = Path(__file__).with_name("attribution_pandas.py")
    failure = ""
    for sample in (1, PANDAS_SAMPLE):
        out, err = home / "logs" / f"pandas-1-in-{sample}.json", home / "logs" / f"pandas-1-in-{sample}.err"
        _, code, peak_mb, timed_out = run_child(
            [sys.executable, str(script), url, "--sample", str(sample)], out, err, timeout_s=PANDAS_TIMEOUT_S
        )
        if code == 0:
            return json.loads(out.read_text()), sample, failure
        failure = (
            f"timed out after {PANDAS_TIMEOUT_S} s"
            if timed_out
            else f"killed by signal {-code} (out of memory?) at {peak_mb:,.0f} MB"
            if code < 0
            else f"failed with exit code {code}"
        )
        console.print(f"[yellow]pandas at 1/{sample} of the users {failure}:[/yellow]")
        console.print(err.read_text()[-3000:], markup=False, highlight=False)
    raise SystemExit("pandas failed at the reduced size too")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="build the models this many times on the same events; the median build is shown",
    )
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--spark-memory", default="8g", help="Spark driver memory (local mode: all of Spark)")
    parser.add_argument(
        "--home",
        type=Path,
        help="a new or empty folder for the platform home (default: a temporary one, removed after)",
    )
    args = parser.parse_args()

    if args.home:
        if args.home.exists() and any(args.home.iterdir()):
            raise SystemExit(f"--home {args.home} is not empty: the benchmark needs a fresh platform home")
        home = args.home.resolve()
    else:
        home = Path(tempfile.mkdtemp(prefix="mm-attribution-bench-"))
    # As in a Dagster run: dbt starts
    # from the project's saved parse (dagster-dbt copies it into each invocation's target folder).
    from mm_pipelines.assets.dbt import mm_dbt_project

    project = mm_dbt_project()
    saved_parse = Path(project.project_dir) / project.target_path / "partial_parse.msgpack"
    (home / "dbt-target").mkdir(parents=True)
    shutil.copy(saved_parse, home / "dbt-target")
    try:
        run(args, home)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)


def build_models(home: Path, warehouse, config, first: date) -> tuple[list[Stage], list[tuple[str, str, float]]]:
    """The production path once, from raw.events: stages (a) … (d) and the dbt nodes' execution times."""
    from mm_pipelines.assets.attribution import refit

    dbt_nodes: list[tuple[str, str, float]] = []

    from mm_pipelines.assets.dbt import ATTRIBUTION_MART_MODELS, EVENT_DAY_MODELS, run_env

    def dbt_stage(step: str, label: str, build_args: list[str], env: dict[str, str]) -> Stage:
        with console.status(f"dbt ({step}) {label}…"):
            seconds, peak_mb, results = dbt_build(home, step, build_args, env)
        dbt_nodes.extend((step, r["unique_id"], r["execution_time"]) for r in results)
        in_nodes = sum(r["execution_time"] for r in results)
        return Stage(
            f"({step}) dbt build {label}", seconds, peak_mb, f"{len(results)} nodes, {in_nodes:.1f} s in nodes"
        )

    # Royalty models are monthly and read the credits; they are not part of attribution.
    stages = [
        dbt_stage("a", "--exclude tag:daily tag:royalty", ["--exclude", "tag:daily", "tag:royalty"], run_env()),
        dbt_stage(
            "b",
            "staging + paths + journeys + campaign performance",
            ["--select", *EVENT_DAY_MODELS.split()],
            run_env(days=(first, END)),
        ),
    ]
    with console.status("(c) data-driven fit (Markov, Shapley) in Python…"):
        reset_peak()
        t0 = time.perf_counter()
        with warehouse.session() as s:
            fit_rows = refit(s, first, END, config)
        stages.append(
            Stage(
                "(c) data-driven fit, in-process refit()",
                time.perf_counter() - t0,
                _status_mb("VmHWM"),
                f"{len(fit_rows):,} fit rows",
            )
        )
    stages.append(
        dbt_stage(
            "d",
            "credits + daily + data-driven marts",
            ["--select", *ATTRIBUTION_MART_MODELS.split()],
            run_env(days=(first, END)),
        )
    )
    return stages, dbt_nodes


def run(args: argparse.Namespace, home: Path) -> None:
    first = END - timedelta(days=args.days)
    if first < FX_FIRST:
        console.print(
            f"[yellow]--days {args.days} starts on {first}, before the fx_rates seed: "
            "those conversions get revenue 0[/yellow]"
        )
    url = f"chdb://{home / 'warehouse'}"
    os.environ["MM_HOME"] = str(home)
    os.environ["MM_CLICKHOUSE_URL"] = url
    (home / "logs").mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    from mm_pipelines.attribution.config import RULE_MODELS, AttributionConfig
    from mm_pipelines.stores.clickhouse import Warehouse
    from mm_pipelines.stores.warehouse_tables import ensure_tables

    warehouse = Warehouse(url)
    config = AttributionConfig.from_env()
    stages: list[Stage] = []

    with console.status(f"Generating {args.events:,} events in ClickHouse…"):
        reset_peak()
        t0 = time.perf_counter()
        with warehouse.session() as s:
            ensure_tables(s)
            s.command(
                generation_sql(args.events, args.users, args.conversions, first, args.days),
                settings={"max_partitions_per_insert_block": 0},
            )
            n_events, n_users, n_conv = s.query_rows(
                "SELECT count(), uniqExact(user_id), countIf(event_type = 'conversion') FROM raw.events"
            )[0]
        stages.append(
            Stage(
                "generate raw.events (INSERT … SELECT FROM numbers)",
                time.perf_counter() - t0,
                _status_mb("VmHWM"),
                f"{n_events:,} events, {n_users:,} users",
            )
        )

    builds = []
    for i in range(args.repeat):
        if i:
            with console.status("Dropping the models for the next build…"), warehouse.session() as s:
                for database in MODEL_DATABASES:
                    s.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        builds.append(build_models(home, warehouse, config, first))
    totals = [sum(st.seconds for st in build) for build, _ in builds]
    # The build with the median total is the one shown (the lower middle one for an even count).
    shown, dbt_nodes = builds[sorted(range(len(totals)), key=totals.__getitem__)[(len(totals) - 1) // 2]]
    stages += shown
    a, b, c, d = stages[1:5]
    with warehouse.session() as s:
        conversions, paths, journeys = s.query_rows(
            "SELECT (SELECT count() FROM intermediate.int_conversions), "
            "(SELECT count() FROM intermediate.int_conversion_paths), "
            "(SELECT count() FROM intermediate.int_attribution_journeys)"
        )[0]
        credits, rule_rows, models, unattributed, avg_touches = s.query_rows(
            f"SELECT count(), countIf(model IN {tuple(RULE_MODELS)}), uniqExact(model), "
            "uniqExactIf(conversion_id, channel = 'unattributed'), "
            "avgIf(touch_count, model = 'linear' AND touch_index <= 1) "
            "FROM marts.attribution_credits"
        )[0]
        daily = s.query_rows("SELECT count() FROM marts.attribution_daily")[0][0]
    b.rows += f": {paths:,} paths, {journeys:,} journey rows"
    d.rows += f": {credits:,} credits, {daily:,} daily rows"
    dbt_total = a.seconds + b.seconds + c.seconds + d.seconds
    stages.append(
        Stage(
            "all models and marts (a+b+c+d)",
            dbt_total,
            max(x.peak_mb for x in (a, b, c, d)),
            f"{conversions:,} conversions × {models} models",
        )
    )
    dbt_daily = b.seconds + d.seconds
    comparison = [
        ("dbt on chDB", "all models and marts (a+b+c+d)", dbt_total, None),
        ("dbt on chDB", "daily paths + marts (b+d), 8 models", dbt_daily, None),
    ]
    checks = [
        f"{unattributed:,} of {conversions:,} conversions unattributed; {avg_touches:.2f} touches per attributed path"
    ]

    if not args.skip_spark:
        with console.status("Exporting raw.events to the Parquet archive…"):
            archive = home / "objects" / "raw" / "events"
            reset_peak()
            t0 = time.perf_counter()
            with warehouse.session() as s:
                s.command(
                    f"INSERT INTO FUNCTION file('{archive}/date={{_partition_id}}/part.parquet', Parquet) "
                    "PARTITION BY toDate(occurred_at) SELECT * FROM raw.events"
                )
            files = len(list(archive.glob("date=*/*.parquet")))
            stages.append(
                Stage(
                    "spark: export raw.events → Parquet archive (chDB)",
                    time.perf_counter() - t0,
                    _status_mb("VmHWM"),
                    f"{files} daily files",
                )
            )
        with console.status("Spark: JVM start-up and rule-based backfill…"):
            spark, spark_rows = spark_stages(home, config, first, END, args.spark_memory)
        stages += spark
        comparison.append(
            ("Spark (local, 2 cores)", "rule-based backfill, 6 models", spark[1].seconds, spark[1].seconds)
        )
        checks.append(
            f"Spark credits rows {'=' if spark_rows == rule_rows else '≠'} dbt's rule-based rows "
            f"({spark_rows:,} vs {rule_rows:,})"
        )

    if not args.skip_pandas:
        with console.status("pandas: read raw.events and compute the six rule-based models…"):
            result, sample, failure = pandas_run(home, url)
        scale = sample  # linear extrapolation from 1/sample of the users
        label = "" if sample == 1 else f" [1/{sample} of users, ×{sample} extrapolated: full size {failure}]"
        stages.append(
            Stage(
                f"pandas: read raw.events into a DataFrame{label}",
                result["read_s"],
                result["rss_after_read_mb"],
                f"{result['events']:,} events",
            )
        )
        stages.append(
            Stage(
                f"pandas: 6 rule-based models{label}",
                result["compute_s"],
                result["peak_compute_mb"],
                f"{result['rows']:,} credits",
            )
        )
        comparison.append(
            (
                f"pandas{' (extrapolated)' if sample > 1 else ''}",
                "rule-based, 6 models (compute only)",
                result["compute_s"] * scale,
                result["compute_s"] * scale,
            )
        )
        comparison.append(
            (
                f"pandas{' (extrapolated)' if sample > 1 else ''}",
                "rule-based, 6 models (read + compute)",
                (result["read_s"] + result["compute_s"]) * scale,
                (result["read_s"] + result["compute_s"]) * scale,
            )
        )
        if sample == 1:
            with warehouse.session() as s:
                dbt_totals = {
                    (m, ch): float(v)
                    for m, ch, v in s.query_rows(
                        "SELECT model, channel, sum(credit_share) FROM marts.attribution_credits "
                        f"WHERE model IN {tuple(RULE_MODELS)} GROUP BY model, channel"
                    )
                }
            pandas_totals = {(m, ch): v for m, ch, v, _ in result["totals"]}
            diff = max(
                abs(dbt_totals.get(k, 0.0) - pandas_totals.get(k, 0.0))
                for k in dbt_totals.keys() | pandas_totals.keys()
            )
            checks.append(
                f"pandas vs dbt: max |Δ conversions| per model × channel = {diff:.2e}; "
                f"rows {result['rows']:,} vs {rule_rows:,}"
            )

    print_tables(args, stages, comparison, dbt_total, dbt_daily, checks, dbt_nodes, load_before, totals)


def print_tables(args, stages, comparison, dbt_total, dbt_daily, checks, dbt_nodes, load_before, totals) -> None:
    load_after = os.getloadavg()
    title = (
        f"Attribution at scale, embedded (chDB): {args.events:,} events, {args.users:,} users, "
        f"{args.conversions:,} conversions, {args.days} days; {os.cpu_count()} cores"
    )
    table = Table(title=title, caption=f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    for col, justify in (("stage", "left"), ("seconds", "right"), ("peak RSS MB", "right"), ("rows", "left")):
        table.add_column(col, justify=justify)
    for st in stages:
        style = "bold" if st.name.startswith("all models") else None
        table.add_row(
            st.name, f"{st.seconds:.1f}", f"{st.peak_mb:,.0f}" if st.peak_mb is not None else "", st.rows, style=style
        )
    console.print(table)
    verdict = "meets" if dbt_total <= GOAL_S else "misses"
    console.print(f"All models and marts: {dbt_total:.1f} s — {verdict} the {GOAL_S:.0f} s goal.")
    if len(totals) > 1:
        console.print(f"Builds on the same events: {', '.join(f'{t:.1f}' for t in totals)} s (median shown above).")

    cmp = Table(title="Engines on the same data")
    for col, justify in (
        ("engine", "left"),
        ("workload", "left"),
        ("seconds", "right"),
        ("÷ dbt (b+d)", "right"),
        ("÷ dbt total", "right"),
    ):
        cmp.add_column(col, justify=justify)
    for engine, workload, seconds, ratio_basis in comparison:
        ratios = (
            ("", "") if ratio_basis is None else (f"{ratio_basis / dbt_daily:.2f}×", f"{ratio_basis / dbt_total:.2f}×")
        )
        cmp.add_row(engine, workload, f"{seconds:.1f}", *ratios)
    console.print(cmp)

    slow = Table(title="Slowest dbt nodes (execution time, s)")
    for col, justify in (("step", "left"), ("node", "left"), ("seconds", "right")):
        slow.add_column(col, justify=justify)
    for step, node, seconds in sorted(dbt_nodes, key=lambda n: -n[2])[:8]:
        slow.add_row(step, node, f"{seconds:.1f}")
    console.print(slow)
    for line in checks:
        console.print(f"• {line}")


if __name__ == "__main__":
    sys.exit(main())

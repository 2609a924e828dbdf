"""Rule-based attribution backfill on Spark, from the Parquet event archive (docs/attribution.md).

The result must be identical to dbt on ClickHouse and to the Python reference, so every step follows the
spec's order of Float64 operations and integer allocation. A conversion's path is an array: eligible
touches are joined on user, collected and sorted, then transformed, weighted and allocated with
higher-order functions (no Python UDFs), one row per (conversion, model) until the final explode.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mm_pipelines.attribution.config import DIRECT, RULE_MODELS, SHARE_UNITS, UNATTRIBUTED, AttributionConfig

EVENTS_DIR = "raw/events"

RAW_EVENTS_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("occurred_at", T.TimestampType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("channel", T.StringType()),
        T.StructField("campaign_id", T.StringType()),
        T.StructField("creative_id", T.StringType()),
        T.StructField("asset_id", T.StringType()),
        T.StructField("order_id", T.StringType()),
        T.StructField("revenue", T.DecimalType(38, 10)),
        T.StructField("currency", T.StringType()),
        T.StructField("sku", T.StringType()),
        T.StructField("schema_version", T.IntegerType()),
        T.StructField("extra", T.MapType(T.StringType(), T.StringType())),
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.LongType()),
        T.StructField("offset", T.DecimalType(20, 0)),
        T.StructField("ingested_at", T.TimestampType()),
    ]
)

FX_SCHEMA = T.StructType(
    [
        T.StructField("currency", T.StringType()),
        T.StructField("month", T.DateType()),
        T.StructField("rate_to_reporting", T.DecimalType(38, 10)),
    ]
)

TOUCH_FIELDS = ("touch_id", "touch_at", "touch_type", "channel", "campaign_id", "creative_id", "asset_id")

# Path transforms on the array column `path`; each sees the path as the previous one left it.
TRANSFORM_SQL = {
    "collapse_repeats": "filter(path, (t, i) -> i = 0 OR NOT (t.channel <=> get(path, i - 1).channel))",
    "first_occurrence": "filter(path, (t, i) -> array_position(transform(path, u -> u.channel), t.channel) = i + 1)",
    "drop_direct": f"IF(forall(path, t -> t.channel = '{DIRECT}'), path, filter(path, t -> t.channel <> '{DIRECT}'))",
    "drop_trailing_direct": (
        f"IF(array_position(reverse(transform(path, t -> t.channel <> '{DIRECT}')), true) = 0, path, "
        "slice(path, 1, size(path) - "
        f"array_position(reverse(transform(path, t -> t.channel <> '{DIRECT}')), true) + 1))"
    ),
}


def spark_session(app_name: str = "mm-attribution-backfill") -> SparkSession:
    """A local session (or the active one) set up so results do not depend on the machine's time zone."""
    spark = SparkSession.getActiveSession()
    if spark is None:
        spark = (
            SparkSession.builder.master("local[*]")
            .appName(app_name)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
    for key, value in {
        "spark.sql.session.timeZone": "UTC",
        # overflow and bad casts fail the run instead of silently producing NULLs
        "spark.sql.ansi.enabled": "true",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
        "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    }.items():
        spark.conf.set(key, value)
    return spark


def read_archive(spark: SparkSession, root: str, first: date, last: date, lookback_days: int) -> DataFrame:
    """The archived events of the days a backfill of [first, last] can look back on."""
    base = Path(root) / EVENTS_DIR
    days = (
        first - timedelta(days=lookback_days) + timedelta(days=i)
        for i in range((last - first).days + lookback_days + 1)
    )
    paths = [str(p) for p in (base / f"date={d.isoformat()}" for d in days) if p.is_dir()]
    if not paths:
        return spark.createDataFrame([], RAW_EVENTS_SCHEMA)
    return spark.read.parquet(*paths)


def read_fx_rates(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.csv(str(path), header=True, schema=FX_SCHEMA)


def _double(x: float) -> str:
    """A Spark SQL double literal that parses back to exactly `x` (a bare 0.4 would be a decimal)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _lookback_ms(config: AttributionConfig) -> Column:
    """Per (channel, touch_type) lookback in ms, as config.lookback_days decides it."""
    ms = 86_400_000
    expr = F.when(F.col("touch_type") == "click", F.lit(config.click_lookback_days * ms)).otherwise(
        F.lit(config.impression_lookback_days * ms)
    )
    for (channel, touch_type), days in config.lookback_overrides.items():
        expr = F.when((F.col("channel") == channel) & (F.col("touch_type") == touch_type), F.lit(days * ms)).otherwise(
            expr
        )
    return expr.cast("bigint")


def _dedup(events: DataFrame) -> DataFrame:
    """One row per event_id: the first delivery."""
    order = Window.partitionBy("event_id").orderBy("ingested_at", "topic", "partition", "offset")
    return events.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def _conversions(events: DataFrame, fx_rates: DataFrame, first: date, last: date) -> DataFrame:
    """Conversions of [first, last] with revenue in integer reporting cents (exact decimal, half-even)."""
    conversions = events.where(F.col("event_type") == "conversion").withColumn(
        "conversion_date", F.to_date("occurred_at")
    )
    conversions = _dedup(conversions.where(F.col("conversion_date").between(F.lit(first), F.lit(last))))
    fx = fx_rates.select(
        F.col("currency").alias("fx_currency"),
        F.col("month").cast("date").alias("fx_month"),
        # (20,10) x (17,10) = (38,20): the product is exact before rounding to cents (Spark would round a
        # (38,10) x (38,10) product to 6 places, half-up); revenue >= 1e10 or a rate >= 1e7 fails the cast
        F.col("rate_to_reporting").cast("decimal(17,10)").alias("rate"),
    )
    joined = conversions.join(
        fx,
        (conversions["currency"] == fx["fx_currency"]) & (F.trunc("conversion_date", "month") == fx["fx_month"]),
        "left",
    )
    converted = F.bround(F.col("revenue").cast("decimal(20,10)") * F.col("rate"), 2)
    return joined.select(
        F.col("event_id").alias("conversion_id"),
        F.coalesce("order_id", F.lit("")).alias("order_id"),
        "user_id",
        F.col("occurred_at").alias("converted_at"),
        "conversion_date",
        F.unix_millis("occurred_at").alias("converted_ms"),
        F.coalesce((converted * 100).cast("bigint"), F.lit(0).cast("bigint")).alias("rc"),
    )


def _touches(events: DataFrame, config: AttributionConfig) -> DataFrame:
    touches = _dedup(events.where(F.col("event_type").isin("impression", "click"))).select(
        F.col("user_id").alias("touch_user_id"),
        F.col("event_id").alias("touch_id"),
        F.col("occurred_at").alias("touch_at"),
        F.unix_millis("occurred_at").alias("touch_ms"),
        F.col("event_type").alias("touch_type"),
        *(F.coalesce(c, F.lit("")).alias(c) for c in ("channel", "campaign_id", "creative_id", "asset_id")),
    )
    return touches.withColumn("lookback_ms", _lookback_ms(config))


def _paths(conversions: DataFrame, touches: DataFrame, config: AttributionConfig) -> DataFrame:
    """Each conversion with its path: eligible touches sorted by (touch_at, touch_id), then transformed."""
    eligible = (
        (conversions["user_id"] == touches["touch_user_id"])
        & (touches["touch_ms"] < conversions["converted_ms"])
        & (conversions["converted_ms"] - touches["touch_ms"] <= touches["lookback_ms"])
    )
    touch = F.when(
        F.col("touch_id").isNotNull(),
        F.struct(  # field order is the sort order
            "touch_at",
            "touch_id",
            "touch_type",
            "channel",
            "campaign_id",
            "creative_id",
            "asset_id",
            (F.col("converted_ms") - F.col("touch_ms")).alias("d_ms"),
        ),
    )
    paths = (
        conversions.join(touches, eligible, "left")
        .groupBy(*conversions.columns)
        .agg(F.array_sort(F.collect_list(touch)).alias("path"))
    )
    for name in config.path_transforms:
        paths = paths.withColumn("path", F.expr(TRANSFORM_SQL[name]))
    return paths


def _weights_sql(config: AttributionConfig) -> dict[str, str]:
    """Raw Float64 weights per model over `path` of `k` touches; `lnd` is the last non-direct index."""
    first, last = config.position_first_weight, config.position_last_weight
    # first = last = 0: all-zero weights, i.e. linear
    first2, last2 = (first / (first + last), last / (first + last)) if first + last else (0.0, 0.0)
    return {
        "first_touch": "transform(path, (t, i) -> IF(i = 0, 1D, 0D))",
        "last_touch": "transform(path, (t, i) -> IF(i = k - 1, 1D, 0D))",
        "last_non_direct": "transform(path, (t, i) -> IF(i = lnd, 1D, 0D))",
        "linear": "transform(path, t -> 1D)",
        "position_based": (
            "transform(path, (t, i) -> CASE WHEN k = 1 THEN 1D "
            f"WHEN k = 2 THEN IF(i = 0, {_double(first2)}, {_double(last2)}) "
            f"WHEN i = 0 THEN {_double(first)} WHEN i = k - 1 THEN {_double(last)} "
            f"ELSE {_double(1 - first - last)} / (k - 2) END)"
        ),
        "time_decay": f"transform(path, t -> pow(2D, -(t.d_ms / 1000D) / {_double(config.half_life_days * 86400)}))",
    }


def _plus_largest_remainders(base: str, remainders: str, spare: str) -> str:
    """`base` plus one for each of the `spare` largest `remainders`, ties to the lower index."""
    rank = f"size(filter({remainders}, (g, j) -> g > m OR (g = m AND j < i)))"
    return f"transform({remainders}, (m, i) -> {base}[i] + IF({rank} < {spare}, 1L, 0L))"


def _allocate(credits: DataFrame) -> DataFrame:
    """Integer share units (sum 1e9) and cents (sum rc) from the weights `w`, as the spec allocates them."""
    units = f"{SHARE_UNITS}L"
    steps = [
        ("w", "IF(aggregate(w, 0D, (a, x) -> a + x) = 0D, transform(w, x -> 1D), w)"),
        ("total", "aggregate(w, 0D, (a, x) -> a + x)"),
        ("raw", f"transform(w, x -> x / total * {SHARE_UNITS}D)"),
        ("units0", "transform(raw, x -> floor(x))"),
        ("frac", "transform(raw, x -> x - floor(x))"),
        ("spare_units", f"{units} - aggregate(units0, 0L, (a, x) -> a + x)"),
        ("units", _plus_largest_remainders("units0", "frac", "spare_units")),
        # rc * u overflows 64 bits from $92M on: split rc = q * 1e9 + r (floor semantics, 0 <= r < 1e9)
        ("r", f"pmod(rc, {units})"),
        ("q", f"(rc - r) div {units}"),
        ("cents0", f"transform(units, u -> q * u + (r * u) div {units})"),
        ("rem", f"transform(units, u -> (r * u) % {units})"),
        ("spare_cents", "rc - aggregate(cents0, 0L, (a, x) -> a + x)"),
        ("cents", _plus_largest_remainders("cents0", "rem", "spare_cents")),
    ]
    for name, sql in steps:
        credits = credits.withColumn(name, F.expr(sql))
    return credits


def rule_based_credits(
    spark: SparkSession, events: DataFrame, fx_rates: DataFrame, config: AttributionConfig, first: date, last: date
) -> DataFrame:
    """marts.attribution_credits rows of the RULE_MODELS for the conversions dated [first, last]."""
    paths = _paths(_conversions(events, fx_rates, first, last), _touches(events, config), config)
    # An empty path is credited as one synthetic touch of weight 1 in every model: the unattributed row.
    unattributed = (
        f"array(named_struct('touch_at', CAST(NULL AS TIMESTAMP), 'touch_id', '', 'touch_type', 'none', "
        f"'channel', '{UNATTRIBUTED}', 'campaign_id', '', 'creative_id', '', 'asset_id', '', 'd_ms', 0L))"
    )
    paths = (
        paths.withColumn("n", F.size("path"))
        .withColumn("path", F.expr(f"IF(n = 0, {unattributed}, path)"))
        .withColumn("k", F.size("path"))
        # the index of the last non-direct touch, else of the last touch
        .withColumn("from_end", F.expr(f"array_position(reverse(transform(path, t -> t.channel <> '{DIRECT}')), true)"))
        .withColumn("lnd", F.expr("IF(from_end = 0, k - 1, k - from_end)"))
    )
    weights = _weights_sql(config)
    per_model = ", ".join(f"named_struct('model', '{m}', 'w', {weights[m]})" for m in RULE_MODELS)
    credits = _allocate(paths.selectExpr("*", f"inline(array({per_model}))"))
    rows = credits.selectExpr(
        "*", "inline(transform(path, (t, i) -> struct(i AS i, t AS t, units[i] AS u, cents[i] AS c)))"
    ).where("u > 0")
    return rows.select(
        "conversion_id",
        "order_id",
        "user_id",
        "converted_at",
        "conversion_date",
        "model",
        F.expr("IF(n = 0, 0, i + 1)").cast("int").alias("touch_index"),
        F.col("n").cast("int").alias("touch_count"),
        *(F.col(f"t.{c}").alias(c) for c in TOUCH_FIELDS),
        F.expr(f"CAST(CAST(u AS DECIMAL(18, 0)) / {SHARE_UNITS} AS DECIMAL(18, 9))").alias("credit_share"),
        F.expr("CAST(CAST(rc AS DECIMAL(38, 0)) / 100 AS DECIMAL(38, 2))").alias("revenue"),
        F.expr("CAST(CAST(c AS DECIMAL(38, 0)) / 100 AS DECIMAL(38, 2))").alias("revenue_credit"),
        F.lit(config.reporting_currency).alias("currency"),
    )


def run_backfill(
    archive_root: Path, fx_csv: Path, config: AttributionConfig, first: date, last: date, out_dir: Path
) -> int:
    """Compute the credits of [first, last] from the archive into Parquet at out_dir; returns the row count."""
    spark = spark_session()
    events = read_archive(spark, str(archive_root), first, last, config.max_lookback_days)
    credits = rule_based_credits(spark, events, read_fx_rates(spark, fx_csv), config, first, last)
    credits.write.mode("overwrite").parquet(str(out_dir))
    return spark.read.parquet(str(out_dir)).count()

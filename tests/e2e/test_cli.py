"""The `mm` command line, end to end on the embedded platform."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import date
from decimal import Decimal

import psutil
import pytest
import requests

from mm_pipelines.assets.partitions import range_tags
from mm_pipelines.events.generator import generate_events, to_jsonl

from .conftest import MM

pytestmark = pytest.mark.e2e

MART_FINGERPRINT = (
    "SELECT count() AS n_rows, sum(impressions) AS n_impressions, sum(clicks) AS n_clicks, "
    "sum(conversions) AS n_conversions, toString(sum(revenue)) AS total_revenue, "
    "groupBitXor(cityHash64(event_date, channel, campaign_id, impressions, clicks, conversions, revenue)) AS checksum "
    "FROM marts.campaign_performance_daily"
)


def sql_json(mm, query):
    return json.loads(mm("sql", query, "--format", "json").stdout)


def test_demo_twice_gives_identical_numbers_and_no_duplicates(mm):
    first = mm("demo", "--events", "6000")
    assert "Campaign performance per channel" in first.stdout and "total" in first.stdout
    before = sql_json(mm, MART_FINGERPRINT)
    second = mm("demo", "--events", "6000")
    assert "already loaded" in second.stderr
    assert sql_json(mm, MART_FINGERPRINT) == before
    assert first.stdout.split("Campaign performance")[1] == second.stdout.split("Campaign performance")[1]
    counts = sql_json(
        mm,
        "SELECT (SELECT count() FROM raw.events) AS raw, (SELECT uniqExact(event_id) FROM raw.events) AS raw_ids, "
        "(SELECT count() FROM staging.stg_events) AS stg",
    )
    assert counts == [{"raw": counts[0]["raw_ids"], "raw_ids": counts[0]["raw_ids"], "stg": counts[0]["raw_ids"]}]
    assert before[0]["n_conversions"] > 0


def test_events_load_quarantines_bad_lines_and_is_idempotent(mm, tmp_path):
    good = list(to_jsonl(generate_events(events=200, seed=31)))
    lines = (
        good[:50]
        + [
            b"{broken json\n",
            b'{"event_id":"p1","event_type":"click","occurred_at":"2026-10-01T00:00:00Z","user_id":"x@y.io","channel":"email","campaign_id":"c","creative_id":"k"}\n',
            b"\n",
        ]
        + good[50:]
    )
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))
    result = mm("events", "load", str(path))
    assert "malformed JSON" in result.stderr and "PII: an e-mail address" in result.stderr
    assert "51" in result.stderr and "52" in result.stderr  # the bad lines' numbers
    dead = sql_json(mm, "SELECT file, line, error FROM raw.dead_letters ORDER BY line")
    assert dead == [
        {"file": str(path), "line": 51, "error": "malformed JSON: the message is not a JSON document"},
        {"file": str(path), "line": 52, "error": "PII: an e-mail address appears in field user_id"},
    ]
    again = mm("events", "load", str(path))
    assert "already loaded" in again.stderr
    strict_file = tmp_path / "strict.jsonl"
    strict_file.write_bytes(good[0] + b"not json\n")
    assert mm("events", "load", str(strict_file), "--strict", check=False).returncode == 1
    mm("materialize", "raw/events")
    assert sql_json(mm, "SELECT count() AS n FROM raw.events") == [{"n": len(good) + 1}]


def test_sql_formats_and_clear_errors(mm):
    csv_out = mm("sql", "SELECT 1 AS a, toDecimal128('2.50', 2) AS b", "--format", "csv").stdout
    assert csv_out.splitlines() == ["a,b", "1,2.50"]
    table = mm("sql", "SELECT 'x' AS col").stdout
    assert "col" in table and "x" in table
    # Read-only unless --write: a statement is refused before it runs, and the store refuses any query that writes.
    refused = mm("sql", "CREATE TABLE default.scratch (x UInt8) ENGINE = Memory", check=False)
    assert (
        refused.returncode == 1
        and "read-only" in refused.stderr
        and "--write" in refused.stderr
        and "Traceback" not in refused.stderr
    )
    assert "scratch" not in mm("sql", "SHOW TABLES FROM default").stdout
    # Statements return no rows: they say OK (an operator drops a table to rebuild it, for instance).
    assert (
        mm("sql", "--write", "CREATE TABLE default.scratch (x String) ENGINE = MergeTree ORDER BY x").stderr.strip()
        == "OK"
    )
    sneaky = mm("sql", "SELECT 1 SETTINGS readonly = 0", check=False)
    assert sneaky.returncode == 1 and "read-only" in sneaky.stderr
    # Bytes that are not UTF-8 (a dead letter as the producer sent it) are shown escaped, in every format.
    mm("sql", "--write", "INSERT INTO default.scratch SELECT unhex('ff7b7d')")
    assert "\\xff{}" in mm("sql", "SELECT x FROM default.scratch").stdout
    assert sql_json(mm, "SELECT x, [x] AS xs, map('k', x) AS m FROM default.scratch") == [
        {"x": "\\xff{}", "xs": ["\\xff{}"], "m": [["k", "\\xff{}"]]}
    ]
    assert mm("sql", "--format", "csv", "SELECT x FROM default.scratch").stdout.splitlines() == ["x", "\\xff{}"]
    assert mm("sql", "--write", "drop table default.scratch").stderr.strip() == "OK"
    assert "scratch" not in mm("sql", "SHOW TABLES FROM default").stdout
    bad = mm("sql", "SELECT * FROM nowhere.nothing", check=False)
    assert bad.returncode == 1 and "ClickHouse error" in bad.stderr and "Traceback" not in bad.stderr
    missing = mm("events", "load", "/no/such/file.jsonl", check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    wrong = subprocess.run(
        [MM, "config"], capture_output=True, text=True, env={**os.environ, "MM_EVENT_BUS": "amqp://x"}
    )
    assert wrong.returncode == 1 and "MM_EVENT_BUS" in wrong.stderr and "kafka://" in wrong.stderr
    # Usage errors name the option, without a traceback; SQL that starts with a comment follows `--`.
    usage = mm("sql", "--bogus", check=False)
    assert usage.returncode == 2 and "No such option: --bogus" in usage.stderr and "Traceback" not in usage.stderr
    assert "put -- before it" in mm("sql", "--help").stdout
    assert "42" in mm("sql", "--", "-- the answer\nSELECT 42 AS a").stdout


def test_docs_generate_the_catalog(mm):
    mm("demo", "--events", "2000")
    mm("docs", "--no-serve")
    from mm_pipelines.config import Settings

    catalog = json.loads((Settings.from_env().dbt_target_path / "catalog.json").read_text())
    assert "model.mm.campaign_performance_daily" in catalog["nodes"]
    columns = catalog["nodes"]["model.mm.campaign_performance_daily"]["columns"]
    assert columns["revenue"]["type"] == "Decimal(38, 2)"

    # `mm docs` serves until Ctrl-C, and Ctrl-C stops `dbt docs serve` with it.
    port = _free_port()
    proc = subprocess.Popen([MM, "docs", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(1)
        assert requests.get(f"http://127.0.0.1:{port}/catalog.json", timeout=5).status_code == 200
        assert_stops_everything(proc, signal.SIGINT)
    finally:
        kill_tree(proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: subprocess.Popen) -> None:
    """Whatever a failed test left running: the process and all its descendants, whatever their group."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=10)


def assert_stops_everything(proc: subprocess.Popen, signum: int) -> None:
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree, "the command started no server process"
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == 128 + signum
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, f"still running after {signal.Signals(signum).name} to mm: {[p.cmdline() for p in alive]}"


GRAPH_QUERY = """{
  assetNodes {
    assetKey { path }
    groupName
    assetMaterializations(limit: 1) { runId }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}"""


LAUNCH = """mutation($p: ExecutionParams!) {
  launchRun(executionParams: $p) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } }
}"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_dev_shows_the_asset_graph_with_materializations(mm, tmp_path):
    mm("demo", "--events", "2000")
    port = _free_port()
    # Output to a file: an undrained pipe fills up and blocks the webserver, daemon and run workers writing to it.
    log = tmp_path / "mm-dev.log"
    proc = subprocess.Popen(
        [MM, "dev", "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline:
            try:
                r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": GRAPH_QUERY}, timeout=10)
                data = r.json().get("data") if r.status_code == 200 else None
                if data and data.get("assetNodes"):
                    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, log.read_text()[-5000:]
            time.sleep(2)
        assert nodes, "the Dagster UI never served the asset graph"
        assert {"raw/events", "staging/stg_events", "marts/campaign_performance_daily"} <= set(nodes)
        assert nodes["marts/campaign_performance_daily"]["groupName"] == "marts"
        assert nodes["marts/campaign_performance_daily"]["assetMaterializations"], (
            "the demo's materialization is not shown"
        )
        checks = {c["name"] for c in nodes["marts/campaign_performance_daily"]["assetChecksOrError"]["checks"]}
        assert {"campaign_performance_expectations_check", "campaign_performance_reconciles_check"} <= checks
        # A run launched from the UI (run worker + multiprocess executor, not in-process) succeeds too.
        graphql = f"http://127.0.0.1:{port}/graphql"
        selector = {
            "repositoryLocationName": "mm_pipelines",
            "repositoryName": "__repository__",
            "jobName": "platform_job",
        }
        tags = [{"key": k, "value": v} for k, v in range_tags(date(2026, 10, 27), date(2026, 10, 28)).items()]
        params = {"selector": selector, "runConfigData": {}, "executionMetadata": {"tags": tags}}
        launched = requests.post(graphql, json={"query": LAUNCH, "variables": {"p": params}}, timeout=30).json()
        assert launched["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["data"]["launchRun"]["run"]["runId"]
        status, deadline = None, time.monotonic() + 600
        while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
            time.sleep(3)
            status = requests.post(graphql, json={"query": RUN_STATUS, "variables": {"id": run_id}}, timeout=30).json()[
                "data"
            ]["runOrError"]["status"]
        assert status == "SUCCESS"
        # SIGTERM to `mm dev` alone, as a service manager sends it, stops the webserver, the daemon and all
        # they started.
        assert_stops_everything(proc, signal.SIGTERM)
    finally:
        kill_tree(proc)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


ROYALTY_CATALOG = """
creators:
  - id: cr-1
    name: Creator One
    payees:
      - id: pe-a
        name: Payee A
        kyc: {{status: verified, evidence: "kyc://case/a"}}
        payout: {{method: sepa, currency: EUR, iban: DE89370400440532013000}}
      - id: pe-b
        name: Payee B
        kyc: {{status: verified, evidence: "kyc://case/b"}}
        payout: {{method: sepa, currency: EUR, iban: FR1420041010050500013M02606}}
contracts:
  - reference: CT-1
    creator: cr-1
    currency: USD
    effective_from: 2026-01-01
    expires_on: 2027-12-31
    payees: [{{payee: pe-a, share: 70}}, {{payee: pe-b, share: 30}}]
    rules:
      - {{id: book, sku: SKU-1, rate_percent: 10}}
      - {{id: video, asset: {asset}, base: attributed_revenue, attribution_model: linear, rate_percent: 20}}
"""


ROYALTY_CHECKSUM = (
    "SELECT * FROM (SELECT 'ledger' AS t, count() AS n, toString(sum(royalty_amount)) AS total, "
    "groupBitXor(cityHash64(idempotency_key, royalty_amount)) AS h "
    "FROM marts.royalty_ledger UNION ALL "
    "SELECT 'statements', count(), toString(sum(paid)), "
    "groupBitXor(cityHash64(period, payee_id, account_id, paid, carried_out)) "
    "FROM marts.royalty_statements UNION ALL "
    "SELECT 'sales', count(), toString(sum(net_amount)), groupBitXor(cityHash64(sale_id, revision)) "
    "FROM staging.stg_sales) ORDER BY t"
)


def test_royalties_from_sales_and_attribution_to_a_confirmed_payout(mm, tmp_path):
    """Sales → attribution → ledger → statements → batch → signed export → confirmation → balances, as users run it."""
    mm("demo", "--events", "6000")
    [top] = sql_json(
        mm,
        "SELECT asset_id, toString(sum(revenue_credit)) AS credit FROM marts.attribution_credits "
        "WHERE model = 'linear' AND asset_id != '' AND conversion_date < '2026-11-01' "
        "GROUP BY asset_id ORDER BY sum(revenue_credit) DESC LIMIT 1",
    )
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(ROYALTY_CATALOG.format(asset=top["asset_id"]))
    mm("royalties", "load", str(catalog), "--by", "rights")
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "sale_id,revision,sold_at,sku,territory,units,net_amount,currency\n"
        "s1,0,2026-10-03T10:00:00Z,SKU-1,US,3,300.00,USD\ns2,0,2026-10-04T10:00:00Z,SKU-1,US,-1,-100.00,USD\n"
    )
    mm("royalties", "sales", "load", str(sales))
    out = mm("royalties", "run", "2026-10").stdout
    assert "Royalty statements 2026-10" in out and "draft" in out
    ledger = {
        r["base"]: Decimal(r["royalty"])
        for r in sql_json(
            mm, "SELECT base, toString(sum(royalty_amount)) AS royalty FROM marts.royalty_ledger GROUP BY base"
        )
    }
    # 20% of the asset's linear credit, and 10% of 300 − 100 of book sales: the ledger explains every cent.
    assert ledger == {"attributed_revenue": Decimal(top["credit"]) * Decimal("0.2"), "net_sales": Decimal(20)}
    statement = mm("royalties", "statement", "2026-10", "pe-a", "--html", str(tmp_path / "st.html"))
    assert "CT-1@" in statement.stdout and "Royalty statement 2026-10" in (tmp_path / "st.html").read_text()

    keys = dict(line.split("=", 1) for line in mm("payouts", "keygen").stdout.split())
    keys["MM_PAYOUT_DEBTOR_IBAN"] = "DE02120300000000202051"  # the paying account: a SEPA export refuses without it
    os.environ.update(keys)
    try:
        [batch] = [row["batch_id"] for row in json.loads(mm("payouts", "list", "--format", "json").stdout)]
        mm("payouts", "approve", batch, "--by", "fin-1")
        assert "exported" not in mm("payouts", "list").stdout
        mm("payouts", "export", batch, "--by", "fin-1")
        assert "signature and every file's SHA-256 verify" in mm("payouts", "verify", batch).stdout
        confirmation = tmp_path / "confirm.csv"
        confirmation.write_text(
            f"batch_id,line_id,status,paid_on,reason\n{batch},2026-10:pe-a:EUR,paid,2026-11-05,\n"
            f"{batch},2026-10:pe-b:EUR,failed,,IBAN closed\n"
        )
        assert "1 paid, 1 failed" in mm("payouts", "confirm", str(confirmation), "--by", "finance").stderr
        assert "posted before" in mm("payouts", "confirm", str(confirmation), "--by", "finance").stderr
        mm("royalties", "close", "2026-10", "--by", "finance")
        mm("royalties", "run", "2026-11")
        [back] = sql_json(
            mm,
            "SELECT toString(returned) AS returned FROM royalty.statement_lines "
            "WHERE period = '2026-11' AND payee_id = 'pe-b'",
        )
        [paid_b] = sql_json(
            mm,
            "SELECT toString(paid) AS paid FROM royalty.statement_lines WHERE period = '2026-10' AND payee_id = 'pe-b'",
        )
        assert Decimal(back["returned"]) == Decimal(paid_b["paid"]) > 0
        assert "chain intact" in mm("audit", "verify").stdout

        # Disaster recovery: the warehouse is lost; sales, ledger and statements come back from the archive, exactly.
        before = sql_json(mm, ROYALTY_CHECKSUM)
        shutil.rmtree(os.path.join(os.environ["MM_HOME"], "warehouse"))
        mm("replay", "--all")
        mm("materialize")
        assert sql_json(mm, ROYALTY_CHECKSUM) == before
        mm("royalties", "run", "2026-11")  # re-running after the restore posts nothing new
        assert sql_json(mm, ROYALTY_CHECKSUM) == before
    finally:
        for k in keys:
            os.environ.pop(k, None)


@pytest.mark.parametrize(
    "args, message",
    [
        (("royalties", "run", "2031-01"), "period 2031-01 has not started yet"),
        (("royalties", "run", "1999-01"), "period 1999-01 is before the first royalty period 2025-01"),
        (("royalties", "close", "2031-01"), "period 2031-01 has not started yet"),
        (("payouts", "create", "2031-01"), "period 2031-01 has not started yet"),
        (("royalties", "run", "2026-13"), "period '2026-13' is not a month written 'YYYY-MM'"),
        (("royalties", "statement", "2026-10", "p1"), "No statements yet"),
    ],
)
def test_every_period_argument_gets_a_one_line_error(mm, args, message):
    result = mm(*args, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == f"error: {message}" or result.stderr.startswith(f"error: {message}")
    assert "fix:" in result.stderr


def test_an_unreachable_clickhouse_server_is_named_as_such(mm, monkeypatch):
    monkeypatch.setenv("MM_CLICKHOUSE_URL", "http://127.0.0.1:1")
    started = time.monotonic()
    result = mm("sql", "SELECT 1", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr and time.monotonic() - started < 30
    assert "analytics store (ClickHouse at 127.0.0.1:1" in result.stderr and "unreachable" in result.stderr
    assert "check the SQL" not in result.stderr


UNREACHABLE_KAFKA = "kafka://127.0.0.1:1"  # nothing listens on port 1


def assert_one_clear_kafka_error(result, started: float) -> None:
    from mm_pipelines.stores.bus import BROKER_TIMEOUT_S

    assert result.returncode != 0
    assert time.monotonic() - started < 3 * BROKER_TIMEOUT_S
    assert "Traceback" not in result.stderr and "Stack Trace" not in result.stderr
    assert "rdkafka" not in result.stderr  # librdkafka's own log lines stay out of the terminal
    named = [line for line in result.stderr.splitlines() if "Kafka at 127.0.0.1:1" in line]
    assert len(named) == 1 and "unreachable (Connection refused)" in named[0] and "MM_EVENT_BUS" in named[0], (
        result.stderr
    )


def test_producing_to_an_unreachable_kafka_is_one_clear_error(mm, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", UNREACHABLE_KAFKA)
    started = time.monotonic()
    assert_one_clear_kafka_error(mm("events", "produce", "--events", "500", check=False), started)


def test_loading_a_file_to_an_unreachable_kafka_is_one_clear_error(mm, monkeypatch, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_jsonl(generate_events(events=100, seed=32))) + b"{bad\n")
    monkeypatch.setenv("MM_EVENT_BUS", UNREACHABLE_KAFKA)
    started = time.monotonic()
    assert_one_clear_kafka_error(mm("events", "load", str(path), check=False), started)
    # Nothing was quarantined or recorded as loaded: the same file loads in full once Kafka is back.
    monkeypatch.delenv("MM_EVENT_BUS")
    assert "already loaded" not in mm("events", "load", str(path)).stderr
    assert sql_json(mm, "SELECT count() AS n FROM raw.dead_letters") == [{"n": 1}]


def test_materializing_from_an_unreachable_kafka_fails_the_run(mm, monkeypatch):
    monkeypatch.setenv("MM_EVENT_BUS", UNREACHABLE_KAFKA)
    started = time.monotonic()
    result = mm("materialize", "raw/events", check=False)
    assert_one_clear_kafka_error(result, started)
    assert "step failed raw__events" in result.stderr
    # The run is recorded as failed, not as a successful run that found nothing.
    from dagster import DagsterInstance, DagsterRunStatus

    monkeypatch.setenv("DAGSTER_HOME", os.path.join(os.environ["MM_HOME"], "dagster"))
    with DagsterInstance.get() as instance:
        assert [r.status for r in instance.get_runs()] == [DagsterRunStatus.FAILURE]


def test_materialize_warns_on_freshness_and_fails_on_an_error_check(mm, tmp_path):
    """Clicks and impressions, no conversion yet: attribution is not fresh, a warning, and the command succeeds
    showing each step; a failed ERROR check still fails it."""
    path = tmp_path / "clicks.jsonl"
    path.write_bytes(
        b"".join(to_jsonl([e for e in generate_events(events=2000, seed=3) if e["event_type"] != "conversion"]))
    )
    mm("events", "load", str(path))
    out = mm("materialize").stderr.splitlines()
    assert [line for line in out if line.startswith("⚠")] == [
        "⚠ warning marts/attribution_credits:attribution_credits_freshness_check no conversion credited yet"
    ]
    [ingest] = [line for line in out if line.startswith("✓ raw__events ")]
    assert "raw/events 1,9" in ingest and " rows" in ingest  # the events the run ingested
    [dbt] = [line for line in out if line.startswith("✓ event_days_dbt ")]
    assert "staging/stg_events 1,9" in dbt
    assert any(line.startswith("✓ check marts/attribution_credits:attribution_credits_complete_check ") for line in out)
    assert any(line.startswith("materialize 2026-10-") and "1 warning" in line for line in out)

    # An e-mail address in raw.events (written around ingestion's validation) fails the staging check: ERROR.
    from mm_pipelines.config import Settings
    from mm_pipelines.stores.clickhouse import Warehouse

    Warehouse(Settings.from_env().clickhouse_url).command(
        "INSERT INTO raw.events (event_id, event_type, occurred_at, user_id, channel, campaign_id, creative_id, "
        "asset_id, schema_version, topic, partition, offset, ingested_at) "
        "VALUES ('pii-1', 'click', '2026-10-05 10:00:00', "
        "'ann@example.com', 'email', 'c', 'k', 'a', 1, 'manual', 0, 0, now())"
    )
    failed = mm("materialize", "staging/stg_events", check=False)
    assert failed.returncode == 1
    assert (
        "✗ check failed staging/stg_events:stg_events_expectations_check" in failed.stderr
        and "emails_in_user_id" in failed.stderr
    )
    assert "Materializing 'staging/stg_events' failed" in failed.stderr


ROYALTIES_ONLY_CATALOG = """
creators:
  - id: cr-1
    name: Creator One
    payees:
      - id: pe-a
        name: Payee A
        kyc: {status: verified, evidence: "kyc://case/a"}
        payout: {method: sepa, currency: EUR, iban: DE89370400440532013000}
contracts:
  - reference: CT-1
    creator: cr-1
    currency: EUR
    effective_from: 2025-01-01
    expires_on: 2025-12-31
    payees: [{payee: pe-a, share: 100}]
    rules:
      - id: book
        sku: SKU-1
        tiers: {by: units, steps: [{from: 0, rate_percent: 10}]}
"""


def test_a_royalties_only_platform_runs_a_period_without_ad_events_or_fx_rates(mm, tmp_path):
    """No ad events, no `mm materialize`, one currency and a month the FX seed does not cover: the first
    `mm royalties run` stages the sales itself, asks for no rate (nothing is converted) and needs no attribution."""
    catalog, sales = tmp_path / "catalog.yml", tmp_path / "sales.csv"
    catalog.write_text(ROYALTIES_ONLY_CATALOG)
    sales.write_text(
        "sale_id,revision,sold_at,sku,territory,units,net_amount,currency\n"
        "s1,0,2025-03-03T10:00:00Z,SKU-1,DE,3,300.00,EUR\n"
    )
    mm("royalties", "load", str(catalog), "--by", "rights")
    mm("royalties", "sales", "load", str(sales))
    out = mm("royalties", "run", "2025-03").stdout
    assert "Royalty statements 2025-03" in out and "draft" in out
    [totals] = sql_json(mm, "SELECT toString(sum(royalty_amount)) AS royalty FROM marts.royalty_ledger")
    assert Decimal(totals["royalty"]) == Decimal(30)
    credits = "SELECT count() AS n FROM system.tables WHERE database = 'marts' AND name = 'attribution_credits'"
    assert sql_json(mm, credits) == [{"n": 0}]  # attribution never ran


def test_finance_loads_the_ecb_rates_a_period_needs_and_the_statement_converts_with_them(mm, tmp_path):
    """A USD contract paying a EUR payee in a month the seed does not cover: the run names what is missing, the
    ECB's file supplies it (the month's mean of its days), and the ledger line records the rate it used."""
    catalog, sales, ecb = tmp_path / "catalog.yml", tmp_path / "sales.csv", tmp_path / "eurofxref-hist.csv"
    catalog.write_text(ROYALTIES_ONLY_CATALOG.replace("    currency: EUR\n", "    currency: USD\n"))
    sales.write_text(
        "sale_id,revision,sold_at,sku,territory,units,net_amount,currency\n"
        "s1,0,2025-03-03T10:00:00Z,SKU-1,DE,3,300.00,USD\n"
    )
    mm("royalties", "load", str(catalog), "--by", "rights")
    mm("royalties", "sales", "load", str(sales))
    refused = mm("royalties", "run", "2025-03", check=False)
    assert refused.returncode != 0
    assert "no FX rate recorded for 2025-03 in EUR, USD: load Finance's rates" in refused.stdout + refused.stderr
    ecb.write_text("Date,USD,JPY,GBP,\n2025-03-31,1.0815,161.05,0.8350,\n2025-03-28,1.0790,163.17,0.8353,\n")
    loaded = mm("fx", "load", str(ecb))
    assert "Loaded 8 daily rates (ecb)" in loaded.stderr and "1.08025" in loaded.stdout
    mm("fx", "load", str(ecb))  # a second load of the same file adds nothing
    assert sql_json(mm, "SELECT count() AS n FROM raw.fx_rates") == [{"n": 8}]
    mm("royalties", "run", "2025-03")
    [line] = sql_json(
        mm, "SELECT toString(fx_rate) AS fx, toString(royalty_amount) AS royalty FROM marts.royalty_ledger"
    )
    assert Decimal(line["fx"]) == 1 and Decimal(line["royalty"]) == Decimal(30)  # USD sales, USD contract
    [statement] = sql_json(
        mm, "SELECT toString(earnings) AS earnings FROM royalty.statement_lines WHERE payee_id = 'pe-a'"
    )
    assert Decimal(statement["earnings"]) == Decimal("27.77")  # 30 USD / 1.08025 USD per EUR, to the cent
    bad = tmp_path / "rates.csv"
    bad.write_text("date,currency,rate\n2025-04-01,EUR,-1\n")
    refused = mm("fx", "load", str(bad), check=False)
    assert refused.returncode != 0 and f"{bad}:2: field 'rate' must be a positive decimal number" in refused.stderr

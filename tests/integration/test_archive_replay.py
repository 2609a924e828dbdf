"""The Parquet archive and replay: a disaster-recovery drill must reproduce every mart exactly."""

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mm_pipelines.events.generator import generate_events, to_jsonl
from mm_pipelines.platform import Platform

pytestmark = pytest.mark.integration

MM = str(Path(sys.executable).parent / "mm")
MART_CHECKSUM = (
    "SELECT count(), "
    "groupBitXor(cityHash64(event_date, channel, campaign_id, impressions, clicks, conversions, revenue)) "
    "FROM marts.campaign_performance_daily "
    "UNION ALL SELECT count(), groupBitXor(cityHash64(conversion_id, model, touch_id, credit_share, revenue_credit)) "
    "FROM marts.attribution_credits "
    "UNION ALL SELECT count(), groupBitXor(cityHash64(date, model, channel, campaign_id, conversions, revenue, spend)) "
    "FROM marts.attribution_daily"
)


def mm(*args):
    result = subprocess.run([MM, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_disaster_recovery_drill_reproduces_the_marts(mm_home, tmp_path):
    events = generate_events(events=3000, seed=41)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_jsonl(events)) + b"{bad\n")
    mm("events", "load", str(path))
    spend = tmp_path / "spend.csv"
    spend.write_text("date,channel,campaign_id,amount,currency\n2026-10-02,email,email-cmp-00,10.00,USD\n")
    mm("spend", "load", str(spend))
    spend.write_text("date,channel,campaign_id,amount,currency\n2026-10-02,email,email-cmp-00,12.50,USD\n")  # restated
    mm("spend", "load", str(spend))
    fx = tmp_path / "fx.csv"  # Finance's October EUR rate replaces the seed's, in every conversion
    fx.write_text("date,currency,rate\n2026-10-01,EUR,1.2000\n2026-10-02,EUR,1.1000\n")
    mm("fx", "load", str(fx))
    mm("materialize")
    platform = Platform.from_env()
    assert platform.warehouse.query_rows("SELECT spend FROM staging.stg_ad_spend")[0][0] == Decimal("12.50")
    october_eur = "SELECT rate_to_reporting FROM staging.stg_fx_rates WHERE currency = 'EUR' AND month = '2026-10-01'"
    assert platform.warehouse.query_rows(october_eur) == [(Decimal("1.15"),)]
    before = sorted(platform.warehouse.query_rows(MART_CHECKSUM))
    assert all(n > 0 for n, _ in before)
    raw_before = platform.warehouse.query_rows(
        "SELECT count(), sum(cityHash64(event_id, occurred_at, revenue, offset)) FROM raw.events"
    )
    keys = platform.objects.list_keys("raw/events/")
    assert keys and all(k.startswith("raw/events/date=2026-") and k.endswith(".parquet") for k in keys)
    archived = sum(pq.read_metadata(platform.settings.home / "objects" / k).num_rows for k in keys)
    assert archived == len(events)

    # Disaster: the whole warehouse is gone.
    import shutil

    shutil.rmtree(platform.settings.embedded_warehouse)
    mm("replay", "--all")
    assert (
        platform.warehouse.query_rows(
            "SELECT count(), sum(cityHash64(event_id, occurred_at, revenue, offset)) FROM raw.events"
        )
        == raw_before
    )
    mm("materialize")
    assert sorted(platform.warehouse.query_rows(MART_CHECKSUM)) == before
    assert platform.warehouse.query_rows("SELECT spend FROM staging.stg_ad_spend")[0][0] == Decimal("12.50")
    assert platform.warehouse.query_rows(october_eur) == [(Decimal("1.15"),)]  # the rate file was restored
    # Ingestion resumes where it stood: nothing is ingested twice after the drill.
    mm("materialize", "raw/events")
    assert platform.warehouse.query_rows("SELECT count() FROM raw.events")[0][0] == len(events)


def test_replaying_a_date_range_is_idempotent(mm_home, tmp_path):
    events = generate_events(events=2000, seed=42)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_jsonl(events)))
    mm("events", "load", str(path))
    mm("materialize", "raw/events")
    platform = Platform.from_env()
    q = "SELECT toDate(occurred_at) AS d, count() FROM raw.events GROUP BY d ORDER BY d"
    before = platform.warehouse.query_rows(q)
    mm("replay", "--from", "2026-10-03", "--to", "2026-10-05")
    mm("replay", "--from", "2026-10-03", "--to", "2026-10-05")
    assert platform.warehouse.query_rows(q) == before


def test_a_full_replay_restores_the_ledger_into_the_table_dbt_creates_from_its_contract(mm_home, tmp_path):
    import shutil

    import yaml

    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.recovery import create_dbt_tables
    from mm_pipelines.royalties.warehouse import LEDGER_PREFIX, archive_period

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(to_jsonl(generate_events(events=200, seed=43))))
    mm("events", "load", str(path))
    mm("materialize", "raw/events")
    platform = Platform.from_env()
    # A posted period as the ledger asset archives it.
    create_dbt_tables(["royalty_ledger"])
    with platform.warehouse.session() as s:
        s.command(
            "INSERT INTO marts.royalty_ledger (period, entry, idempotency_key, payee_id, royalty_amount, currency) "
            "VALUES ('2026-10', 'accrual', 'k-1', 'pe-a', 12.3456789012, 'EUR')"
        )
        assert archive_period(s, platform.objects, "marts.royalty_ledger", LEDGER_PREFIX, "2026-10") == 1

    shutil.rmtree(platform.settings.embedded_warehouse)
    assert "ledger lines" in mm("replay", "--all").stderr
    restored = "SELECT period, idempotency_key, payee_id, toString(royalty_amount) FROM marts.royalty_ledger"
    assert platform.warehouse.query_rows(restored) == [("2026-10", "k-1", "pe-a", "12.3456789012")]
    # The table has the columns the model's contract declares, nothing declared in Python.
    models = yaml.safe_load((dbt_project_dir() / "models" / "marts" / "schema.yml").read_text())["models"]
    contract = next(m for m in models if m["name"] == "royalty_ledger")
    assert contract["config"]["contract"]["enforced"]
    assert platform.warehouse.query_rows(
        "SELECT name, type FROM system.columns WHERE database = 'marts' AND table = 'royalty_ledger' ORDER BY position"
    ) == [(c["name"], c["data_type"]) for c in contract["columns"]]

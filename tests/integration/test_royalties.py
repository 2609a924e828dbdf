"""Royalties through Dagster on real PostgreSQL (and the real S3 server for exports): the ledger posts, corrects
and never rewrites; statements, payout batches, signed exports and confirmations close the loop."""

import dataclasses
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mm_pipelines.audit import chain as audit_chain
from mm_pipelines.config import Settings
from mm_pipelines.platform import Platform
from mm_pipelines.royalties import bank_details, batches, payouts, store
from mm_pipelines.royalties.contracts import parse_catalog
from mm_pipelines.royalties.warehouse import load_sales_file
from tests.conftest import dsn_url
from tests.integration.conftest import found_in_postgres

pytestmark = pytest.mark.integration

HEADER = "sale_id,revision,sold_at,sku,territory,units,net_amount,currency\n"
CATALOG = """
creators:
  - id: cr-1
    name: Creator One
    payees:
      - id: pe-a
        name: Payee A
        kyc: {status: verified, evidence: "kyc://case/a"}
        payout: {method: sepa, currency: USD, iban: DE89370400440532013000}
        threshold: "1.00"
      - id: pe-b
        name: Payee B
        kyc: {status: verified, evidence: "kyc://case/b"}
        payout: {method: sepa, currency: USD, iban: FR1420041010050500013M02606}
contracts:
  - reference: CT-1
    creator: cr-1
    currency: USD
    effective_from: 2026-01-01
    expires_on: 2027-12-31
    payees: [{payee: pe-a, share: 66.67}, {payee: pe-b, share: 33.33}]
    rules:
      - id: book
        sku: SKU-1
        deduction_per_unit: "0.10"
        tiers: {by: units, steps: [{from: 0, rate_percent: 10}, {from: 100, rate_percent: 15}]}
"""


@pytest.fixture
def royalty_env(mm_home, postgres_dsn, monkeypatch, tmp_path):
    """Embedded ClickHouse with the reference seed and empty marts; a fresh database on the real Postgres."""
    import subprocess
    import sys

    from mm_pipelines.config import dbt_project_dir
    from mm_pipelines.stores.warehouse_tables import ensure_tables

    monkeypatch.setenv("MM_POSTGRES_DSN", dsn_url(postgres_dsn))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    platform = Platform.from_env()
    with platform.warehouse.session() as s:
        ensure_tables(s)
    # What the ledger reads: the FX seed, stg_sales and the (empty) attribution credits.
    subprocess.run(
        [
            str(Path(sys.executable).parent / "mm-dbt"),
            "build",
            "--select",
            "+attribution_credits",
            "stg_sales",
            "royalty_ledger",
            "--exclude-resource-type",
            "test",
            "--quiet",
        ],
        cwd=dbt_project_dir(),
        check=True,
    )
    return platform


@pytest.fixture
def vault(tmp_path):
    """The embedded PII vault of the test's MM_HOME (tmp_path/mm, as mm_home and the `mm` runs below use)."""
    return bank_details.vault(Settings.from_env({"MM_HOME": str(tmp_path / "mm")}))


def load_catalog(platform, text: str, name: str = "catalog.yml"):
    settings = Settings.from_env()
    with platform.metadata.connect() as conn:
        store.save_catalog(
            conn,
            parse_catalog(Path(name), text),
            name,
            "rights-team",
            vault=bank_details.vault(settings),
            digest_key=bank_details.digest_key(settings),
        )


def load_sales(platform, tmp_path: Path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    with platform.warehouse.session() as s:
        load_sales_file(s, path)


def run_period(period: str):
    from mm_pipelines.definitions import build_definitions

    with DagsterInstance.get() as instance:
        result = (
            build_definitions()
            .resolve_job_def("royalties_job")
            .execute_in_process(instance=instance, partition_key=f"{period}-01", raise_on_error=False)
        )
    assert result.success, [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]


LEDGER = (
    "period, entry, sale_id, revision, tier_index, toString(rate_applied), units, toString(base_amount), "
    "toString(rule_royalty), payee_id, toString(royalty_amount), idempotency_key"
)


def ledger(platform) -> list[tuple]:
    return sorted(platform.warehouse.query_rows(f"SELECT {LEDGER} FROM marts.royalty_ledger"))


def test_the_ledger_posts_tiers_splits_corrections_and_late_sales_without_rewriting(royalty_env, tmp_path):
    platform = royalty_env
    load_catalog(platform, CATALOG)
    load_sales(
        platform,
        tmp_path,
        "oct.csv",
        [
            "s1,0,2026-10-02T10:00:00Z,SKU-1,US,60,600.00,USD",
            "s2,0,2026-10-03T10:00:00Z,SKU-1,DE,60,600.00,USD",  # crosses the 100-unit tier: 40 at 10%, 20 at 15%
            "s3,0,2026-10-03T11:00:00Z,SKU-2,DE,5,50.00,USD",  # no rule for this SKU
        ],
    )
    run_period("2026-10")
    october = ledger(platform)
    rows = {(r[2], r[4], r[9]): r for r in october}
    # s1: (600 − 60 × 0.10) × 10% = 59.40; split 66.67% / 33.33%: pe-b rounds, pe-a takes the remainder.
    assert Decimal(rows[("s1", 1, "pe-a")][8]) == Decimal("59.4")
    assert Decimal(rows[("s1", 1, "pe-b")][10]) == Decimal("19.79802")
    assert Decimal(rows[("s1", 1, "pe-a")][10]) == Decimal("39.60198")
    # s2: base 594 split 40/60 → 396 at 10% = 39.60 and 198 at 15% = 29.70.
    assert (Decimal(rows[("s2", 1, "pe-a")][7]), Decimal(rows[("s2", 1, "pe-a")][8])) == (Decimal(396), Decimal("39.6"))
    assert (Decimal(rows[("s2", 2, "pe-a")][7]), Decimal(rows[("s2", 2, "pe-a")][8])) == (Decimal(198), Decimal("29.7"))
    assert rows[("s2", 2, "pe-a")][6] == 20 and rows[("s2", 1, "pe-a")][6] == 40
    for sale, tier in {(r[2], r[4]) for r in october}:
        split = [Decimal(r[10]) for r in october if (r[2], r[4]) == (sale, tier)]
        assert sum(split) == Decimal(rows[(sale, tier, "pe-a")][8])
    assert not any(r[2] == "s3" for r in october)

    run_period("2026-10")  # re-running an open period posts nothing
    assert ledger(platform) == october

    with platform.metadata.connect() as conn:
        store.close_period(conn, "2026-10", "finance")
    load_sales(
        platform,
        tmp_path,
        "late.csv",
        [
            "s1,1,2026-10-02T10:00:00Z,SKU-1,US,50,500.00,USD",  # correction of a closed period's sale
            "s4,0,2026-10-30T10:00:00Z,SKU-1,US,10,100.00,USD",  # late sale for the closed period
        ],
    )
    run_period("2026-10")  # closed: nothing changes
    assert ledger(platform) == october
    run_period("2026-11")
    after = ledger(platform)
    assert set(october) <= set(after)  # nothing updated or deleted
    november = [r for r in after if r[0] == "2026-11"]
    reversal = [r for r in november if r[1] == "reversal"]
    assert {(r[2], r[3], Decimal(r[10])) for r in reversal} == {
        ("s1", 0, Decimal("-39.60198")),
        ("s1", 0, Decimal("-19.79802")),
    }
    # After the reversal, 60 units are posted; the corrected s1 (50) then s4 (10) land on 110:
    # s1 has 40 at 10%, 10 at 15%.
    s1 = {(r[4], r[9]): r for r in november if r[2] == "s1" and r[1] == "accrual"}
    assert (s1[(1, "pe-a")][6], s1[(2, "pe-a")][6]) == (40, 10)
    s4 = [r for r in november if r[2] == "s4" and r[9] == "pe-a"]
    assert [(r[4], Decimal(r[8])) for r in s4] == [(2, Decimal("14.85"))]  # (100 − 1) × 15%
    assert len({r[11] for r in after}) == len(after)  # every idempotency key once

    run_period("2026-11")
    assert ledger(platform) == after


def make_batchable(platform, tmp_path):
    """Two periods of statements: a verified payee paid, one held for KYC, above the dual-approval limit."""
    catalog = CATALOG.replace(
        'kyc: {status: verified, evidence: "kyc://case/b"}', 'kyc: {status: pending, evidence: "kyc://case/b"}'
    )
    catalog = catalog.replace("currency: USD, iban", "currency: EUR, iban")
    load_catalog(platform, catalog)
    load_sales(
        platform,
        tmp_path,
        "oct.csv",
        [f"s{i},0,2026-10-0{1 + i % 9}T10:00:00Z,SKU-1,US,10,10000.00,USD" for i in range(12)],
    )
    run_period("2026-10")


def test_payouts_from_statement_to_confirmation_with_approvals_signed_export_and_audit(
    royalty_env, tmp_path, monkeypatch, s3_store, vault
):
    platform = royalty_env
    private, public = payouts.generate_key_pair()
    monkeypatch.setenv("MM_PAYOUT_SIGNING_KEY", private)
    monkeypatch.setenv("MM_PAYOUT_DUAL_APPROVAL_ABOVE", "5000")
    monkeypatch.setenv("MM_PAYOUT_DEBTOR_IBAN", "DE02120300000000202051")
    monkeypatch.setenv("MM_OBJECT_STORE", s3_store.url)  # exports and confirmations on the real S3 server
    make_batchable(platform, tmp_path)
    settings = batches.PayoutSettings.from_env()
    with platform.metadata.connect() as conn:
        (batch_id,) = [b for (b,) in conn.execute("SELECT batch_id FROM payout_batches")]
        creator = conn.execute("SELECT created_by FROM payout_batches").fetchone()[0]
        again, holds = batches.create_batches(
            conn, "2026-10", "someone-else", vault=vault
        )  # a retry finds the same batch
        assert again == [batch_id] and [h.payee_id for h in holds] == ["pe-b"]
        total, lines = conn.execute("SELECT total, line_count FROM payout_batches").fetchone()
        paid_a = conn.execute("SELECT paid FROM royalty_statement_totals WHERE payee_id = 'pe-a'").fetchone()[0]
        assert (total, lines) == (paid_a, 1) and total > 5000
        with pytest.raises(batches.BatchError, match="cannot approve"):
            batches.approve(conn, batch_id, creator, settings)
        assert batches.approve(conn, batch_id, "fin-1", settings) == ("draft", 1, 2)
        with pytest.raises(batches.BatchError, match="already approved"):
            batches.approve(conn, batch_id, "fin-1", settings)
        with pytest.raises(batches.BatchError, match="needs its approvals"):
            batches.export(conn, s3_store, batch_id, "fin-1", settings, vault=vault)
    with platform.metadata.connect() as conn:
        assert batches.approve(conn, batch_id, "fin-2", settings) == ("approved", 2, 2)
        keys = batches.export(conn, s3_store, batch_id, "fin-2", settings, vault=vault)
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted(
        [payouts.CSV_NAME, payouts.PAIN001_NAME, payouts.MANIFEST_NAME, payouts.SIGNATURE_NAME]
    )
    first_export = {k: s3_store.get_bytes(k) for k in keys}
    with platform.metadata.connect() as conn:
        batches.export(conn, s3_store, batch_id, "fin-2", settings, vault=vault)  # re-export: byte-identical files
    assert {k: s3_store.get_bytes(k) for k in keys} == first_export
    assert batches.verify(s3_store, batch_id, public) == []
    csv_key = f"{batches.EXPORT_PREFIX}/{batch_id}/{payouts.CSV_NAME}"
    s3_store.put_bytes(csv_key, first_export[csv_key].replace(b"DE89", b"DE88"))
    assert any(payouts.CSV_NAME in p for p in batches.verify(s3_store, batch_id, public))
    s3_store.put_bytes(csv_key, first_export[csv_key])

    # Finance reports the line failed; the sensor posts it, and the amount returns to the payee next period.
    line_id = "2026-10:pe-a:EUR"
    confirmation = f"batch_id,line_id,status,paid_on,reason\n{batch_id},{line_id},failed,,account closed\n".encode()
    s3_store.put_bytes(f"{batches.CONFIRMATION_PREFIX}/{batch_id}/c1.csv", confirmation)
    cursor = post_confirmations_via_sensor()
    assert post_confirmations_via_sensor(cursor) == cursor  # the file is not requested twice
    with platform.metadata.connect() as conn:  # and a re-delivered file posts nothing
        assert batches.post_confirmation(
            conn, f"{batches.CONFIRMATION_PREFIX}/{batch_id}/c1.csv", confirmation, "finance"
        )["already"]
    with platform.metadata.connect() as conn:
        assert conn.execute("SELECT status FROM payout_batches").fetchone()[0] == "confirmed"
        assert conn.execute("SELECT status, returned_period FROM payout_lines").fetchone() == ("failed", "2026-11")
    run_period("2026-11")
    statement = dict(
        platform.warehouse.query_rows(
            "SELECT account_id, toString(returned) FROM royalty.statement_lines "
            "WHERE period = '2026-11' AND payee_id = 'pe-a'"
        )
    )
    assert Decimal(statement["pe-a:payments"]) == paid_a
    held = dict(
        platform.warehouse.query_rows(
            "SELECT account_id, toString(returned) FROM royalty.statement_lines "
            "WHERE period = '2026-11' AND payee_id = 'pe-b'"
        )
    )
    with platform.metadata.connect() as conn:
        held_amount = conn.execute("SELECT amount FROM payout_holds WHERE payee_id = 'pe-b'").fetchone()[0]
        assert Decimal(held["pe-b:payments"]) == held_amount > 0
        count, problems = audit_chain.verify(conn)
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log ORDER BY seq")]
        assert problems == [] and count == len(actions)
        for action in (
            "catalog.load",
            "payout.holds",
            "payout.batch_created",
            "payout.approval",
            "payout.batch_approved",
            "payout.export",
            "payout.confirmation",
        ):
            assert action in actions
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE action = 'payout.approval'")
        assert audit_chain.verify(conn)[1]


def post_confirmations_via_sensor(cursor: str | None = None) -> str | None:
    """One sensor tick, then the runs it requests (as the daemon would); returns the sensor's new cursor."""
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.resources import ObjectStoreResource

    defs = build_definitions()
    sensor = defs.resolve_sensor_def("payout_confirmation_sensor")
    with DagsterInstance.get() as instance:
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"object_store": ObjectStoreResource()}
        )
        result = sensor.evaluate_tick(context)
        job = defs.resolve_job_def("payout_confirmation_job")
        for request in result.run_requests or []:
            assert job.execute_in_process(instance=instance, run_config=request.run_config).success
    return result.cursor


def mm_royalties_load(tmp_path: Path, text: str) -> None:
    """`mm royalties load` as a user runs it (MM_HOME and the database from the test's environment)."""
    import subprocess
    import sys

    path = tmp_path / "catalog.yml"
    path.write_text(text)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mm"), "royalties", "load", str(path), "--by", "rights"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_bank_details_live_only_in_the_vault_and_an_export_pays_the_version_drafted(
    royalty_env, tmp_path, monkeypatch, vault
):
    """After `mm royalties load` no payee name, IBAN or BIC is anywhere in Postgres; the export still pays the real
    IBAN, and a batch drafted before a payee's bank details change pays the details it was drafted with."""
    platform = royalty_env
    private, public = payouts.generate_key_pair()
    monkeypatch.setenv("MM_PAYOUT_SIGNING_KEY", private)
    monkeypatch.setenv("MM_PAYOUT_DEBTOR_IBAN", "DE02120300000000202051")
    catalog = CATALOG.replace("currency: USD, iban", "currency: EUR, iban").replace(
        "iban: DE89370400440532013000}", "iban: DE89370400440532013000, bic: COBADEFFXXX}"
    )
    changed = catalog.replace("DE89370400440532013000, bic: COBADEFFXXX", "NL91ABNA0417164300, bic: ABNANL2A")
    changed = changed.replace("name: Payee A", "name: Payee Anew")
    pii = ["Payee A", "Payee B", "DE89370400440532013000", "COBADEFFXXX", "FR1420041010050500013M02606"]
    mm_royalties_load(tmp_path, catalog)
    load_sales(platform, tmp_path, "oct.csv", ["s1,0,2026-10-02T10:00:00Z,SKU-1,US,60,600.00,USD"])
    run_period("2026-10")  # drafts the EUR batch with both payees' current details
    mm_royalties_load(tmp_path, catalog)  # unchanged: the vault gets no new version
    assert sorted(p.name for p in (vault.root / "payees" / "pe-a").iterdir()) == ["@1.enc"]
    mm_royalties_load(tmp_path, changed)  # pe-a's account and name change after the draft
    settings = batches.PayoutSettings.from_env()
    with platform.metadata.connect() as conn:
        [batch_id] = [b for (b,) in conn.execute("SELECT batch_id FROM payout_batches")]
        assert conn.execute("SELECT payee_id, pii_ref, bank_hint FROM payees ORDER BY payee_id").fetchall() == [
            ("pe-a", "payees/pe-a#2", "NL…4300"),
            ("pe-b", "payees/pe-b#1", "FR…2606"),
        ]
        assert conn.execute("SELECT payee_id, pii_ref FROM payout_lines ORDER BY payee_id").fetchall() == [
            ("pe-a", "payees/pe-a#1"),
            ("pe-b", "payees/pe-b#1"),
        ]
        assert batches.create_batches(conn, "2026-10", "someone-else", vault=vault)[0] == [batch_id]  # a retry too
        batches.approve(conn, batch_id, "fin-1", settings)
        batches.export(conn, platform.objects, batch_id, "fin-1", settings, vault=vault)
        assert found_in_postgres(conn, [*pii, "Payee Anew", "NL91ABNA0417164300", "ABNANL2A"]) == []
        assert found_in_postgres(conn, ["payees/pe-a#1"]) == ["payout_lines.pii_ref: payees/pe-a#1"]  # it looks
    exported = f"{batches.EXPORT_PREFIX}/{batch_id}/"
    csv = platform.objects.get_bytes(exported + payouts.CSV_NAME).decode()
    pain = platform.objects.get_bytes(exported + payouts.PAIN001_NAME).decode()
    assert "2026-10:pe-a:EUR,pe-a,Payee A,DE89370400440532013000,COBADEFFXXX," in csv
    assert "FR1420041010050500013M02606" in csv and "NL91" not in csv and "Anew" not in csv
    assert "<IBAN>DE89370400440532013000</IBAN>" in pain and "COBADEFFXXX" in pain and "NL91" not in pain
    assert batches.verify(platform.objects, batch_id, public) == []


def test_expiring_licenses_start_their_workflow_once(royalty_env):
    from mm_pipelines.definitions import build_definitions
    from mm_pipelines.resources import PostgresResource

    platform = royalty_env
    soon = date.today().replace(day=1).isoformat()
    load_catalog(
        platform,
        CATALOG
        + f"""
licenses:
  - {{asset: asset-1, licensor: L1, expires_on: {soon}, on_expiry: takedown}}
  - {{asset: asset-2, licensor: L2, expires_on: 2099-01-01, on_expiry: renew}}
""",
    )
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("license_expiry_sensor")
    with DagsterInstance.get() as instance:
        requests = sensor.evaluate_tick(
            build_sensor_context(instance=instance, resources={"postgres": PostgresResource()})
        ).run_requests
        assert [r.run_key for r in requests] == [f"license:asset-1:L1:{soon}"]
        job = defs.resolve_job_def("license_workflow_job")
        for _ in range(2):  # a retried run records the workflow once
            assert job.execute_in_process(instance=instance, run_config=requests[0].run_config).success
        again = sensor.evaluate_tick(
            build_sensor_context(instance=instance, resources={"postgres": PostgresResource()})
        )
        assert not again.run_requests
    with platform.metadata.connect() as conn:
        assert conn.execute("SELECT asset_id, action FROM license_workflows").fetchall() == [("asset-1", "takedown")]
        assert conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'license.takedown_requested'"
        ).fetchone() == (1,)


def test_catalog_errors_reach_the_user_and_store_nothing(royalty_env):
    platform = royalty_env
    bad = CATALOG.replace("share: 33.33", "share: 30")
    with pytest.raises(ValueError, match=r"catalog.yml:\d+: payees: shares sum to 96.67%"):
        load_catalog(platform, bad)
    with platform.metadata.connect() as conn:
        assert conn.execute("SELECT count(*) FROM contracts").fetchone() == (0,)
    load_catalog(platform, CATALOG)
    overlapping = CATALOG.replace("reference: CT-1", "reference: CT-2").replace(
        "effective_from: 2026-01-01", "effective_from: 2027-06-01"
    )
    with pytest.raises(ValueError, match="overlaps stored contract 'CT-1' for sku SKU-1"):
        load_catalog(platform, overlapping)


SALE = st.tuples(st.sampled_from(["SKU-1", "SKU-2"]), st.integers(-3, 40), st.integers(1, 10_000))


def post_ledger(period: str):
    """The snapshot and the ledger only (what these properties are about), through Dagster."""
    from dagster import AssetSelection, define_asset_job

    from mm_pipelines.assets.partitions import MONTHLY_PARTITIONS
    from mm_pipelines.assets.royalties import LEDGER_KEY, PERIOD_RATES_KEY, PERIODS_KEY, RULES_KEY
    from mm_pipelines.definitions import build_definitions

    defs = build_definitions()
    job = define_asset_job(
        "ledger_only",
        selection=AssetSelection.assets(RULES_KEY, PERIODS_KEY, PERIOD_RATES_KEY, LEDGER_KEY),
        partitions_def=MONTHLY_PARTITIONS,
    ).resolve(asset_graph=defs.resolve_asset_graph())
    with DagsterInstance.get() as instance:
        assert job.execute_in_process(instance=instance, partition_key=f"{period}-01").success


FULL_LEDGER = "SELECT * EXCEPT posted_at FROM marts.royalty_ledger ORDER BY idempotency_key"


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    october=st.lists(SALE, min_size=1, max_size=12),
    corrections=st.lists(st.tuples(st.integers(0, 11), st.integers(-3, 40)), max_size=3),
    november=st.lists(SALE, max_size=6),
    close_october=st.booleans(),
)
# Found by Hypothesis: a return posted first at the same sold_at took the cumulative units below the first tier.
@example(october=[("SKU-1", -3, 1), ("SKU-1", 31, 1)], corrections=[], november=[], close_october=False)
def test_property_the_ledger_is_append_only_idempotent_and_adds_up(
    royalty_env, tmp_path, october, corrections, november, close_october
):
    """Hypothesis: whatever is loaded, corrected, closed and re-run, posted lines never change or disappear, a re-run
    posts nothing, every split adds up to its rule royalty, and the net units posted per rule equal the units of the
    latest revision of every sale it covers."""
    platform = royalty_env
    with platform.metadata.connect() as conn:
        conn.execute("DELETE FROM royalty_periods")
    with platform.warehouse.session() as s:
        for table in ("raw.sales", "marts.royalty_ledger"):
            s.command(f"TRUNCATE TABLE {table}")
    load_catalog(platform, CATALOG)
    sales = {f"o{i}": (0, sku, units, amount, "2026-10-05") for i, (sku, units, amount) in enumerate(october)}
    load_sales(platform, tmp_path, "oct.csv", [line(k, *v) for k, v in sales.items()])
    history: list[tuple] = []

    def post_and_check(period: str):
        nonlocal history
        post_ledger(period)
        now = platform.warehouse.query_rows(FULL_LEDGER)
        assert set(history) <= set(now)  # never updated or deleted
        history = now

    post_and_check("2026-10")
    if close_october:
        with platform.metadata.connect() as conn:
            store.close_period(conn, "2026-10", "finance")
    changed = []
    for index, units in corrections:
        key = f"o{index % len(october)}"
        rev, sku, _, amount, day = sales[key]
        sales[key] = (rev + 1, sku, units, amount, day)
        changed.append(line(key, *sales[key]))
    sales.update({f"n{i}": (0, sku, units, amount, "2026-11-05") for i, (sku, units, amount) in enumerate(november)})
    changed += [line(f"n{i}", 0, sku, units, amount, "2026-11-05") for i, (sku, units, amount) in enumerate(november)]
    if changed:
        load_sales(platform, tmp_path, "nov.csv", changed)
    before_october = [r for r in history if r[0] == "2026-10"]
    post_and_check("2026-10")  # corrections post here while October is open; nothing once it is closed
    post_and_check("2026-11")
    settled = history
    post_and_check("2026-11")
    assert history == settled  # a re-run posts nothing
    if close_october:  # a closed period is never written again
        assert [r for r in history if r[0] == "2026-10"] == before_october
    splits = platform.warehouse.query_rows(
        "SELECT sale_id, revision, tier_index, entry, sum(royalty_amount) = any(rule_royalty) "
        "FROM marts.royalty_ledger "
        "GROUP BY sale_id, revision, tier_index, entry"
    )
    assert all(ok for *_, ok in splits)
    posted_units = platform.warehouse.query_rows("SELECT sum(units) FROM marts.royalty_ledger WHERE payee_id = 'pe-a'")[
        0
    ][0]
    assert posted_units == sum(units for _, sku, units, _, _ in sales.values() if sku == "SKU-1")


def line(sale_id: str, revision: int, sku: str, units: int, amount: int, day: str) -> str:
    return f"{sale_id},{revision},{day}T10:00:00Z,{sku},US,{units},{amount * (1 if units >= 0 else -1)}.00,USD"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.integers(1, 10**7), min_size=1, max_size=6),
    attempts=st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=6),
)
def test_property_a_payee_is_never_paid_twice_for_a_period(postgres_dsn, vault, amounts, attempts):
    """Hypothesis: however batch creation is retried, and even if statements change between retries, each payee's
    statement for a period is in at most one batch, and a batch pays exactly what the statements said when drafted."""
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        for table in (
            "payout_approvals",
            "payout_lines",
            "payout_holds",
            "payout_batches",
            "royalty_statement_totals",
            "payees",
            "creators",
        ):
            conn.execute(f"DELETE FROM {table}")
        seed_statements(conn, vault, {f"p{i}": str(Decimal(cents) / 100) for i, cents in enumerate(amounts)})
        conn.commit()
        drafted = None
        for restate, who in attempts:
            if restate:  # a statement recomputed between retries must not produce a second batch for the same lines
                conn.execute("UPDATE royalty_statement_totals SET paid = paid + 1 WHERE payee_id = 'p0'")
            try:
                with conn.transaction():
                    ids, _ = batches.create_batches(conn, "2026-10", f"user-{who}", vault=vault)
            except batches.BatchError as e:
                assert drafted is not None and "already in batch" in str(e)
                continue
            drafted = drafted or (ids, conn.execute("SELECT sum(paid) FROM royalty_statement_totals").fetchone()[0])
            assert ids == drafted[0]
        per_payee = conn.execute("SELECT payee_id, count(*) FROM payout_lines GROUP BY payee_id").fetchall()
        assert sorted(per_payee) == sorted((f"p{i}", 1) for i in range(len(amounts)))
        assert conn.execute("SELECT count(*), sum(total) FROM payout_batches").fetchone() == (1, drafted[1])


def seed_statements(conn, vault, amounts: dict[str, str]):
    """Payees with verified KYC (bank details in the vault) and their statement totals for 2026-10, straight into
    Postgres."""
    conn.execute("INSERT INTO creators VALUES ('cr', 'Creator') ON CONFLICT DO NOTHING")
    for payee, amount in amounts.items():
        ref = vault.put(f"payees/{payee}", {"name": payee.upper(), "iban": "DE89370400440532013000", "bic": ""})
        conn.execute(
            """INSERT INTO payees (payee_id, creator_id, kyc_status, kyc_evidence, payout_method, currency, threshold,
                                   withholding_rate, pii_ref, bank_hint, pii_digest)
               VALUES (%s, 'cr', 'verified', 'kyc://x', 'sepa', 'EUR', 0, 0, %s, 'DE…3000', '')""",
            (payee, ref),
        )
        conn.execute(
            "INSERT INTO royalty_statement_totals "
            "(period, payee_id, currency, earnings, paid, withheld, carried_out, carried_reason) "
            "VALUES ('2026-10', %s, 'EUR', %s, %s, 0, 0, '')",
            (payee, Decimal(amount), Decimal(amount)),
        )


def test_a_cancelled_batch_keeps_its_record_and_frees_its_lines_for_a_new_draft(postgres_dsn, vault):
    import psycopg

    settings_ = batches.PayoutSettings.from_env({"MM_PAYOUT_DUAL_APPROVAL_ABOVE": "1000"})
    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00", "p2": "20.00"})
        [first], _ = batches.create_batches(conn, "2026-10", "dagster", vault=vault)
        batches.approve(conn, first, "fin-1", settings_)
        with pytest.raises(batches.BatchError, match="--reason"):
            batches.cancel(conn, first, "fin-1", " ")
        batches.cancel(conn, first, "fin-1", "wrong debtor account")
        with pytest.raises(batches.BatchError, match="only a draft or approved"):
            batches.cancel(conn, first, "fin-1", "again")
        [second], _ = batches.create_batches(conn, "2026-10", "dagster", vault=vault)  # same statements, a new batch
        assert second != first and second.startswith("PB-2026-10r2-EUR-")
        assert batches.create_batches(conn, "2026-10", "dagster", vault=vault)[0] == [second]  # and a retry finds it
        assert conn.execute("SELECT batch_id, status FROM payout_batches ORDER BY created_at, batch_id").fetchall() == [
            (first, "cancelled"),
            (second, "draft"),
        ]
        assert sorted(
            conn.execute("SELECT line_id, status FROM payout_lines WHERE batch_id = %s", (first,)).fetchall()
        ) == [("2026-10:p1:EUR", "cancelled"), ("2026-10:p2:EUR", "cancelled")]
        live = conn.execute(
            "SELECT line_id, count(*) FROM payout_lines WHERE status <> 'cancelled' GROUP BY line_id"
        ).fetchall()
        assert sorted(live) == [("2026-10:p1:EUR", 1), ("2026-10:p2:EUR", 1)]
        conn.execute(
            "INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by) "
            "VALUES ('PB-by-hand', '2026-10', 'EUR', 10, 1, 'draft', 'someone')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation, match="payout_lines_live"), conn.transaction():
            conn.execute(
                "INSERT INTO payout_lines (line_id, batch_id, payee_id, amount, currency) "
                "VALUES ('2026-10:p1:EUR', 'PB-by-hand', 'p1', 10, 'EUR')"
            )  # the database refuses a second live line
        assert conn.execute("SELECT count(*) FROM audit_log WHERE action = 'payout.batch_cancelled'").fetchone() == (1,)


def taxed(catalog: str) -> str:
    """The test catalog with 15% withholding on pe-b."""
    payout = "payout: {method: sepa, currency: USD, iban: FR1420041010050500013M02606}"
    return catalog.replace(payout, payout + "\n        withholding_percent: 15")


def test_a_held_payout_is_shown_as_held_withheld_once_and_paid_once_when_released(royalty_env, tmp_path):
    """pe-b (15% withholding) is held for KYC in October and verified in November: October's statement shows the
    net as held, not paid; November pays it without withholding it again, so 15% of the earnings is withheld in all."""
    platform = royalty_env
    load_catalog(
        platform,
        taxed(
            CATALOG.replace('status: verified, evidence: "kyc://case/b"', 'status: pending, evidence: "kyc://case/b"')
        ),
    )
    load_sales(platform, tmp_path, "oct.csv", ["s1,0,2026-10-02T10:00:00Z,SKU-1,US,60,600.00,USD"])
    run_period("2026-10")
    load_catalog(platform, taxed(CATALOG))  # KYC verified
    run_period("2026-11")
    with platform.metadata.connect() as conn:
        totals = {
            period: (earnings, paid, withheld)
            for period, earnings, paid, withheld in conn.execute(
                "SELECT period, earnings, paid, withheld FROM royalty_statement_totals WHERE payee_id = 'pe-b'"
            )
        }
        # (600 − 60 × 0.10) × 10% × 33.33% = 19.79802 → 19.80 earned; 15% = 2.97 withheld once, never on the 16.83 again
        assert (
            sum(w for _, _, w in totals.values()) == Decimal("2.97") == round(Decimal("0.15") * totals["2026-10"][0], 2)
        )
        held = conn.execute(
            "SELECT paid, held, held_reason FROM royalty_statement_totals "
            "WHERE period = '2026-10' AND payee_id = 'pe-b'"
        ).fetchone()
        assert held == (0, Decimal("16.83"), "KYC pending: verify the payee's KYC before paying")
        assert conn.execute("SELECT amount, returned_period FROM payout_holds WHERE payee_id = 'pe-b'").fetchall() == [
            (Decimal("16.83"), "2026-11")
        ]
        assert totals["2026-11"][1:] == (Decimal("16.83"), 0)  # released once, in full
        lines = conn.execute(
            "SELECT line_id, amount FROM payout_lines WHERE payee_id = 'pe-b' ORDER BY line_id"
        ).fetchall()
        assert lines == [("2026-11:pe-b:USD", Decimal("16.83"))]  # never in October's batch
    lines = platform.warehouse.query_rows(
        "SELECT period, account_id, toString(paid), toString(held), toString(returned), toString(withheld), "
        "held_reason "
        "FROM royalty.statement_lines WHERE payee_id = 'pe-b' ORDER BY period, account_id"
    )
    assert [(p, a, *map(Decimal, amounts), why) for p, a, *amounts, why in lines] == [
        (
            "2026-10",
            "pe-b:CT-1",
            0,
            Decimal("16.83"),
            0,
            Decimal("2.97"),
            "KYC pending: verify the payee's KYC before paying",
        ),
        ("2026-11", "pe-b:payments", Decimal("16.83"), 0, Decimal("16.83"), 0, ""),
    ]


def test_holds_follow_the_statement_when_it_is_recomputed_before_any_batch(postgres_dsn, vault):
    """A period with only held payees has no batch, so its statements may be recomputed: the holds must follow them,
    or a payee verified in between would be paid and also get the stale hold back next period."""
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00"})
        conn.execute(
            "UPDATE royalty_statement_totals SET paid = 0, held = 10, held_reason = 'KYC pending' WHERE payee_id = 'p1'"
        )
        assert batches.create_batches(conn, "2026-10", "dagster", vault=vault) == (
            [],
            [batches.Hold("p1", "EUR", Decimal("10.00"), "KYC pending")],
        )
        assert batches.returned_amounts(conn, "2026-11") == {("p1", "EUR"): Decimal(10)}
        conn.execute(
            "UPDATE royalty_statement_totals SET paid = 10, held = 0, held_reason = '' WHERE payee_id = 'p1'"
        )  # recomputed
        [batch], holds = batches.create_batches(conn, "2026-10", "dagster", vault=vault)
        assert holds == [] and batches.returned_amounts(conn, "2026-11") == {}
        assert conn.execute("SELECT payee_id, amount FROM payout_lines").fetchall() == [("p1", Decimal("10.00"))]
        released = conn.execute(
            "SELECT details FROM audit_log WHERE action = 'payout.holds' ORDER BY seq DESC LIMIT 1"
        ).fetchone()[0]
        assert released["released"] == ["p1"] and released["payees"] == {}


def test_a_statement_that_pays_a_payee_held_since_is_refused(postgres_dsn, vault):
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00"})
        conn.execute("UPDATE payees SET kyc_status = 'rejected'")
        with pytest.raises(
            batches.BatchError,
            match=r"^the 2026-10 statement pays p1, who is now held \(KYC rejected: .*\): "
            r"run `mm royalties run 2026-10` again so the statement holds the payout$",
        ):
            batches.create_batches(conn, "2026-10", "dagster", vault=vault)
        conn.execute("UPDATE payees SET kyc_status = 'verified'")
        [batch], _ = batches.create_batches(conn, "2026-10", "dagster", vault=vault)
        conn.execute("UPDATE payees SET kyc_status = 'rejected'")  # after drafting: a retry finds the same batch
        assert batches.create_batches(conn, "2026-10", "dagster", vault=vault) == ([batch], [])


def full_width(name: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in name)


@pytest.mark.parametrize(
    "spell",
    [
        str.capitalize,
        lambda n: n.upper() + " ",
        lambda n: " " + n,
        full_width,
        lambda n: full_width(n.capitalize()) + "\u3000",
        lambda n: n + "\u00a0",
    ],
    ids=["Capital", "UPPER-trailing-space", "leading-space", "full-width", "full-width-ideographic-space", "nbsp"],
)
def test_four_eyes_compares_normalised_identities(postgres_dsn, vault, spell):
    """'carol' drafts: no spelling of carol approves it, and no spelling of dave is a second approver after dave."""
    import psycopg

    settings_ = batches.PayoutSettings.from_env({"MM_PAYOUT_DUAL_APPROVAL_ABOVE": "10"})
    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00", "p2": "20.00"})
        [batch], _ = batches.create_batches(conn, "2026-10", "carol", vault=vault)
        with pytest.raises(batches.BatchError, match=f"^carol created batch {batch} and cannot approve it"):
            batches.approve(conn, batch, spell("carol"), settings_)
        assert batches.approve(conn, batch, spell("dave"), settings_) == ("draft", 1, 2)
        with pytest.raises(batches.BatchError, match=f"^dave already approved batch {batch}"):
            batches.approve(conn, batch, "dave", settings_)
        assert batches.approve(conn, batch, "erin", settings_) == ("approved", 2, 2)
        assert conn.execute("SELECT created_by FROM payout_batches").fetchone() == ("carol",)
        assert sorted(a for (a,) in conn.execute("SELECT approver FROM payout_approvals")) == ["dave", "erin"]
        actor, details = conn.execute(
            "SELECT actor, details FROM audit_log WHERE action = 'payout.approval' ORDER BY seq LIMIT 1"
        ).fetchone()
        assert (actor, details["actor_as_given"]) == (
            "dave",
            spell("dave"),
        )  # recorded normalised, the spelling kept beside it
        with pytest.raises(batches.BatchError, match="^say who you are with --by NAME"):
            batches.cancel(conn, batch, " \u3000", "wrong account")


def test_the_execution_date_is_fixed_by_the_first_export(postgres_dsn, vault, tmp_path):
    """An export on 1 December 2026 of an October batch asks for 1 December, not 5 November; re-exported later, the
    files stay byte-identical."""
    import psycopg

    from mm_pipelines.stores.objects import LocalObjectStore

    objects = LocalObjectStore(f"file://{tmp_path / 'objects'}")
    private, _ = payouts.generate_key_pair()
    settings_ = batches.PayoutSettings.from_env(
        {"MM_PAYOUT_SIGNING_KEY": private, "MM_PAYOUT_DEBTOR_IBAN": "DE02120300000000202051"}
    )
    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00"})
        [batch], _ = batches.create_batches(conn, "2026-10", "dagster", vault=vault)
        batches.approve(conn, batch, "fin-1", settings_)
        keys = batches.export(conn, objects, batch, "fin-1", settings_, today=date(2026, 12, 1), vault=vault)
        first = {k: objects.get_bytes(k) for k in keys}
        assert (
            b"<ReqdExctnDt>2026-12-01</ReqdExctnDt>" in first[f"{batches.EXPORT_PREFIX}/{batch}/{payouts.PAIN001_NAME}"]
        )
        assert conn.execute("SELECT execution_date FROM payout_batches").fetchone() == (date(2026, 12, 1),)
        batches.export(conn, objects, batch, "fin-1", settings_, today=date(2026, 12, 9), vault=vault)
        assert {k: objects.get_bytes(k) for k in keys} == first
        with pytest.raises(batches.BatchError, match="^MM_PAYOUT_DEBTOR_IBAN is not set"):
            batches.export(conn, objects, batch, "fin-1", dataclasses.replace(settings_, debtor=None), vault=vault)


def test_payouts_list_shows_whole_batch_ids_that_paste_into_approve_and_export(postgres_dsn, vault, tmp_path):
    """`mm payouts list` piped at the default width: every id whole on one line, and the pasted id works."""
    import os
    import re
    import subprocess
    import sys

    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        seed_statements(conn, vault, {"p1": "10.00", "p2": "20.00"})
        [first], _ = batches.create_batches(
            conn, "2026-10", "dagster:3f2a1b4c-1111-2222-3333-444455556666", vault=vault
        )
        batches.cancel(conn, first, "finance-controller", "wrong debtor account")
        [second], _ = batches.create_batches(
            conn, "2026-10", "dagster:3f2a1b4c-1111-2222-3333-444455556666", vault=vault
        )
    private, _ = payouts.generate_key_pair()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {
        "MM_HOME": str(tmp_path / "mm"),
        "MM_POSTGRES_DSN": dsn_url(postgres_dsn),
        "MM_PAYOUT_SIGNING_KEY": private,
        "MM_PAYOUT_DEBTOR_IBAN": "DE02120300000000202051",
        "MM_OBJECT_STORE": f"file://{tmp_path / 'objects'}",
    }

    def mm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "mm"), *args], capture_output=True, text=True, env=env, timeout=120
        )

    listed = mm("payouts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "…" not in listed.stdout
    assert re.findall(r"PB-[\w-]+", listed.stdout) == [first, second]
    pasted = re.findall(r"PB-[\w-]+", listed.stdout)[1]
    approved = mm("payouts", "approve", pasted, "--by", "fin-1")
    assert approved.returncode == 0 and "1 of 1 approval(s), approved" in approved.stderr, approved.stderr
    exported = mm("payouts", "export", pasted, "--by", "fin-1")
    assert exported.returncode == 0 and f"wrote finance/payouts/{second}/pain.001.xml" in exported.stderr, (
        exported.stderr
    )


def test_a_recalled_batch_returns_its_lines_to_the_balance_once_and_is_never_exported_again(
    royalty_env, tmp_path, monkeypatch, vault
):
    from datetime import date

    platform = royalty_env
    private, _ = payouts.generate_key_pair()
    monkeypatch.setenv("MM_PAYOUT_SIGNING_KEY", private)
    monkeypatch.setenv("MM_PAYOUT_DEBTOR_IBAN", "DE02120300000000202051")
    make_batchable(platform, tmp_path)
    settings = batches.PayoutSettings.from_env()
    with platform.metadata.connect() as conn:
        (batch_id,) = [b for (b,) in conn.execute("SELECT batch_id FROM payout_batches")]
        for approver in ("fin-1", "fin-2"):
            if batches.batch_row(conn, batch_id)["status"] == "draft":
                batches.approve(conn, batch_id, approver, settings)
        batches.export(conn, platform.objects, batch_id, "fin-1", settings, today=date(2026, 11, 2), vault=vault)
        paid_a = conn.execute("SELECT amount FROM payout_lines WHERE payee_id = 'pe-a'").fetchone()[0]
        with pytest.raises(batches.BatchError, match="executes on 2026-11-05, so it can no longer be recalled"):
            batches.recall(conn, batch_id, "fin-2", "too late", settings, today=date(2026, 11, 5))
        assert batches.recall(conn, batch_id, "fin-2", "wrong debtor account", settings, today=date(2026, 11, 4)) == (
            "2026-11"
        )
    with platform.metadata.connect() as conn:
        with pytest.raises(batches.BatchError, match="is recalled: only an exported batch can be recalled"):
            batches.recall(conn, batch_id, "fin-2", "again", settings, today=date(2026, 11, 4))
        with pytest.raises(batches.BatchError, match="is recalled: it is never exported again"):
            batches.export(conn, platform.objects, batch_id, "fin-1", settings, vault=vault)
    run_period("2026-11")
    returned = dict(
        platform.warehouse.query_rows(
            "SELECT account_id, toString(returned) FROM royalty.statement_lines "
            "WHERE period = '2026-11' AND payee_id = 'pe-a'"
        )
    )
    assert Decimal(returned["pe-a:payments"]) == paid_a > 0
    with platform.metadata.connect() as conn:
        # November's batch pays the recalled amount (and nothing more: no November sales), once.
        november = conn.execute(
            "SELECT amount FROM payout_lines l JOIN payout_batches b USING (batch_id) "
            "WHERE b.period = '2026-11' AND l.payee_id = 'pe-a'"
        ).fetchall()
        assert november == [(paid_a,)]
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log ORDER BY seq")]
        assert actions.count("payout.batch_recalled") == 1 and audit_chain.verify(conn)[1] == []
    run_period("2026-11")  # a re-run returns nothing twice
    with platform.metadata.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM payout_lines l JOIN payout_batches b USING (batch_id) WHERE b.period = '2026-11'"
        ).fetchone() == (1,)

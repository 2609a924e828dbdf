"""Creator onboarding through the API with KYC at a fake provider (a separate HTTP server): during its outage
onboarding goes on, the payee stays held and nothing is paid; when it returns the checks are retried and decided."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from mm_pipelines.api.ui_session import SESSION_COOKIE, session_cookie
from mm_pipelines.identity.roles import Role
from mm_pipelines.royalties import bank_details, batches, kyc
from mm_pipelines.stores.pii import VaultKvPiiVault
from tests.conftest import free_port, serving
from tests.integration.conftest import VAULT_TOKEN, found_in_postgres

pytestmark = pytest.mark.integration
API_KEY = "kyc-test-key"


def _creator(payee_id: str = "pe-onboard", **payee) -> dict:
    return {
        "creators": [
            {
                "id": "cr-onboard",
                "name": "Onboarded Creator",
                "payees": [
                    {
                        "id": payee_id,
                        "name": "Payee Onboarded",
                        "payout": {"method": "sepa", "currency": "EUR", "iban": "DE89370400440532013000"},
                        **payee,
                    }
                ],
            }
        ],
        "contracts": [
            {
                "reference": "CT-ONBOARD",
                "creator": "cr-onboard",
                "currency": "EUR",
                "effective_from": "2026-01-01",
                "expires_on": "2027-12-31",
                "payees": [{"payee": payee_id, "share": 100}],
                "rules": [
                    {
                        "id": "ebook",
                        "sku": "SKU-ONBOARD",
                        "tiers": {"by": "units", "steps": [{"from": 0, "rate_percent": 12}]},
                    }
                ],
            }
        ],
    }


@pytest.fixture
def kyc_vendor():
    port = free_port()
    with serving(
        [sys.executable, "-m", "tests.fakes.kyc_provider", "--port", str(port), "--api-key", API_KEY], port, "/_control"
    ) as url:
        yield url


def _outage(url: str, on: bool) -> None:
    httpx.post(f"{url}/_control", json={"outage": on}, timeout=5).raise_for_status()


def test_onboarding_during_a_kyc_outage_holds_the_payee_until_the_provider_verifies_it(api_factory, kyc_vendor):
    api = api_factory(MM_KYC_URL=kyc_vendor, MM_KYC_API_KEY=API_KEY)
    _outage(kyc_vendor, True)
    onboarded = api.client.post("/catalog", json=_creator(), headers=api.headers("cara", Role.CREATOR_ADMIN))
    assert onboarded.status_code == 201, onboarded.text
    [check] = onboarded.json()["kyc"]
    assert (check["status"], check["attempts"]) == ("requested", 1)
    assert "503" in check["last_error"]
    detail = api.client.get("/creators/cr-onboard", headers=api.headers("vic", Role.FINANCE_VIEWER)).json()
    assert detail["payees"][0]["kyc_status"] == "pending" and detail["payees"][0]["bank_hint"] == "DE…3000"
    assert "name" not in detail["payees"][0] and "iban" not in str(detail)
    assert detail["contracts"] == ["CT-ONBOARD"]

    with psycopg.connect(api.settings.postgres_dsn) as conn:
        # A statement that would pay the payee: no batch pays an unverified payee.
        conn.execute(
            """INSERT INTO royalty_statement_totals (period, payee_id, currency, earnings, paid, withheld,
                                                     carried_out, carried_reason)
               VALUES ('2026-11', 'pe-onboard', 'EUR', 120, 120, 0, 0, '')"""
        )
        with pytest.raises(batches.BatchError, match=r"pe-onboard, who is now held \(KYC pending"):
            batches.create_batches(conn, "2026-11", "finance-bot", vault=bank_details.vault(api.settings))
        conn.rollback()
        provider = kyc.provider_for(api.settings)
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert kyc.sync(conn, provider, now=datetime.now(UTC))["retry"] == 0  # backing off: not due yet
        assert kyc.sync(conn, provider, now=later)["retry"] == 1  # due, still down
        _outage(kyc_vendor, False)
        back = kyc.sync(conn, provider, now=later + timedelta(minutes=10))
        assert (back["submitted"], back["pending"]) == (1, 1)  # taken, not decided yet
        assert kyc.sync(conn, provider)["verified"] == 1
        status, evidence = conn.execute(
            "SELECT kyc_status, kyc_evidence FROM payees WHERE payee_id = 'pe-onboard'"
        ).fetchone()
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log WHERE subject = 'payee:pe-onboard'")]
    assert status == "verified" and evidence.startswith("https://kyc.example/evidence/chk_")
    assert actions == ["kyc.requested", "kyc.submitted", "kyc.verified"]
    # The provider is told where the person's details are (the pointer), never the details.
    assert httpx.get(f"{kyc_vendor}/_control").json()["subjects"] == ["payees/pe-onboard#1"]


def test_a_declined_check_leaves_the_payee_rejected(api_factory, kyc_vendor):
    api = api_factory(MM_KYC_URL=kyc_vendor, MM_KYC_API_KEY=API_KEY)
    body = _creator("pe-decline-me")
    assert api.client.post("/catalog", json=body, headers=api.headers("cara", Role.CREATOR_ADMIN)).status_code == 201
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        provider = kyc.provider_for(api.settings)
        assert kyc.sync(conn, provider)["rejected"] == 1
        assert conn.execute("SELECT kyc_status FROM payees WHERE payee_id = 'pe-decline-me'").fetchone() == (
            "rejected",
        )
        assert batches.hold_reason("rejected", "sepa").startswith("KYC rejected")


def test_onboarding_is_validated_like_a_catalog_file_and_kyc_cannot_be_self_declared(api_factory, kyc_vendor):
    api = api_factory(MM_KYC_URL=kyc_vendor, MM_KYC_API_KEY=API_KEY)
    admin = api.headers("cara", Role.CREATOR_ADMIN)
    self_declared = api.client.post(
        "/catalog", json=_creator(kyc={"status": "verified", "evidence": "trust me"}), headers=admin
    )
    assert self_declared.status_code == 422 and "set by the KYC provider" in self_declared.json()["detail"]
    bad_iban = _creator()
    bad_iban["creators"][0]["payees"][0]["payout"]["iban"] = "DE00370400440532013000"
    refused = api.client.post("/catalog", json=bad_iban, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("request body:") and "iban" in refused.json()["detail"]
    editor = api.client.post("/catalog", json=_creator(), headers=api.headers("erin", Role.EDITOR))
    assert editor.status_code == 403
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM payees").fetchone() == (0,)


def test_without_a_provider_the_embedded_platform_verifies_at_once(api):
    onboarded = api.client.post("/catalog", json=_creator(), headers=api.headers("cara", Role.CREATOR_ADMIN))
    assert [c["status"] for c in onboarded.json()["kyc"]] == ["verified"]


def test_the_kyc_sensor_starts_a_sync_when_checks_are_due_and_the_run_decides_them(api_factory, kyc_vendor):
    from dagster import DagsterInstance, build_sensor_context

    from mm_pipelines.definitions import build_definitions

    api = api_factory(MM_KYC_URL=kyc_vendor, MM_KYC_API_KEY=API_KEY)
    _outage(kyc_vendor, True)
    assert (
        api.client.post("/catalog", json=_creator(), headers=api.headers("cara", Role.CREATOR_ADMIN)).status_code == 201
    )
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("kyc_checks_sensor")
    with DagsterInstance.ephemeral() as instance:
        tick = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=defs.resources))
        assert tick.run_requests == [] and "No KYC check is due" in tick.skip_message  # backing off after the outage
        with psycopg.connect(api.settings.postgres_dsn) as conn:
            conn.execute("UPDATE kyc_checks SET next_attempt_at = now() - interval '1 second'")
        _outage(kyc_vendor, False)
        tick = sensor.evaluate_tick(build_sensor_context(instance=instance, resources=defs.resources))
        [request] = tick.run_requests
        assert request.run_key.startswith("kyc-sync:")
        job = defs.resolve_job_def("kyc_sync_job")
        assert job.execute_in_process(instance=instance).success  # submitted, pending
        assert job.execute_in_process(instance=instance).success  # verified
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT kyc_status FROM payees WHERE payee_id = 'pe-onboard'").fetchone() == ("verified",)


def test_onboarding_keeps_payee_names_and_bank_details_in_vault_only(api_factory, kyc_vendor, vault_kv):
    """The production path: a Vault (KV v2) holds what the request sent; Postgres, audit log included, holds none
    of it; a second onboarding of the same details writes no new version; a vault that refuses stores nothing."""
    api = api_factory(
        MM_KYC_URL=kyc_vendor,
        MM_KYC_API_KEY=API_KEY,
        MM_PII_VAULT_URL=vault_kv,
        MM_PII_VAULT_TOKEN=VAULT_TOKEN,
        MM_PII_DIGEST_KEY="digest-key-for-tests",
    )
    body = _creator(
        payout={"method": "sepa", "currency": "EUR", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    )
    admin = api.headers("cara", Role.CREATOR_ADMIN)
    assert api.client.post("/catalog", json=body, headers=admin).status_code == 201
    assert api.client.post("/catalog", json=body, headers=admin).json()["loaded"]["new bank details"] == 0
    vault = VaultKvPiiVault(vault_kv, VAULT_TOKEN)
    assert vault.get("payees/pe-onboard#1") == {
        "name": "Payee Onboarded",
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
    }
    browser = TestClient(api.app, base_url="https://testserver")
    token = api.issuer.issue("cara", [Role.CREATOR_ADMIN], amr=("pwd", "otp"))
    browser.cookies = {SESSION_COOKIE: session_cookie(api.app.state.service.secret("upload"), token, 2**31)}
    page = browser.get("/ui/creators")
    assert page.status_code == 200 and "DE…3000" in page.text and "Payee Onboarded" not in page.text
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT pii_ref, bank_hint FROM payees").fetchall() == [("payees/pe-onboard#1", "DE…3000")]
        assert found_in_postgres(conn, ["Payee Onboarded", "DE89370400440532013000", "COBADEFFXXX", "0532013000"]) == []

    refused = api_factory(MM_PII_VAULT_URL=vault_kv, MM_PII_VAULT_TOKEN="hvs.revoked")
    other = _creator("pe-refused")
    other["creators"][0]["id"] = other["contracts"][0]["creator"] = "cr-refused"
    other["contracts"][0]["reference"] = "CT-REFUSED"
    answer = refused.client.post("/catalog", json=other, headers=refused.headers("cara", Role.CREATOR_ADMIN))
    assert answer.status_code == 503
    assert "nothing was onboarded" in answer.json()["detail"] and "MM_PII_VAULT_TOKEN" in answer.json()["detail"]
    with psycopg.connect(api.settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM creators WHERE creator_id = 'cr-refused'").fetchone() == (0,)

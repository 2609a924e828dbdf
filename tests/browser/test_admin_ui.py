"""The admin UI in a real browser (Debian's chromium through chromedriver) against `mm api` served by uvicorn and
a real OIDC provider: sign in with a second factor, review a flagged asset, approve a payout batch.

Screenshots of each step are written to $MM_TEST_SCREENSHOTS (default: the test's temporary folder)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx
import psycopg
import pytest

from mm_pipelines.identity.roles import Role
from tests.conftest import dsn_url, free_port, provider_token, require_service, serving
from tests.e2e.conftest import MM

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path, postgres_dsn, oidc_issuer):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_") or k.startswith("MM_TEST_")},
        "MM_HOME": str(tmp_path / "mm"),
        "MM_POSTGRES_DSN": dsn_url(postgres_dsn),
        "MM_OIDC_ISSUER": oidc_issuer,
        "MM_OIDC_CLIENT_SECRET": "browser-test",
        "MM_API_PUBLIC_URL": url,
    }
    with serving([MM, "api", "--port", str(port)], port, "/health", env) as served_url:
        yield served_url


@pytest.fixture
def browser():
    for binary in ("chromium", "chromedriver"):
        require_service(binary, shutil.which(binary), "run scripts/services/browser.sh install")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _shot(driver, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("MM_TEST_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def _arrive(driver, url: str) -> None:
    """Wait until the browser is on `url` (a click returns before the redirects it starts have run)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: d.current_url.startswith(url))


def _notice(driver, expected: str) -> str:
    """The page's notice once it says `expected` (a click's page load may still be on its way)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: expected in d.find_element(By.CLASS_NAME, "notice").text)
    return driver.find_element(By.CLASS_NAME, "notice").text


def _flagged_asset(url: str, issuer: str) -> str:
    headers = {"Authorization": f"Bearer {provider_token(issuer, 'erin', Role.EDITOR)}"}
    data = b"Call our agency: jane.doe@example.com\n"
    created = httpx.post(
        f"{url}/assets",
        headers=headers,
        json={
            "title": "Autumn teaser",
            "license": {
                "licensor": "ACME",
                "territories": ["DE"],
                "starts_on": "2026-09-01",
                "ends_on": "2027-08-31",
                "usage": ["paid"],
            },
            "file": {
                "filename": "teaser.txt",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": "text/plain",
            },
        },
    ).json()
    assert httpx.put(created["upload"]["url"], content=data, headers=created["upload"]["headers"]).status_code == 204
    asset_id = created["asset"]["asset_id"]
    done = httpx.post(f"{url}/assets/{asset_id}/versions/1/complete", headers=headers).json()
    assert done["version"]["moderation"] == "quarantined"
    return asset_id


def test_a_reviewer_signs_in_clears_a_flagged_asset_and_approves_a_payout_batch(
    served, browser, oidc_issuer, postgres_dsn, tmp_path
):
    from selenium.webdriver.common.by import By

    asset_id = _flagged_asset(served, oidc_issuer)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            """INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by)
               VALUES ('pb_ui_1', '2026-11', 'EUR', 4250.00, 12, 'draft', 'fran')"""
        )
    browser.get(f"{served}/ui/moderation")
    assert browser.current_url.startswith(oidc_issuer)  # sent to the provider to sign in
    browser.find_element(By.NAME, "username").send_keys("moira")
    claims = browser.find_element(By.NAME, "claims")
    claims.clear()
    claims.send_keys(json.dumps({"roles": ["Moderator", "Legal", "FinanceApprover"], "amr": ["pwd", "otp"]}))
    _shot(browser, tmp_path, "1-provider-sign-in")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _arrive(browser, f"{served}/ui/moderation")
    row = browser.find_element(By.ID, f"item-{asset_id}-1")
    assert "quarantined" in row.text and "email" in row.text and "jane.doe" not in row.text
    _shot(browser, tmp_path, "2-review-queue")
    row.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    _notice(browser, "approve recorded, now awaiting_legal")
    browser.find_element(By.ID, f"item-{asset_id}-1").find_element(
        By.CSS_SELECTOR, "button[value=legal_signoff]"
    ).click()
    _notice(browser, "legal_signoff recorded, now passed")
    _shot(browser, tmp_path, "3-cleared")
    browser.get(f"{served}/ui/assets/{asset_id}")
    trail = browser.find_element(By.TAG_NAME, "main").text
    assert "moderation.legal_signoff" in trail and "moira" in trail
    _shot(browser, tmp_path, "4-asset-audit-trail")
    browser.get(f"{served}/ui/payouts")
    batch = browser.find_element(By.ID, "batch-pb_ui_1")
    assert "4250.00" in batch.text and "draft" in batch.text
    batch.find_element(By.TAG_NAME, "button").click()
    _notice(browser, "1 of 1 approval(s), approved")
    _shot(browser, tmp_path, "5-payout-approved")
    with psycopg.connect(postgres_dsn) as conn:
        trail = conn.execute("SELECT actor, role, action FROM audit_log WHERE actor = 'moira' ORDER BY seq").fetchall()
        session = conn.execute("SELECT via FROM payout_approvals WHERE batch_id = 'pb_ui_1'").fetchone()
    assert trail == [
        ("moira", "Moderator", "moderation.approve"),
        ("moira", "Legal", "moderation.legal_signoff"),
        ("moira", "FinanceApprover", "payout.approval"),
        ("moira", "FinanceApprover", "payout.batch_approved"),
    ]
    assert session == ("ui",)
    cookie = browser.get_cookie("mm_session")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_a_login_without_a_second_factor_is_turned_away(served, browser, oidc_issuer, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/ui/payouts")
    browser.find_element(By.NAME, "username").send_keys("alice")
    claims = browser.find_element(By.NAME, "claims")
    claims.clear()
    claims.send_keys(json.dumps({"roles": ["FinanceApprover"], "amr": ["pwd"]}))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _arrive(browser, f"{served}/ui/callback")
    assert "A second factor is needed" in browser.find_element(By.TAG_NAME, "h1").text
    _shot(browser, tmp_path, "6-no-second-factor")
    assert browser.get_cookie("mm_session") is None


CATALOG = """\
creators:
  - id: cr-ui
    name: Creator From The UI
    payees:
      - id: pe-ui
        name: Payee From The UI
        payout: {method: sepa, currency: EUR, iban: DE89370400440532013000}
contracts:
  - reference: CT-UI
    creator: cr-ui
    currency: EUR
    effective_from: 2026-01-01
    expires_on: 2027-12-31
    payees: [{payee: pe-ui, share: 100}]
    rules:
      - id: ebook
        sku: SKU-UI
        tiers: {by: units, steps: [{from: 0, rate_percent: 12}]}
"""


def test_a_creator_admin_onboards_a_creator_and_sees_the_payee_verified(served, browser, oidc_issuer, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{served}/ui/creators")
    browser.find_element(By.NAME, "username").send_keys("cara")
    claims = browser.find_element(By.NAME, "claims")
    claims.clear()
    claims.send_keys(json.dumps({"roles": ["CreatorAdmin"], "amr": ["pwd", "hwk"]}))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _arrive(browser, f"{served}/ui/creators")
    form = browser.find_element(By.NAME, "catalog")
    form.send_keys(CATALOG.replace("iban: DE89", "iban: DE00"))  # a wrong IBAN check digit first
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/creators'] button").click()
    assert "iban" in _notice(browser, "Not onboarded:")
    _shot(browser, tmp_path, "7-onboarding-refused")
    form = browser.find_element(By.NAME, "catalog")  # what was typed is still there
    assert "DE00" in form.get_attribute("value")
    form.clear()
    form.send_keys(CATALOG)
    browser.find_element(By.CSS_SELECTOR, "form[action='/ui/creators'] button").click()
    _notice(browser, "Onboarded 1 creator(s); pe-ui: KYC verified")
    onboarded = browser.find_element(By.ID, "creator-cr-ui").text
    assert "verified" in onboarded and "DE…3000" in onboarded and "DE89" not in onboarded  # the bank hint only
    _shot(browser, tmp_path, "8-creator-onboarded")

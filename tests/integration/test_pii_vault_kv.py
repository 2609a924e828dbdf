"""VaultKvPiiVault against a fake Vault speaking the KV version 2 API (a separate HTTP server): versions, pointers,
and one clear error for a wrong token, a missing version, a wrong mount, a sealed or an unreachable vault."""

from __future__ import annotations

import httpx
import pytest

from mm_pipelines.stores.pii import PiiError, VaultKvPiiVault
from tests.conftest import free_port
from tests.integration.conftest import VAULT_TOKEN

pytestmark = pytest.mark.integration

ADA = {"name": "Ada Lovelace", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}


def test_records_round_trip_as_numbered_versions(vault_kv):
    vault = VaultKvPiiVault(vault_kv, VAULT_TOKEN)
    changed = {**ADA, "iban": "FR1420041010050500013M02606"}
    assert vault.put("payees/pe-ada", ADA) == "payees/pe-ada#1"
    assert vault.put("payees/pe-ada", changed) == "payees/pe-ada#2"
    assert vault.put("payees/pe #2/ü", ADA) == "payees/pe #2/ü#1"  # quoted on the way, whole on the way back
    assert vault.get("payees/pe-ada#1") == ADA and vault.get("payees/pe-ada#2") == changed
    assert vault.get("payees/pe #2/ü#1") == ADA
    raw = httpx.get(f"{vault_kv}/v1/secret/data/payees/pe-ada", headers={"X-Vault-Token": VAULT_TOKEN}).json()
    assert raw["data"]["data"] == changed and raw["data"]["metadata"]["version"] == 2  # as Vault's own clients see it


def test_a_missing_version_and_a_wrong_mount_say_what_to_fix(vault_kv):
    vault = VaultKvPiiVault(vault_kv, VAULT_TOKEN)
    vault.put("payees/pe-ada", ADA)
    with pytest.raises(PiiError, match=r"^no PII record 'payees/pe-ada#2' in the PII vault at .*: that version was"):
        vault.get("payees/pe-ada#2")
    with pytest.raises(PiiError, match="no PII record 'payees/nobody#1'"):
        vault.get("payees/nobody#1")
    for _ in range(10):  # Vault keeps max_versions (10 by default): the first one is gone
        vault.put("payees/pe-ada", ADA)
    with pytest.raises(PiiError, match="raise it on the mount"):
        vault.get("payees/pe-ada#1")
    with pytest.raises(PiiError, match="has no KV version 2 mount 'kv': check MM_PII_VAULT_MOUNT"):
        VaultKvPiiVault(vault_kv, VAULT_TOKEN, mount="kv").put("payees/pe-ada", ADA)


def test_a_wrong_token_names_the_setting_and_never_shows_the_token_or_the_record(vault_kv):
    vault = VaultKvPiiVault(vault_kv, "hvs.wrong-token")
    with pytest.raises(
        PiiError,
        match=r"denied writing payees/pe-ada \(403 permission denied\): check that "
        r"MM_PII_VAULT_TOKEN is valid",
    ) as caught:
        vault.put("payees/pe-ada", ADA)
    assert "wrong-token" not in str(caught.value) and "Lovelace" not in str(caught.value)
    VaultKvPiiVault(vault_kv, VAULT_TOKEN).put("payees/pe-ada", ADA)
    with pytest.raises(PiiError, match="denied reading payees/pe-ada#1"):
        vault.get("payees/pe-ada#1")


def test_a_sealed_or_unreachable_vault_is_one_line_to_retry(vault_kv):
    vault = VaultKvPiiVault(vault_kv, VAULT_TOKEN)
    httpx.post(f"{vault_kv}/_control", json={"sealed": True}).raise_for_status()
    try:
        with pytest.raises(PiiError, match=r"^PII vault unreachable at .* \(it answered 503\) while writing"):
            vault.put("payees/pe-ada", ADA)
    finally:
        httpx.post(f"{vault_kv}/_control", json={"sealed": False}).raise_for_status()
    nowhere = VaultKvPiiVault(f"http://127.0.0.1:{free_port()}", VAULT_TOKEN, timeout_s=2)
    with pytest.raises(
        PiiError,
        match=r"^PII vault unreachable at http://127.0.0.1:\d+ \(ConnectError\) while "
        r"reading payees/pe-ada#1: check MM_PII_VAULT_URL",
    ):
        nowhere.get("payees/pe-ada#1")

"""The embedded PII vault (AES-256-GCM files under MM_HOME), the pointers Postgres keeps, and the keyed digest that
tells a catalog reload whether a payee's bank details changed."""

from __future__ import annotations

import os
import stat
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_pipelines.config import ConfigError, Settings
from mm_pipelines.royalties import bank_details
from mm_pipelines.royalties.contracts import Payee
from mm_pipelines.stores.pii import LocalPiiVault, PiiError, digest, parse_ref

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
ADA = {"name": "Ada Lovelace", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}


@pytest.fixture
def vault(tmp_path) -> LocalPiiVault:
    return LocalPiiVault(tmp_path / "pii", KEY)


def test_a_record_comes_back_as_it_was_put_in_a_file_only_its_owner_reads(vault):
    ref = vault.put("payees/pe-ada", ADA)
    assert ref == "payees/pe-ada#1"
    assert vault.get(ref) == ADA
    [file] = (vault.root / "payees" / "pe-ada").iterdir()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert b"Lovelace" not in file.read_bytes() and b"DE89" not in file.read_bytes()


def test_versions_start_at_1_and_increase_per_path_and_old_versions_stay(vault):
    changed = {**ADA, "iban": "FR1420041010050500013M02606"}
    assert [vault.put("payees/pe-ada", r) for r in (ADA, changed, ADA)] == [f"payees/pe-ada#{n}" for n in (1, 2, 3)]
    assert vault.put("payees/pe-bob", ADA) == "payees/pe-bob#1"
    assert vault.get("payees/pe-ada#1") == ADA and vault.get("payees/pe-ada#2") == changed


def test_a_wrong_key_cannot_read_a_record(vault, tmp_path):
    ref = vault.put("payees/pe-ada", ADA)
    with pytest.raises(PiiError, match=r"^PII record 'payees/pe-ada#1' is unreadable: .*the vault key changed"):
        LocalPiiVault(tmp_path / "pii", bytes(32)).get(ref)


def test_an_edited_file_is_refused(vault):
    ref = vault.put("payees/pe-ada", ADA)
    file = vault.root / "payees" / "pe-ada" / "@1.enc"
    data = bytearray(file.read_bytes())
    data[-1] ^= 1
    file.write_bytes(bytes(data))
    with pytest.raises(PiiError, match="unreadable: .*edited or swapped"):
        vault.get(ref)


def test_files_swapped_between_versions_or_paths_are_refused(vault):
    vault.put("payees/pe-ada", ADA)
    vault.put("payees/pe-ada", {**ADA, "iban": "FR1420041010050500013M02606"})
    vault.put("payees/pe-bob", {**ADA, "name": "Bob"})
    ada, bob = vault.root / "payees" / "pe-ada", vault.root / "payees" / "pe-bob"
    one, two = (ada / "@1.enc").read_bytes(), (ada / "@2.enc").read_bytes()
    (ada / "@1.enc").write_bytes(two)
    (ada / "@2.enc").write_bytes(one)
    for ref in ("payees/pe-ada#1", "payees/pe-ada#2"):
        with pytest.raises(PiiError, match="unreadable"):
            vault.get(ref)
    (bob / "@1.enc").write_bytes(one)  # a valid record of another payee
    with pytest.raises(PiiError, match="unreadable"):
        vault.get("payees/pe-bob#1")


def test_a_missing_or_malformed_pointer_says_what_is_wrong(vault):
    vault.put("payees/pe-ada", ADA)
    with pytest.raises(PiiError, match=r"^no PII record 'payees/pe-ada#2' in .*: it was never written there"):
        vault.get("payees/pe-ada#2")
    with pytest.raises(PiiError, match="no PII record 'payees/pe-nobody#1'"):
        vault.get("payees/pe-nobody#1")
    for bad in ("payees/pe-ada", "payees/pe-ada#0", "payees/pe-ada#x", "#1", "payees/../etc#1", "/abs#1"):
        with pytest.raises(PiiError, match="not a PII (pointer|vault path)"):
            vault.get(bad)
    with pytest.raises(PiiError, match="not a PII vault path"):
        vault.put("payees/../../escape", ADA)
    with pytest.raises(PiiError, match="must map text to text"):
        vault.put("payees/pe-ada", {"name": 7})
    with pytest.raises(PiiError, match="32 bytes"):
        LocalPiiVault(vault.root, b"short")


def test_a_path_may_hold_any_text_and_a_pointer_splits_at_its_last_hash(vault):
    ref = vault.put("payees/pe #1 ü/x", ADA)
    assert ref == "payees/pe #1 ü/x#1" and parse_ref(ref) == ("payees/pe #1 ü/x", 1)
    assert vault.get(ref) == ADA
    # A path below another one never takes its versions' places, however its parts are named.
    assert [vault.put(p, ADA) for p in ("a/b", "a/b/@1.enc", "a/b/1.enc", "a/b")] == [
        "a/b#1",
        "a/b/@1.enc#1",
        "a/b/1.enc#1",
        "a/b#2",
    ]
    assert vault.get("a/b#1") == vault.get("a/b/@1.enc#1") == ADA


SEGMENT = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and s not in (".", ".."))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(SEGMENT, min_size=1, max_size=3).map("/".join), record=st.dictionaries(st.text(), st.text()))
def test_property_any_record_of_text_round_trips(vault, path, record):
    ref = vault.put(path, record)
    assert parse_ref(ref)[0] == path
    assert vault.get(ref) == record


def test_the_digest_is_the_same_for_the_same_record_whatever_the_key_order():
    reordered = {"bic": ADA["bic"], "iban": ADA["iban"], "name": ADA["name"]}
    assert digest(KEY, "payees/pe-ada", ADA) == digest(KEY, "payees/pe-ada", reordered)


@given(
    record=st.dictionaries(st.sampled_from(["name", "iban", "bic"]), st.text(max_size=30), min_size=1),
    field=st.sampled_from(["name", "iban", "bic"]),
    change=st.text(min_size=1, max_size=5),
)
def test_property_any_change_gives_another_digest(record, field, change):
    changed = {**record, field: record.get(field, "") + change}
    assert digest(KEY, "payees/p", record) != digest(KEY, "payees/p", changed)
    assert digest(KEY, "payees/p", record) != digest(KEY, "payees/q", record)  # two payees, one account: unlinkable
    assert digest(KEY, "payees/p", record) != digest(bytes(32), "payees/p", record)  # keyed


def test_what_a_person_sees_of_an_account_is_its_country_and_last_four():
    assert bank_details.bank_hint("sepa", "DE89370400440532013000") == "DE…3000"
    assert bank_details.bank_hint("manual", "DE89370400440532013000") == ""
    assert bank_details.bank_hint("manual", "") == ""


def payee(iban: str = ADA["iban"], name: str = ADA["name"], method: str = "sepa") -> Payee:
    return Payee("pe-ada", "cr-1", name, "verified", "kyc://x", method, "EUR", iban, "", Decimal(0), Decimal(0))


def test_only_changed_bank_details_write_a_new_version(vault):
    first = bank_details.store_payees(vault, KEY, [payee()], {})["pe-ada"]
    assert (first.pii_ref, first.bank_hint) == ("payees/pe-ada#1", "DE…3000")
    stored = {"pe-ada": (first.pii_ref, first.pii_digest)}
    assert bank_details.store_payees(vault, KEY, [payee()], stored)["pe-ada"] == first  # unchanged: no new version
    assert not (vault.root / "payees" / "pe-ada" / "@2.enc").exists()
    moved = bank_details.store_payees(vault, KEY, [payee("FR1420041010050500013M02606")], stored)["pe-ada"]
    assert (moved.pii_ref, moved.bank_hint) == ("payees/pe-ada#2", "FR…2606")
    manual = bank_details.store_payees(vault, KEY, [payee("", method="manual")], stored)["pe-ada"]
    assert manual.bank_hint == "" and vault.get(manual.pii_ref) == {"name": ADA["name"], "iban": "", "bic": ""}
    assert bank_details.resolve(vault, first.pii_ref, "pe-ada") == bank_details.BankDetails(
        ADA["name"], ADA["iban"], ""
    )
    with pytest.raises(PiiError, match="^payee pe-ada has no bank details pointer"):
        bank_details.resolve(vault, None, "pe-ada")


def test_the_embedded_vault_lives_under_mm_home_with_a_kept_key_and_vault_needs_its_token(tmp_path):
    development = Settings.from_env({"MM_HOME": str(tmp_path)})
    ref = bank_details.vault(development).put("payees/pe-ada", ADA)
    assert (tmp_path / "pii" / "payees" / "pe-ada" / "@1.enc").exists()
    assert bank_details.vault(development).get(ref) == ADA  # the same key in the next process
    assert bank_details.digest_key(development) == bank_details.digest_key(development) != b""
    assert os.path.exists(tmp_path / "identity" / "pii-digest.key")
    configured = Settings.from_env({"MM_HOME": str(tmp_path), "MM_PII_DIGEST_KEY": "k1"})
    assert bank_details.digest_key(configured) == b"k1"
    with pytest.raises(ConfigError, match="MM_PII_VAULT_URL is set but MM_PII_VAULT_TOKEN is not"):
        bank_details.vault(Settings.from_env({"MM_HOME": str(tmp_path), "MM_PII_VAULT_URL": "http://vault:8200"}))
    remote = bank_details.vault(
        Settings.from_env(
            {"MM_HOME": str(tmp_path), "MM_PII_VAULT_URL": "http://vault:8200", "MM_PII_VAULT_TOKEN": "hvs.s3cr3t"}
        )
    )
    assert repr(remote) == "VaultKvPiiVault(http://vault:8200, mount='secret')"  # never the token

"""A payee's bank details (legal name, IBAN, BIC) are kept only in the PII vault, at `payees/<payee_id>`, one version
per change. Postgres holds the pointer to the version in force, a hint a person may see (`DE…3000`) and a keyed
digest that tells a reload whether anything changed; a payout line records the version it was drafted with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mm_pipelines.config import ConfigError, Settings
from mm_pipelines.identity.development import local_secret
from mm_pipelines.royalties.contracts import Payee
from mm_pipelines.stores.pii import LocalPiiVault, PiiError, PiiVault, VaultKvPiiVault, digest


@dataclass(frozen=True)
class BankDetails:
    name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class Pointer:
    """What Postgres keeps of a payee's bank details."""

    pii_ref: str
    bank_hint: str
    pii_digest: str


def payee_path(payee_id: str) -> str:
    return f"payees/{payee_id}"


def record(name: str, iban: str, bic: str) -> dict[str, str]:
    return {"name": name, "iban": iban, "bic": bic}


def bank_hint(payout_method: str, iban: str) -> str:
    """What a person may see of the account: its country and last four characters (DE…3000); nothing for manual."""
    return f"{iban[:2]}…{iban[-4:]}" if payout_method == "sepa" and iban else ""


def store_payees(
    vault: PiiVault, digest_key: bytes, payees: Iterable[Payee], current: Mapping[str, tuple[str, str]]
) -> dict[str, Pointer]:
    """Each payee's pointer, hint and digest; a new vault version only where the details differ from `current`
    (payee → stored pointer and digest), so reloading an unchanged catalog writes nothing to the vault."""
    out = {}
    for p in payees:
        path, details = payee_path(p.payee_id), record(p.name, p.iban, p.bic)
        keyed = digest(digest_key, path, details)
        ref, stored_digest = current.get(p.payee_id, (None, None))
        if stored_digest != keyed:
            ref = vault.put(path, details)
        out[p.payee_id] = Pointer(ref, bank_hint(p.payout_method, p.iban), keyed)
    return out


def resolve(vault: PiiVault, ref: str | None, payee_id: str) -> BankDetails:
    """The bank details a pointer names; a pointer that is missing or names something else is a PiiError."""
    if not ref:
        raise PiiError(f"payee {payee_id} has no bank details pointer: load the payee again (mm royalties load)")
    found = vault.get(ref)
    try:
        return BankDetails(found["name"], found["iban"], found["bic"])
    except KeyError as e:
        raise PiiError(f"PII record {ref!r} has no {e.args[0]}: it is not a payee's bank details") from None


def vault(settings: Settings) -> PiiVault:
    """Vault KV v2 when MM_PII_VAULT_URL is set; otherwise the embedded vault in $MM_HOME/pii (never in production)."""
    if settings.pii_vault_url:
        if settings.pii_vault_token is None:
            raise ConfigError(
                "MM_PII_VAULT_URL is set but MM_PII_VAULT_TOKEN is not: set the token of a policy that may create, "
                f"update and read {settings.pii_vault_mount}/data/payees/*"
            )
        return VaultKvPiiVault(
            settings.pii_vault_url, settings.pii_vault_token.get_secret_value(), settings.pii_vault_mount
        )
    return LocalPiiVault(settings.home / "pii", hashlib.sha256(local_secret(settings, "pii")).digest())


def digest_key(settings: Settings) -> bytes:
    """The key of the payees' pii_digest: MM_PII_DIGEST_KEY, or a key kept under MM_HOME (never in production).
    Changing it makes the next load write every payee's details again, once."""
    if settings.pii_digest_key is not None:
        return settings.pii_digest_key.get_secret_value().encode()
    return local_secret(settings, "pii-digest")

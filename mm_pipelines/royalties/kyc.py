"""KYC checks through a provider: the platform keeps only the provider's reference and verdict (a pointer to the
evidence it holds). While a check is open, or the provider is down, the payee stays held: nothing is paid to a
payee whose KYC is not verified (batches.hold_reason).

    requested ─submit→ submitted ─poll→ verified | rejected
    (a failed submit stays requested and is retried with exponential backoff)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import psycopg

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.config import ConfigError, Settings

MAX_BACKOFF = timedelta(hours=1)


class ProviderUnavailable(Exception):
    """The provider could not take or answer the request now (timeout, 5xx, 429): try again later."""


@dataclass(frozen=True)
class Verdict:
    status: str  # pending | verified | rejected
    evidence_ref: str | None = None


class KycProvider(Protocol):
    name: str

    def submit(self, payee_id: str, subject_ref: str) -> str:
        """Start a check of the person whose details the PII vault holds at `subject_ref` (the payee's pointer, never
        the details themselves); the provider's reference."""

    def verdict(self, reference: str) -> Verdict: ...


def request_check(conn: psycopg.Connection, payee_id: str, actor: str, role: str) -> None:
    """Open a check for a payee (again, if it had one); the payee is pending until the provider verifies it."""
    conn.execute(
        """INSERT INTO kyc_checks (payee_id) VALUES (%s)
           ON CONFLICT (payee_id) DO UPDATE SET status = 'requested', provider_reference = NULL, evidence_ref = NULL,
             attempts = 0, last_error = NULL, requested_at = now(), next_attempt_at = now(), decided_at = NULL""",
        (payee_id,),
    )
    conn.execute("UPDATE payees SET kyc_status = 'pending', kyc_evidence = '' WHERE payee_id = %s", (payee_id,))
    audit(conn, actor, "kyc.requested", f"payee:{payee_id}", role=role)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … up to an hour between attempts."""
    return min(MAX_BACKOFF, timedelta(seconds=30 * 2 ** max(0, attempts - 1)))


def sync(conn: psycopg.Connection, provider: KycProvider, now: datetime | None = None, limit: int = 100) -> dict:
    """Submit the requested checks that are due and ask for the verdicts of submitted ones; (counts by outcome).

    Each check is its own transaction, so one payee's failure never holds back another's."""
    now = now or datetime.now(UTC)
    counts = {"submitted": 0, "verified": 0, "rejected": 0, "pending": 0, "retry": 0}
    due = conn.execute(
        """SELECT k.payee_id, k.status, k.provider_reference, k.attempts, p.pii_ref
           FROM kyc_checks k JOIN payees p USING (payee_id)
           WHERE (k.status = 'requested' AND k.next_attempt_at <= %s) OR k.status = 'submitted'
           ORDER BY k.next_attempt_at, k.payee_id LIMIT %s""",
        (now, limit),
    ).fetchall()
    conn.commit()
    for payee_id, status, reference, attempts, pii_ref in due:
        with conn.transaction():
            try:
                if status == "requested":
                    reference = provider.submit(payee_id, pii_ref)
                    conn.execute(
                        """UPDATE kyc_checks SET status = 'submitted', provider_reference = %s, attempts = attempts + 1,
                                  last_error = NULL WHERE payee_id = %s""",
                        (reference, payee_id),
                    )
                    audit(
                        conn,
                        provider.name,
                        "kyc.submitted",
                        f"payee:{payee_id}",
                        {"reference": reference},
                        role="system",
                    )
                    counts["submitted"] += 1
                found = provider.verdict(reference)  # automated checks often answer at once
            except ProviderUnavailable as e:
                conn.execute(
                    """UPDATE kyc_checks SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s
                       WHERE payee_id = %s""",
                    (str(e), now + backoff(attempts + 1), payee_id),
                )
                counts["retry"] += 1
                continue
            if found.status == "pending":
                counts["pending"] += 1
                continue
            _decide(conn, provider, payee_id, found)
            counts[found.status] += 1
    return counts


def _decide(conn: psycopg.Connection, provider: KycProvider, payee_id: str, found: Verdict) -> None:
    conn.execute(
        "UPDATE kyc_checks SET status = %s, evidence_ref = %s, decided_at = now() WHERE payee_id = %s",
        (found.status, found.evidence_ref, payee_id),
    )
    conn.execute(
        "UPDATE payees SET kyc_status = %s, kyc_evidence = %s WHERE payee_id = %s",
        (found.status, found.evidence_ref or "", payee_id),
    )
    audit(
        conn,
        provider.name,
        f"kyc.{found.status}",
        f"payee:{payee_id}",
        {"evidence": found.evidence_ref},
        role="system",
    )


def due(conn: psycopg.Connection, now: datetime | None = None) -> int:
    """Checks that a sync would act on now."""
    return conn.execute(
        """SELECT count(*) FROM kyc_checks
           WHERE (status = 'requested' AND next_attempt_at <= %s) OR status = 'submitted'""",
        (now or datetime.now(UTC),),
    ).fetchone()[0]


def checks(conn: psycopg.Connection, payee_ids: list[str]) -> dict[str, Mapping]:
    rows = conn.execute(
        """SELECT payee_id, status, provider_reference, attempts, last_error, next_attempt_at FROM kyc_checks
           WHERE payee_id = ANY(%s)""",
        (payee_ids,),
    ).fetchall()
    keys = ("payee_id", "status", "provider_reference", "attempts", "last_error", "next_attempt_at")
    return {row[0]: dict(zip(keys, row)) for row in rows}


class HttpKycProvider:
    """A KYC vendor's REST API: POST /v1/checks, GET /v1/checks/{id}; bearer API key."""

    name = "kyc-provider"

    def __init__(self, url: str, api_key: str, timeout_s: float = 5.0):
        self.url, self.api_key, self.timeout_s = url.rstrip("/"), api_key, timeout_s

    def _call(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        try:
            response = httpx.request(
                method,
                f"{self.url}{path}",
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=self.timeout_s,
                **kwargs,
            )
        except httpx.HTTPError as e:
            raise ProviderUnavailable(f"KYC provider unreachable ({type(e).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"KYC provider answered {response.status_code}")
        if response.status_code >= 400:  # kept for a retry too: the fix (a key, an account) is made elsewhere
            raise ProviderUnavailable(
                f"KYC provider refused the request ({response.status_code}): check MM_KYC_API_KEY"
            )
        return response.json()

    def submit(self, payee_id: str, subject_ref: str) -> str:
        return str(self._call("POST", "/v1/checks", json={"external_id": payee_id, "subject": subject_ref})["id"])

    def verdict(self, reference: str) -> Verdict:
        body = self._call("GET", f"/v1/checks/{reference}")
        status = {"approved": "verified", "declined": "rejected"}.get(body.get("status"), "pending")
        return Verdict(status, body.get("evidence_url"))


class DevelopmentKycProvider:
    """The embedded platform's stand-in: verifies every check at once, with evidence that says so."""

    name = "development-kyc"

    def submit(self, payee_id: str, subject_ref: str) -> str:
        return f"dev-{payee_id}"

    def verdict(self, reference: str) -> Verdict:
        return Verdict("verified", f"kyc://development/{reference}")


def provider_for(settings: Settings) -> KycProvider:
    if settings.kyc_url:
        key = settings.kyc_api_key.get_secret_value() if settings.kyc_api_key else ""
        return HttpKycProvider(settings.kyc_url, key)
    if settings.production:
        raise ConfigError("MM_KYC_URL is not set: production checks KYC with the provider, never the development one")
    return DevelopmentKycProvider()

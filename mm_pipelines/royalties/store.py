"""Royalty records in the metadata DB (Postgres): catalog, periods, payout batches and the audit log.

Postgres holds what people manage and approve (payees' bank details only as pointers into the PII vault,
royalties.bank_details); ClickHouse holds what is computed from it (snapshots, the ledger, statements). Every
state change that Finance may be asked about writes a hash-chained audit record in the same transaction, so a
record exists exactly when the change does.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.royalties import bank_details
from mm_pipelines.royalties.contracts import (
    Catalog,
    CatalogError,
    Contract,
    contract_from_document,
    overlapping_contracts,
)
from mm_pipelines.stores.pii import PiiVault

# --- catalog ----------------------------------------------------------------------------------------------


def stored_contracts(conn: psycopg.Connection) -> list[Contract]:
    contracts = []
    for doc, version in conn.execute("SELECT document, version FROM contracts ORDER BY reference"):
        contract = contract_from_document(doc)
        contract.__dict__["version"] = version  # hashed when stored; re-hashing 50,000 documents cost seconds
        contracts.append(contract)
    return contracts


def save_catalog(
    conn: psycopg.Connection,
    catalog: Catalog,
    source: str,
    actor: str,
    role: str = "",
    *,
    vault: PiiVault,
    digest_key: bytes,
) -> dict[str, int]:
    """Upsert everything in the catalog in one transaction; contracts keep every version they ever had. Payees' bank
    details go to the vault first (a new version only where they changed), then their pointers to Postgres: a failed
    transaction leaves an unused version, never a pointer to nothing."""
    replaced = {c.reference for c in catalog.contracts}
    others = [c for c in stored_contracts(conn) if c.reference not in replaced]
    problem = overlapping_contracts(others + catalog.contracts)
    if problem:
        a, b, target, payee = problem
        raise CatalogError(
            f"{source}: contract {b!r} overlaps stored contract {a!r} for {target} and payee {payee!r}: "
            "end one before the other starts"
        )
    stored = {
        pid: (ref, digest)
        for pid, ref, digest in conn.execute(
            "SELECT payee_id, pii_ref, pii_digest FROM payees WHERE payee_id = ANY(%s)",
            ([p.payee_id for p in catalog.payees],),
        )
    }
    pointers = bank_details.store_payees(vault, digest_key, catalog.payees, stored)
    new_details = sum(1 for pid, p in pointers.items() if stored.get(pid, (None, None))[1] != p.pii_digest)
    with conn.cursor() as cur:  # executemany pipelines the statements: a 100k-payee catalog loads in seconds
        cur.executemany(
            "INSERT INTO creators VALUES (%s, %s) ON CONFLICT (creator_id) DO UPDATE SET name = EXCLUDED.name",
            [(c.creator_id, c.name) for c in catalog.creators],
        )
        cur.executemany(
            """INSERT INTO payees (payee_id, creator_id, kyc_status, kyc_evidence, payout_method, currency, threshold,
                                   withholding_rate, pii_ref, bank_hint, pii_digest)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (payee_id) DO UPDATE SET creator_id = EXCLUDED.creator_id,
               kyc_status = EXCLUDED.kyc_status, kyc_evidence = EXCLUDED.kyc_evidence,
               payout_method = EXCLUDED.payout_method, currency = EXCLUDED.currency, threshold = EXCLUDED.threshold,
               withholding_rate = EXCLUDED.withholding_rate, pii_ref = EXCLUDED.pii_ref,
               bank_hint = EXCLUDED.bank_hint, pii_digest = EXCLUDED.pii_digest""",
            [
                (
                    p.payee_id,
                    p.creator_id,
                    p.kyc_status,
                    p.kyc_evidence,
                    p.payout_method,
                    p.currency,
                    p.threshold,
                    p.withholding_rate,
                    pointers[p.payee_id].pii_ref,
                    pointers[p.payee_id].bank_hint,
                    pointers[p.payee_id].pii_digest,
                )
                for p in catalog.payees
            ],
        )
        refs = [c.reference for c in catalog.contracts]
        current = dict(
            conn.execute("SELECT reference, version FROM contracts WHERE reference = ANY(%s)", (refs,)).fetchall()
        )
        changed = [c for c in catalog.contracts if current.get(c.reference) != c.version]
        cur.executemany(
            "INSERT INTO contract_versions (reference, version, document) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(c.reference, c.version, Jsonb(c.document())) for c in changed],
        )
        cur.executemany(
            """INSERT INTO contracts (reference, creator_id, version, document) VALUES (%s, %s, %s, %s)
               ON CONFLICT (reference) DO UPDATE SET creator_id = EXCLUDED.creator_id, version = EXCLUDED.version,
               document = EXCLUDED.document, loaded_at = now()""",
            [(c.reference, c.creator_id, c.version, Jsonb(c.document())) for c in changed],
        )
        cur.executemany(
            """INSERT INTO licenses VALUES (%s, %s, %s, %s) ON CONFLICT (asset_id, licensor)
               DO UPDATE SET expires_on = EXCLUDED.expires_on, on_expiry = EXCLUDED.on_expiry""",
            [(lic.asset_id, lic.licensor, lic.expires_on, lic.on_expiry) for lic in catalog.licenses],
        )
    audit(
        conn,
        actor,
        "catalog.load",
        source,
        role=role,
        details={
            "creators": len(catalog.creators),
            "payees": len(catalog.payees),
            "bank_details_versions": new_details,
            "contracts": len(catalog.contracts),
            "licenses": len(catalog.licenses),
            "contract_versions": {
                c.reference: {"version": c.version, "previous": current.get(c.reference)} for c in changed
            },
        },
    )
    return {
        "creators": len(catalog.creators),
        "payees": len(catalog.payees),
        "new bank details": new_details,
        "contracts": len(catalog.contracts),
        "new versions": len(changed),
        "licenses": len(catalog.licenses),
    }


# --- periods ----------------------------------------------------------------------------------------------


def period_status(conn: psycopg.Connection, period: str) -> str:
    row = conn.execute("SELECT status FROM royalty_periods WHERE period = %s", (period,)).fetchone()
    return row[0] if row else "open"


def close_period(conn: psycopg.Connection, period: str, actor: str) -> bool:
    done = conn.execute(
        """INSERT INTO royalty_periods (period, status, closed_at, closed_by) VALUES (%s, 'closed', now(), %s)
           ON CONFLICT (period) DO UPDATE SET status = 'closed', closed_at = now(), closed_by = EXCLUDED.closed_by
           WHERE royalty_periods.status <> 'closed'""",
        (period, actor),
    ).rowcount
    if done:
        audit(conn, actor, "period.close", period)
    return bool(done)


def record_period_rates(conn: psycopg.Connection, period: str, rates: dict[str, Decimal]) -> dict[str, Decimal]:
    """Rates are recorded once per period and never change afterwards: a re-run reuses them."""
    for currency, rate in rates.items():
        conn.execute(
            "INSERT INTO period_fx_rates (period, currency, rate_to_reporting) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (period, currency, rate),
        )
    return {
        c: r
        for c, r in conn.execute("SELECT currency, rate_to_reporting FROM period_fx_rates WHERE period = %s", (period,))
    }


def expiring_licenses(conn: psycopg.Connection, today: date, within_days: int) -> list[tuple]:
    """Licenses expiring within the window that have no workflow yet for that expiry date."""
    return conn.execute(
        """SELECT l.asset_id, l.licensor, l.expires_on, l.on_expiry FROM licenses l
           LEFT JOIN license_workflows w USING (asset_id, licensor, expires_on)
           WHERE w.asset_id IS NULL AND l.expires_on <= %s::date + %s ORDER BY l.expires_on, l.asset_id""",
        (today, within_days),
    ).fetchall()


def record_license_workflow(
    conn: psycopg.Connection, asset_id: str, licensor: str, expires_on: date, action: str, run_id: str
) -> bool:
    started = conn.execute(
        "INSERT INTO license_workflows (asset_id, licensor, expires_on, action, run_id) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (asset_id, licensor, expires_on, action, run_id),
    ).rowcount
    if started:
        audit(
            conn,
            "license_expiry_sensor",
            f"license.{action}_requested",
            f"{asset_id}/{licensor}",
            {"expires_on": expires_on, "run_id": run_id},
        )
    return bool(started)

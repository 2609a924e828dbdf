"""Payout batch lifecycle: draft → approved → exported → confirmed, recorded in Postgres with an audit trail.

A batch is one period and one currency. Its id is derived from its lines, so creating it again (a retried
run, a second click) finds the same batch; a statement line can be in one batch only (the line id is the
primary key), so a payee is never paid twice for the same period.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date, timezone
from decimal import Decimal

import psycopg

from mm_pipelines.royalties import payouts
from mm_pipelines.royalties.money import CENT, add_months
from mm_pipelines.royalties.store import audit, period_status
from mm_pipelines.stores.objects import ObjectStore

EXPORT_PREFIX = "finance/payouts"
CONFIRMATION_PREFIX = "finance/confirmations"


class BatchError(ValueError):
    """A lifecycle step that cannot happen now; the message says why and what to do."""


@dataclass(frozen=True)
class PayoutSettings:
    """Read when a step runs (never at import): MM_PAYOUT_* variables."""

    dual_approval_above: Decimal
    debtor: payouts.Debtor
    signing_key: str | None
    verify_key: str | None

    @classmethod
    def from_env(cls, environ: dict | None = None) -> PayoutSettings:
        env = os.environ if environ is None else environ
        raw = env.get("MM_PAYOUT_DUAL_APPROVAL_ABOVE", "10000")
        try:
            above = Decimal(raw)
        except ArithmeticError:
            raise BatchError(f"MM_PAYOUT_DUAL_APPROVAL_ABOVE={raw!r} is not an amount") from None
        debtor = payouts.Debtor(
            env.get("MM_PAYOUT_DEBTOR_NAME", "Market and Media Ltd"),
            env.get("MM_PAYOUT_DEBTOR_IBAN", "DE02120300000000202051"),
            env.get("MM_PAYOUT_DEBTOR_BIC") or None,
        )
        return cls(above, debtor, env.get("MM_PAYOUT_SIGNING_KEY") or None, env.get("MM_PAYOUT_VERIFY_KEY") or None)


@dataclass(frozen=True)
class Hold:
    payee_id: str
    currency: str
    amount: Decimal
    reason: str


def hold_reason(kyc_status: str, payout_method: str) -> str | None:
    if kyc_status != "verified":
        return f"KYC {kyc_status}: verify the payee's KYC before paying"
    if payout_method != "sepa":
        # Held, not paid elsewhere: the amount returns to the balance, so paying it by hand would pay it twice.
        return "payout method manual: no bank details to pay from; switch the payee to sepa to release it"
    return None


def create_batches(conn: psycopg.Connection, period: str, actor: str) -> tuple[list[str], list[Hold]]:
    """Draft one batch per currency from the period's statements (royalty_statement_totals); hold the rest."""
    rows = conn.execute(
        """SELECT t.payee_id, t.currency, t.paid, p.name, p.iban, p.bic, p.kyc_status, p.payout_method
           FROM royalty_statement_totals t JOIN payees p USING (payee_id)
           WHERE t.period = %s AND t.paid > 0 ORDER BY t.payee_id""",
        (period,),
    ).fetchall()
    lines: dict[str, list[payouts.PayoutLine]] = {}
    holds = []
    for payee_id, currency, paid, name, iban, bic, kyc, method in rows:
        reason = hold_reason(kyc, method)
        if reason:
            holds.append(Hold(payee_id, currency, paid, reason))
            continue
        lines.setdefault(currency, []).append(payouts.PayoutLine(  # numeric keeps the scale it was given: make it cents
            f"{period}:{payee_id}:{currency}", payee_id, name, iban, bic or None, paid.quantize(CENT), currency, f"Royalties {period} {payee_id}"
        ))
    returned = add_months(period, 1)
    held = [h for h in holds if conn.execute(
        "INSERT INTO payout_holds VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (period, h.payee_id, h.currency, h.amount, h.reason, returned)).rowcount]
    if held:
        audit(conn, actor, "payout.holds", period, {"returned_period": returned, "payees": {
            h.payee_id: {"amount": h.amount, "currency": h.currency, "reason": h.reason} for h in held}})
    batch_ids = []
    for currency, batch_lines in sorted(lines.items()):
        payouts.validate_lines(batch_lines)
        bid = payouts.batch_id(period, currency, batch_lines)
        cancelled = conn.execute("SELECT count(*) FROM payout_batches WHERE period = %s AND currency = %s AND status = 'cancelled'",
                                 (period, currency)).fetchone()[0]
        if cancelled:  # a new draft after a cancellation, even with the same lines, is a new batch: PB-<period>r<n>-…
            bid = payouts.batch_id(f"{period}r{cancelled + 1}", currency, batch_lines)
        total = sum((line.amount for line in batch_lines), Decimal(0))
        created = conn.execute(
            """INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by)
               VALUES (%s, %s, %s, %s, %s, 'draft', %s) ON CONFLICT DO NOTHING""",
            (bid, period, currency, total, len(batch_lines), actor),
        ).rowcount
        if created:
            taken = conn.execute("SELECT line_id, batch_id FROM payout_lines WHERE line_id = ANY(%s) AND status <> 'cancelled' LIMIT 1",
                                 ([line.line_id for line in batch_lines],)).fetchone()
            if taken:
                raise BatchError(f"{taken[0]} is already in batch {taken[1]}: a statement is paid once; cancel that batch first")
            with conn.cursor().copy("COPY payout_lines (line_id, batch_id, payee_id, amount, currency) FROM STDIN") as copy:
                for line in batch_lines:
                    copy.write_row((line.line_id, bid, line.payee_id, line.amount, currency))
            audit(conn, actor, "payout.batch_created", bid, {"period": period, "currency": currency, "total": total, "lines": len(batch_lines)})
        batch_ids.append(bid)
    return batch_ids, holds


def batch_row(conn: psycopg.Connection, batch_id: str) -> dict:
    row = conn.execute(
        "SELECT batch_id, period, currency, total, line_count, status, created_by, created_at, exported_at FROM payout_batches WHERE batch_id = %s",
        (batch_id,),
    ).fetchone()
    if row is None:
        raise BatchError(f"no payout batch {batch_id!r}: list them with `mm payouts list`")
    keys = ("batch_id", "period", "currency", "total", "line_count", "status", "created_by", "created_at", "exported_at")
    return dict(zip(keys, row))


def approve(conn: psycopg.Connection, batch_id: str, approver: str, settings: PayoutSettings) -> tuple[str, int, int]:
    """Record an approval; (status, approvals, approvals needed). Four eyes: the creator cannot approve."""
    batch = batch_row(conn, batch_id)
    if batch["status"] != "draft":
        raise BatchError(f"batch {batch_id} is {batch['status']}, only a draft can be approved")
    if approver == batch["created_by"]:
        raise BatchError(f"{approver} created batch {batch_id} and cannot approve it: another Finance approver must")
    needed = 2 if batch["total"] > settings.dual_approval_above else 1
    added = conn.execute("INSERT INTO payout_approvals (batch_id, approver) VALUES (%s, %s) ON CONFLICT DO NOTHING", (batch_id, approver)).rowcount
    if not added:
        raise BatchError(f"{approver} already approved batch {batch_id}: a second approval must come from someone else")
    audit(conn, approver, "payout.approval", batch_id, {"total": batch["total"], "needed": needed})
    count = conn.execute("SELECT count(*) FROM payout_approvals WHERE batch_id = %s", (batch_id,)).fetchone()[0]
    if count >= needed:
        conn.execute("UPDATE payout_batches SET status = 'approved' WHERE batch_id = %s", (batch_id,))
        audit(conn, approver, "payout.batch_approved", batch_id, {"approvers": count})
        return "approved", count, needed
    return "draft", count, needed


def cancel(conn: psycopg.Connection, batch_id: str, actor: str, reason: str) -> None:
    """Void a batch before it leaves for the bank: its lines stay, marked cancelled, and the period's statements
    can be recomputed and drafted again."""
    batch = batch_row(conn, batch_id)
    if batch["status"] not in ("draft", "approved"):
        raise BatchError(f"batch {batch_id} is {batch['status']}: only a draft or approved batch can be cancelled; "
                         "an exported one is settled by Finance's confirmation (failed lines return to the balance)")
    if not reason.strip():
        raise BatchError("say why the batch is cancelled (--reason): it goes into the audit log")
    conn.execute("UPDATE payout_batches SET status = 'cancelled' WHERE batch_id = %s", (batch_id,))
    conn.execute("UPDATE payout_lines SET status = 'cancelled' WHERE batch_id = %s", (batch_id,))
    audit(conn, actor, "payout.batch_cancelled", batch_id, {"reason": reason, "was": batch["status"], "total": batch["total"]})


def payout_lines(conn: psycopg.Connection, batch_id: str) -> list[payouts.PayoutLine]:
    rows = conn.execute(
        """SELECT l.line_id, l.payee_id, p.name, p.iban, p.bic, l.amount, l.currency, b.period
           FROM payout_lines l JOIN payees p USING (payee_id) JOIN payout_batches b USING (batch_id)
           WHERE l.batch_id = %s ORDER BY l.line_id""",
        (batch_id,),
    ).fetchall()
    return [payouts.PayoutLine(lid, pid, name, iban, bic or None, Decimal(amount).quantize(CENT), cur, f"Royalties {period} {pid}")
            for lid, pid, name, iban, bic, amount, cur, period in rows]


def export_files(batch: dict, lines: list[payouts.PayoutLine], settings: PayoutSettings) -> dict[str, bytes]:
    """The batch's files, byte-identical on every export (times come from the batch record)."""
    files = {payouts.CSV_NAME: payouts.payouts_csv(batch["batch_id"], lines)}
    if batch["currency"] == "EUR":  # SEPA credit transfers are EUR only; other currencies are paid from the CSV
        files[payouts.PAIN001_NAME] = payouts.pain001_xml(
            batch["batch_id"], settings.debtor, lines, execution_date=date.fromisoformat(f"{add_months(batch['period'], 1)}-05"),
            created_at=batch["created_at"].astimezone(timezone.utc).replace(microsecond=0),
        )
    return files


def signing_key(settings: PayoutSettings):
    if not settings.signing_key:
        raise BatchError("MM_PAYOUT_SIGNING_KEY is not set: create a key pair with `mm payouts keygen` and set it (Vault/KMS in production)")
    return payouts.load_signing_key(settings.signing_key)


def export(conn: psycopg.Connection, objects: ObjectStore, batch_id: str, actor: str, settings: PayoutSettings) -> list[str]:
    """Write the files, the manifest and its signature under finance/payouts/<batch>/; returns the keys."""
    batch = batch_row(conn, batch_id)
    if batch["status"] not in ("approved", "exported"):
        raise BatchError(f"batch {batch_id} is {batch['status']}: it needs its approvals before export")
    key = signing_key(settings)
    lines = payout_lines(conn, batch_id)
    files = export_files(batch, lines, settings)
    meta = {"period": batch["period"], "currency": batch["currency"], "total": str(batch["total"]),
            "lines": str(batch["line_count"]), "public_key": payouts.public_key_text(key)}
    manifest = payouts.manifest(batch_id, files, meta)
    files[payouts.MANIFEST_NAME] = manifest
    files[payouts.SIGNATURE_NAME] = payouts.sign_manifest(manifest, key)
    keys = []
    for name, data in files.items():
        keys.append(f"{EXPORT_PREFIX}/{batch_id}/{name}")
        objects.put_bytes(keys[-1], data)
    digest = hashlib.sha256(manifest).hexdigest()
    if batch["status"] == "approved":
        conn.execute("UPDATE payout_batches SET status = 'exported', exported_at = now(), manifest_sha256 = %s WHERE batch_id = %s", (digest, batch_id))
    audit(conn, actor, "payout.export", batch_id, {"manifest_sha256": digest, "files": sorted(files)})
    return keys


def verify(objects: ObjectStore, batch_id: str, verify_key: str) -> list[str]:
    prefix = f"{EXPORT_PREFIX}/{batch_id}/"
    names = [k.removeprefix(prefix) for k in objects.list_keys(prefix)]
    if payouts.MANIFEST_NAME not in names or payouts.SIGNATURE_NAME not in names:
        return [f"{prefix}: no signed manifest (was batch {batch_id} exported?)"]
    files = {n: objects.get_bytes(prefix + n) for n in names if n not in (payouts.MANIFEST_NAME, payouts.SIGNATURE_NAME)}
    return payouts.verify_export(files, objects.get_bytes(prefix + payouts.MANIFEST_NAME), objects.get_bytes(prefix + payouts.SIGNATURE_NAME),
                                 payouts.load_verify_key(verify_key))


def returned_period(conn: psycopg.Connection, period: str) -> str:
    """The first open period after `period`: where a failed or held payout returns to the balance."""
    nxt = add_months(period, 1)
    while period_status(conn, nxt) == "closed":
        nxt = add_months(nxt, 1)
    return nxt


def post_confirmation(conn: psycopg.Connection, file_key: str, data: bytes, actor: str) -> dict:
    """Post Finance's paid/failed lines once per file; failed lines return to the payee's balance."""
    digest = hashlib.sha256(data).hexdigest()
    seen = conn.execute("SELECT sha256 FROM payout_confirmations WHERE file_key = %s", (file_key,)).fetchone()
    if seen:
        if seen[0] != digest:
            raise BatchError(f"{file_key} was already posted with different contents: send corrections as a new file")
        return {"posted": 0, "already": True}
    bid, confirmations = payouts.parse_confirmation(file_key, data)
    batch = batch_row(conn, bid)
    if batch["status"] not in ("exported", "confirmed"):
        raise BatchError(f"{file_key}: batch {bid} is {batch['status']}, confirmations apply to exported batches")
    known = {lid: status for lid, status in conn.execute("SELECT line_id, status FROM payout_lines WHERE batch_id = %s", (bid,))}
    back = returned_period(conn, batch["period"])
    posted = {"paid": 0, "failed": 0}
    for c in confirmations:
        if c.line_id not in known:
            raise BatchError(f"{file_key}: line {c.line_id!r} is not in batch {bid}")
        if known[c.line_id] != "pending":
            if known[c.line_id] != c.status:
                raise BatchError(f"{file_key}: line {c.line_id} was already confirmed {known[c.line_id]}, not {c.status}")
            continue
        conn.execute(
            "UPDATE payout_lines SET status = %s, paid_on = %s, reason = %s, returned_period = %s WHERE line_id = %s AND batch_id = %s",
            (c.status, c.paid_on, c.reason, back if c.status == "failed" else None, c.line_id, bid),
        )
        posted[c.status] += 1
    conn.execute("INSERT INTO payout_confirmations VALUES (%s, %s, %s, %s)", (file_key, bid, digest, len(confirmations)))
    pending = conn.execute("SELECT count(*) FROM payout_lines WHERE batch_id = %s AND status = 'pending'", (bid,)).fetchone()[0]
    if pending == 0:
        conn.execute("UPDATE payout_batches SET status = 'confirmed' WHERE batch_id = %s", (bid,))
    audit(conn, actor, "payout.confirmation", bid, {"file": file_key, "sha256": digest, **posted, "pending": pending, "returned_period": back})
    return {"batch_id": bid, **posted, "pending": pending, "already": False}


def returned_amounts(conn: psycopg.Connection, period: str) -> dict[tuple[str, str], Decimal]:
    """(payee, currency) → failed payouts and holds that return to the balance in this period."""
    out: dict[tuple[str, str], Decimal] = {}
    for payee, currency, amount in conn.execute(
        """SELECT payee_id, currency, amount FROM payout_lines WHERE status = 'failed' AND returned_period = %s
           UNION ALL SELECT payee_id, currency, amount FROM payout_holds WHERE returned_period = %s""",
        (period, period),
    ):
        out[(payee, currency)] = out.get((payee, currency), Decimal(0)) + Decimal(amount)
    return out

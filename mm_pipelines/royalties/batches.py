"""Payout batch lifecycle: draft → approved → exported → confirmed, recorded in Postgres with an audit trail.

A batch is one period and one currency. Its id is derived from its lines, so creating it again (a retried
run, a second click) finds the same batch; a statement line can be in one batch only (the line id is the
primary key), so a payee is never paid twice for the same period.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

from mm_pipelines.audit.chain import append as audit
from mm_pipelines.config import ConfigError, Settings
from mm_pipelines.royalties import bank_details, payouts
from mm_pipelines.royalties.money import CENT, add_months
from mm_pipelines.royalties.store import period_status
from mm_pipelines.stores.objects import ObjectStore
from mm_pipelines.stores.pii import PiiVault

EXPORT_PREFIX = "finance/payouts"
CONFIRMATION_PREFIX = "finance/confirmations"


class BatchError(ValueError):
    """A lifecycle step that cannot happen now; the message says why and what to do."""


def identity(name: str) -> str:
    """A person's name as compared and recorded: NFKC, case-folded, trimmed, so that 'carol', 'Carol ', 'CAROL' and
    full-width 'Ｃａｒｏｌ' are one person to the four-eyes rule."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


def same_person(a: str, b: str) -> bool:
    """The one identity comparison of the payout lifecycle (authenticated subjects will replace typed names here)."""
    return identity(a) == identity(b)


def _actor(name: str) -> str:
    actor = identity(name)
    if not actor:
        raise BatchError("say who you are with --by NAME: every payout step records who took it")
    return actor


def _as_given(name: str) -> dict:
    """The name as typed, for the audit record, when it differs from the identity recorded as the actor."""
    return {"actor_as_given": name} if name != identity(name) else {}


@dataclass(frozen=True)
class PayoutSettings:
    """Read when a step runs (never at import): MM_PAYOUT_* variables."""

    dual_approval_above: Decimal
    debtor: payouts.Debtor | None  # None when MM_PAYOUT_DEBTOR_IBAN is unset: approvals work, SEPA exports refuse
    signing_key: str | None
    verify_key: str | None
    execution_day: int  # day of the month after the period on which transfers are asked for
    approvals_through_api_only: bool = False  # production: approvals bind to an authenticated FinanceApprover

    @classmethod
    def from_env(cls, environ: dict | None = None) -> PayoutSettings:
        try:
            settings = Settings.from_env(environ)
        except ConfigError as e:
            raise BatchError(str(e)) from None
        return cls.from_settings(settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> PayoutSettings:
        iban = settings.payout_debtor_iban
        debtor = payouts.Debtor(settings.payout_debtor_name, iban, settings.payout_debtor_bic) if iban else None
        key = settings.payout_signing_key.get_secret_value() if settings.payout_signing_key else None
        return cls(
            settings.payout_dual_approval_above,
            debtor,
            key,
            settings.payout_verify_key,
            settings.payout_execution_day,
            settings.production,
        )


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


def create_batches(
    conn: psycopg.Connection, period: str, actor: str, *, vault: PiiVault
) -> tuple[list[str], list[Hold]]:
    """Draft one batch per currency from what the period's statements pay (royalty_statement_totals), and record
    what they hold: the holds of the period become exactly the statements' held amounts, so a hold returns once.
    Each line records the version of the bank details it was drafted with (a retry keeps it), and that is what the
    export pays, whatever the payee's details become afterwards."""
    given, actor = actor, _actor(actor)
    rows = conn.execute(
        """SELECT t.payee_id, t.currency, t.paid, t.held, t.held_reason, p.pii_ref, p.kyc_status, p.payout_method
           FROM royalty_statement_totals t JOIN payees p USING (payee_id)
           WHERE t.period = %s AND (t.paid > 0 OR t.held > 0) ORDER BY t.payee_id""",
        (period,),
    ).fetchall()
    drafted = dict(
        conn.execute(
            "SELECT line_id, pii_ref FROM payout_lines WHERE line_id LIKE %s AND status <> 'cancelled'",
            (f"{period}:%",),
        ).fetchall()
    )
    lines: dict[str, list[payouts.PayoutLine]] = {}
    refs: dict[str, str] = {}
    holds = []
    for payee_id, currency, paid, held, held_reason, pii_ref, kyc, method in rows:
        if held > 0:
            holds.append(Hold(payee_id, currency, held.quantize(CENT), held_reason))
            continue
        line_id = f"{period}:{payee_id}:{currency}"  # a drafted line was payable when drafted: a retry keeps its batch
        if line_id not in drafted and (reason := hold_reason(kyc, method)):
            raise BatchError(
                f"the {period} statement pays {payee_id}, who is now held ({reason}): "
                f"run `mm royalties run {period}` again so the statement holds the payout"
            )
        refs[line_id] = drafted.get(line_id) or pii_ref
        lines.setdefault(currency, []).append(
            _line(line_id, payee_id, paid, currency, period, bank_details.resolve(vault, refs[line_id], payee_id))
        )
    _record_holds(conn, period, holds, actor, given)
    batch_ids = []
    for currency, batch_lines in sorted(lines.items()):
        payouts.validate_lines(batch_lines)
        bid = payouts.batch_id(period, currency, batch_lines)
        cancelled = conn.execute(
            "SELECT count(*) FROM payout_batches WHERE period = %s AND currency = %s AND status = 'cancelled'",
            (period, currency),
        ).fetchone()[0]
        if cancelled:  # a new draft after a cancellation, even with the same lines, is a new batch: PB-<period>r<n>-…
            bid = payouts.batch_id(f"{period}r{cancelled + 1}", currency, batch_lines)
        total = sum((line.amount for line in batch_lines), Decimal(0))
        created = conn.execute(
            """INSERT INTO payout_batches (batch_id, period, currency, total, line_count, status, created_by)
               VALUES (%s, %s, %s, %s, %s, 'draft', %s) ON CONFLICT DO NOTHING""",
            (bid, period, currency, total, len(batch_lines), actor),
        ).rowcount
        if created:
            taken = conn.execute(
                "SELECT line_id, batch_id FROM payout_lines WHERE line_id = ANY(%s) AND status <> 'cancelled' LIMIT 1",
                ([line.line_id for line in batch_lines],),
            ).fetchone()
            if taken:
                raise BatchError(
                    f"{taken[0]} is already in batch {taken[1]}: a statement is paid once; cancel that batch first"
                )
            with conn.cursor().copy(
                "COPY payout_lines (line_id, batch_id, payee_id, amount, currency, pii_ref) FROM STDIN"
            ) as copy:
                for line in batch_lines:
                    copy.write_row((line.line_id, bid, line.payee_id, line.amount, currency, refs[line.line_id]))
            audit(
                conn,
                actor,
                "payout.batch_created",
                bid,
                {"period": period, "currency": currency, "total": total, "lines": len(batch_lines), **_as_given(given)},
            )
        batch_ids.append(bid)
    return batch_ids, holds


def _record_holds(conn: psycopg.Connection, period: str, holds: list[Hold], actor: str, given: str) -> None:
    """Make payout_holds for the period match the statements (recomputed while no batch exists): a stale hold would
    return money the statement now pays, or lose money it now holds."""
    back = returned_period(conn, period)
    stored = {
        (p, c): (a, r)
        for p, c, a, r in conn.execute(
            "SELECT payee_id, currency, amount, reason FROM payout_holds WHERE period = %s", (period,)
        )
    }
    wanted = {(h.payee_id, h.currency): (h.amount, h.reason) for h in holds}
    if stored == wanted:
        return
    conn.execute("DELETE FROM payout_holds WHERE period = %s", (period,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO payout_holds VALUES (%s, %s, %s, %s, %s, %s)",
            [(period, h.payee_id, h.currency, h.amount, h.reason, back) for h in holds],
        )
    audit(
        conn,
        actor,
        "payout.holds",
        period,
        {
            "returned_period": back,
            "payees": {h.payee_id: {"amount": h.amount, "currency": h.currency, "reason": h.reason} for h in holds},
            "released": sorted(p for p, _ in stored.keys() - wanted.keys()),
            **_as_given(given),
        },
    )


def batch_row(conn: psycopg.Connection, batch_id: str) -> dict:
    keys = (
        "batch_id",
        "period",
        "currency",
        "total",
        "line_count",
        "status",
        "created_by",
        "created_at",
        "exported_at",
        "execution_date",
    )
    row = conn.execute(f"SELECT {', '.join(keys)} FROM payout_batches WHERE batch_id = %s", (batch_id,)).fetchone()
    if row is None:
        raise BatchError(f"no payout batch {batch_id!r}: list them with `mm payouts list`")
    return dict(zip(keys, row))


def approve(
    conn: psycopg.Connection,
    batch_id: str,
    approver: str,
    settings: PayoutSettings,
    *,
    role: str = "",
    via: str = "cli",
) -> tuple[str, int, int]:
    """Record an approval; (status, approvals, approvals needed). Four eyes: the creator cannot approve.

    `via` is "api" or "ui" when `approver` is an authenticated subject acting as `role`, "cli" for a name typed on
    the embedded platform, which production refuses."""
    if via not in ("api", "ui") and settings.approvals_through_api_only:
        raise BatchError(
            "in production payout approvals bind to an authenticated FinanceApprover: approve through the API "
            f"(POST /payouts/batches/{batch_id}/approvals) or the admin UI"
        )
    given, approver = approver, _actor(approver)
    batch = batch_row(conn, batch_id)
    if batch["status"] != "draft":
        raise BatchError(f"batch {batch_id} is {batch['status']}, only a draft can be approved")
    if same_person(approver, batch["created_by"]):
        raise BatchError(f"{approver} created batch {batch_id} and cannot approve it: another Finance approver must")
    needed = 2 if batch["total"] > settings.dual_approval_above else 1
    earlier = [a for (a,) in conn.execute("SELECT approver FROM payout_approvals WHERE batch_id = %s", (batch_id,))]
    if (
        any(same_person(approver, a) for a in earlier)
        or not conn.execute(
            "INSERT INTO payout_approvals (batch_id, approver, via) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (batch_id, approver, via),
        ).rowcount
    ):
        raise BatchError(f"{approver} already approved batch {batch_id}: a second approval must come from someone else")
    audit(
        conn,
        approver,
        "payout.approval",
        batch_id,
        {"total": batch["total"], "needed": needed, "via": via, **_as_given(given)},
        role=role,
    )
    count = conn.execute("SELECT count(*) FROM payout_approvals WHERE batch_id = %s", (batch_id,)).fetchone()[0]
    if count >= needed:
        conn.execute("UPDATE payout_batches SET status = 'approved' WHERE batch_id = %s", (batch_id,))
        audit(conn, approver, "payout.batch_approved", batch_id, {"approvers": count}, role=role)
        return "approved", count, needed
    return "draft", count, needed


def cancel(conn: psycopg.Connection, batch_id: str, actor: str, reason: str) -> None:
    """Void a batch before it leaves for the bank: its lines stay, marked cancelled, and the period's statements
    can be recomputed and drafted again."""
    given, actor = actor, _actor(actor)
    batch = batch_row(conn, batch_id)
    if batch["status"] not in ("draft", "approved"):
        raise BatchError(
            f"batch {batch_id} is {batch['status']}: only a draft or approved batch can be cancelled; "
            "an exported one is settled by Finance's confirmation (failed lines return to the balance)"
        )
    if not reason.strip():
        raise BatchError("say why the batch is cancelled (--reason): it goes into the audit log")
    conn.execute("UPDATE payout_batches SET status = 'cancelled' WHERE batch_id = %s", (batch_id,))
    conn.execute("UPDATE payout_lines SET status = 'cancelled' WHERE batch_id = %s", (batch_id,))
    audit(
        conn,
        actor,
        "payout.batch_cancelled",
        batch_id,
        {"reason": reason, "was": batch["status"], "total": batch["total"], **_as_given(given)},
    )


def recall(
    conn: psycopg.Connection,
    batch_id: str,
    actor: str,
    reason: str,
    settings: PayoutSettings,
    today: date | None = None,
    *,
    role: str = "",
    via: str = "cli",
) -> str:
    """Take an exported batch back before the bank executes it; the period its lines return to the balance in.

    The lines return once, in the first open period after the batch's, as a failed payout does (already net of
    withholding, so nothing is withheld again). After the execution date, or once Finance confirmed any line, the
    money may have left: only confirmations settle the batch then."""
    if via not in ("api", "ui") and settings.approvals_through_api_only:
        raise BatchError(
            "in production a recall binds to an authenticated FinanceApprover: recall through the API "
            f"(POST /payouts/batches/{batch_id}/recall)"
        )
    if not reason.strip():
        raise BatchError("say why the batch is recalled (--reason): it goes into the audit log")
    given, actor = actor, _actor(actor)
    batch = conn.execute(
        "SELECT status, period, total, execution_date FROM payout_batches WHERE batch_id = %s FOR UPDATE",
        (batch_id,),
    ).fetchone()
    if batch is None:
        raise BatchError(f"no payout batch {batch_id!r}: list them with `mm payouts list`")
    status, period, total, executes = batch
    if status != "exported":
        raise BatchError(
            f"batch {batch_id} is {status}: only an exported batch can be recalled"
            + ("; a draft or approved one is cancelled (mm payouts cancel)" if status in ("draft", "approved") else "")
        )
    today = today or datetime.now(UTC).date()
    if executes is not None and today >= executes:
        raise BatchError(
            f"batch {batch_id} executes on {executes.isoformat()}, so it can no longer be recalled: "
            "Finance's confirmation settles it (failed lines return to the balance)"
        )
    confirmed = conn.execute(
        "SELECT count(*) FROM payout_lines WHERE batch_id = %s AND status <> 'pending'", (batch_id,)
    ).fetchone()[0]
    if confirmed:
        raise BatchError(
            f"Finance already confirmed {confirmed} line(s) of batch {batch_id}: it is settled by confirmations"
        )
    back = returned_period(conn, period)
    lines = conn.execute(
        "UPDATE payout_lines SET status = 'recalled', reason = %s, returned_period = %s WHERE batch_id = %s",
        (reason, back, batch_id),
    ).rowcount
    conn.execute("UPDATE payout_batches SET status = 'recalled' WHERE batch_id = %s", (batch_id,))
    audit(
        conn,
        actor,
        "payout.batch_recalled",
        batch_id,
        {"reason": reason, "total": total, "lines": lines, "returned_period": back, "via": via, **_as_given(given)},
        role=role,
    )
    return back


def _line(
    line_id: str, payee_id: str, amount: Decimal, currency: str, period: str, bank: bank_details.BankDetails
) -> payouts.PayoutLine:
    return payouts.PayoutLine(  # numeric keeps the scale it was given: make it cents
        line_id,
        payee_id,
        bank.name,
        bank.iban,
        bank.bic or None,
        Decimal(amount).quantize(CENT),
        currency,
        f"Royalties {period} {payee_id}",
    )


def payout_lines(conn: psycopg.Connection, batch_id: str, *, vault: PiiVault) -> list[payouts.PayoutLine]:
    """The batch's lines with the bank details each was drafted with (its pii_ref), not the payee's current ones."""
    rows = conn.execute(
        """SELECT l.line_id, l.payee_id, l.pii_ref, l.amount, l.currency, b.period
           FROM payout_lines l JOIN payout_batches b USING (batch_id) WHERE l.batch_id = %s ORDER BY l.line_id""",
        (batch_id,),
    ).fetchall()
    return [
        _line(lid, pid, amount, cur, period, bank_details.resolve(vault, ref, pid))
        for lid, pid, ref, amount, cur, period in rows
    ]


def execution_date(batch: dict, settings: PayoutSettings, today: date) -> date | None:
    """A SEPA (EUR) batch's execution date: set by its first export, then kept, so a re-export is byte-identical."""
    if batch["currency"] != "EUR":
        return None
    return batch["execution_date"] or payouts.execution_date(batch["period"], settings.execution_day, today)


def export_files(batch: dict, lines: list[payouts.PayoutLine], settings: PayoutSettings) -> dict[str, bytes]:
    """The batch's files, byte-identical on every export (times and the execution date come from the batch record)."""
    files = {payouts.CSV_NAME: payouts.payouts_csv(batch["batch_id"], lines)}
    if batch["currency"] == "EUR":  # SEPA credit transfers are EUR only; other currencies are paid from the CSV
        debtor = settings.debtor
        if debtor is None:
            raise BatchError(
                "MM_PAYOUT_DEBTOR_IBAN is not set: set it to the IBAN of the account payouts are paid from "
                "(MM_PAYOUT_DEBTOR_NAME and MM_PAYOUT_DEBTOR_BIC name its holder and bank)"
            )
        if problem := payouts.iban_problem(debtor.iban):
            raise BatchError(
                f"MM_PAYOUT_DEBTOR_IBAN: {problem.split('; ')[0]}; "
                "set it to the IBAN of the account payouts are paid from"
            )
        files[payouts.PAIN001_NAME] = payouts.pain001_xml(
            batch["batch_id"],
            debtor,
            lines,
            execution_date=batch["execution_date"],
            created_at=batch["created_at"].astimezone(UTC).replace(microsecond=0),
        )
    return files


def signing_key(settings: PayoutSettings):
    if not settings.signing_key:
        raise BatchError(
            "MM_PAYOUT_SIGNING_KEY is not set: "
            "create a key pair with `mm payouts keygen` and set it (Vault/KMS in production)"
        )
    return payouts.load_signing_key(settings.signing_key)


def export(
    conn: psycopg.Connection,
    objects: ObjectStore,
    batch_id: str,
    actor: str,
    settings: PayoutSettings,
    today: date | None = None,
    *,
    vault: PiiVault,
) -> list[str]:
    """Write the files, the manifest and its signature under finance/payouts/<batch>/; returns the keys.
    `today` (UTC by default) bounds the execution date of a first export."""
    given, actor = actor, _actor(actor)
    batch = batch_row(conn, batch_id)
    if batch["status"] not in ("approved", "exported"):
        raise BatchError(
            f"batch {batch_id} is {batch['status']}: "
            + ("it needs its approvals before export" if batch["status"] == "draft" else "it is never exported again")
        )
    key = signing_key(settings)
    lines = payout_lines(conn, batch_id, vault=vault)
    batch["execution_date"] = execution_date(batch, settings, today or datetime.now(UTC).date())
    files = export_files(batch, lines, settings)
    meta = {
        "period": batch["period"],
        "currency": batch["currency"],
        "total": str(batch["total"]),
        "lines": str(batch["line_count"]),
        "public_key": payouts.public_key_text(key),
    }
    manifest = payouts.manifest(batch_id, files, meta)
    files[payouts.MANIFEST_NAME] = manifest
    files[payouts.SIGNATURE_NAME] = payouts.sign_manifest(manifest, key)
    keys = []
    for name, data in files.items():
        keys.append(f"{EXPORT_PREFIX}/{batch_id}/{name}")
        objects.put_bytes(keys[-1], data)
    digest = hashlib.sha256(manifest).hexdigest()
    if batch["status"] == "approved":
        conn.execute(
            "UPDATE payout_batches SET status = 'exported', exported_at = now(), manifest_sha256 = %s, "
            "execution_date = %s WHERE batch_id = %s",
            (digest, batch["execution_date"], batch_id),
        )
    audit(
        conn,
        actor,
        "payout.export",
        batch_id,
        {
            "manifest_sha256": digest,
            "files": sorted(files),
            "execution_date": batch["execution_date"],
            **_as_given(given),
        },
    )
    return keys


def verify(objects: ObjectStore, batch_id: str, verify_key: str) -> list[str]:
    prefix = f"{EXPORT_PREFIX}/{batch_id}/"
    names = [k.removeprefix(prefix) for k in objects.list_keys(prefix)]
    if payouts.MANIFEST_NAME not in names or payouts.SIGNATURE_NAME not in names:
        return [f"{prefix}: no signed manifest (was batch {batch_id} exported?)"]
    files = {
        n: objects.get_bytes(prefix + n) for n in names if n not in (payouts.MANIFEST_NAME, payouts.SIGNATURE_NAME)
    }
    return payouts.verify_export(
        files,
        objects.get_bytes(prefix + payouts.MANIFEST_NAME),
        objects.get_bytes(prefix + payouts.SIGNATURE_NAME),
        payouts.load_verify_key(verify_key),
    )


def returned_period(conn: psycopg.Connection, period: str) -> str:
    """The first open period after `period`: where a failed or held payout returns to the balance."""
    nxt = add_months(period, 1)
    while period_status(conn, nxt) == "closed":
        nxt = add_months(nxt, 1)
    return nxt


def post_confirmation(conn: psycopg.Connection, file_key: str, data: bytes, actor: str) -> dict:
    """Post Finance's paid/failed lines once per file; failed lines return to the payee's balance."""
    given, actor = actor, _actor(actor)
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
    known = {
        lid: status
        for lid, status in conn.execute("SELECT line_id, status FROM payout_lines WHERE batch_id = %s", (bid,))
    }
    back = returned_period(conn, batch["period"])
    posted = {"paid": 0, "failed": 0}
    for c in confirmations:
        if c.line_id not in known:
            raise BatchError(f"{file_key}: line {c.line_id!r} is not in batch {bid}")
        if known[c.line_id] != "pending":
            if known[c.line_id] != c.status:
                raise BatchError(
                    f"{file_key}: line {c.line_id} was already confirmed {known[c.line_id]}, not {c.status}"
                )
            continue
        conn.execute(
            "UPDATE payout_lines SET status = %s, paid_on = %s, reason = %s, returned_period = %s "
            "WHERE line_id = %s AND batch_id = %s",
            (c.status, c.paid_on, c.reason, back if c.status == "failed" else None, c.line_id, bid),
        )
        posted[c.status] += 1
    conn.execute(
        "INSERT INTO payout_confirmations VALUES (%s, %s, %s, %s)", (file_key, bid, digest, len(confirmations))
    )
    pending = conn.execute(
        "SELECT count(*) FROM payout_lines WHERE batch_id = %s AND status = 'pending'", (bid,)
    ).fetchone()[0]
    if pending == 0:
        conn.execute("UPDATE payout_batches SET status = 'confirmed' WHERE batch_id = %s", (bid,))
    audit(
        conn,
        actor,
        "payout.confirmation",
        bid,
        {"file": file_key, "sha256": digest, **posted, "pending": pending, "returned_period": back, **_as_given(given)},
    )
    return {"batch_id": bid, **posted, "pending": pending, "already": False}


def returned_amounts(conn: psycopg.Connection, period: str) -> dict[tuple[str, str], Decimal]:
    """(payee, currency) → failed or recalled payouts and holds that return to the balance in this period."""
    out: dict[tuple[str, str], Decimal] = {}
    for payee, currency, amount in conn.execute(
        """SELECT payee_id, currency, amount FROM payout_lines
           WHERE status IN ('failed', 'recalled') AND returned_period = %s
           UNION ALL SELECT payee_id, currency, amount FROM payout_holds WHERE returned_period = %s""",
        (period, period),
    ):
        out[(payee, currency)] = out.get((payee, currency), Decimal(0)) + Decimal(amount)
    return out

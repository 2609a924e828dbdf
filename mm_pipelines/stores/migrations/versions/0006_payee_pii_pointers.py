"""Payees' legal names and bank details move to the PII vault: payees keep a pointer (pii_ref), what a person may see
(bank_hint) and a keyed digest (pii_digest); payout lines record the version they were drafted with (pii_ref).

The values go into the vault the settings configure when the migration runs (MM_PII_VAULT_URL, or the embedded one
under MM_HOME), and come back from it on downgrade. The table is rewritten afterwards, so that the dropped values do
not stay behind in its files.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POINTERS = ("pii_ref", "bank_hint", "pii_digest")
PII = ("name", "iban", "bic")


def _settings():
    from mm_pipelines.config import Settings

    return Settings.from_env()


def upgrade() -> None:
    from mm_pipelines.royalties import bank_details
    from mm_pipelines.royalties.contracts import Payee

    for column in POINTERS:
        op.add_column("payees", sa.Column(column, sa.Text(), nullable=True))
    op.add_column("payout_lines", sa.Column("pii_ref", sa.Text(), nullable=True))
    conn = op.get_bind()
    payees = [
        Payee(*row)
        for row in conn.execute(
            sa.text(
                "SELECT payee_id, creator_id, name, kyc_status, kyc_evidence, payout_method, currency, iban, bic, "
                "threshold, withholding_rate FROM payees ORDER BY payee_id"
            )
        )
    ]
    if payees:  # the vault is only needed (and its embedded key only made) when there is something to move
        settings = _settings()
        pointers = bank_details.store_payees(
            bank_details.vault(settings), bank_details.digest_key(settings), payees, {}
        )
        conn.execute(
            sa.text("UPDATE payees SET pii_ref = :ref, bank_hint = :hint, pii_digest = :digest WHERE payee_id = :id"),
            [{"id": p, "ref": x.pii_ref, "hint": x.bank_hint, "digest": x.pii_digest} for p, x in pointers.items()],
        )
        # Lines drafted before this revision pay the details as they are now, pinned from here on.
        conn.execute(
            sa.text("UPDATE payout_lines l SET pii_ref = p.pii_ref FROM payees p WHERE p.payee_id = l.payee_id")
        )
    for column in POINTERS:
        op.alter_column("payees", column, nullable=False)
    for column in PII:
        op.drop_column("payees", column)
    # A dropped column's values stay in the old row versions until the table is rewritten; CLUSTER rewrites it (in
    # this transaction) with the dropped columns as nulls, and the old files go at commit.
    op.execute("CLUSTER payees USING payees_pkey")


def downgrade() -> None:
    from mm_pipelines.royalties import bank_details

    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT payee_id, creator_id, kyc_status, kyc_evidence, payout_method, currency, threshold, "
            "withholding_rate, pii_ref FROM payees ORDER BY payee_id"
        )
    ).all()
    vault = bank_details.vault(_settings()) if rows else None
    restored = []
    for payee_id, creator_id, kyc_status, kyc_evidence, method, currency, threshold, withholding, ref in rows:
        details = bank_details.resolve(vault, ref, payee_id)
        restored.append(
            {
                "payee_id": payee_id,
                "creator_id": creator_id,
                "name": details.name,
                "kyc_status": kyc_status,
                "kyc_evidence": kyc_evidence,
                "payout_method": method,
                "currency": currency,
                "iban": details.iban,
                "bic": details.bic,
                "threshold": threshold,
                "withholding_rate": withholding,
            }
        )
    # Rebuilt rather than altered, so the columns are back in revision 0005's order (its code inserts by position).
    op.drop_constraint("kyc_checks_payee_id_fkey", "kyc_checks", type_="foreignkey")
    op.drop_table("payees")
    payees = op.create_table(
        "payees",
        sa.Column("payee_id", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kyc_status", sa.Text(), nullable=False),
        sa.Column("kyc_evidence", sa.Text(), nullable=False),
        sa.Column("payout_method", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("iban", sa.Text(), nullable=False),
        sa.Column("bic", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Numeric(), nullable=False),
        sa.Column("withholding_rate", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("payee_id", name="payees_pkey"),
        sa.ForeignKeyConstraint(["creator_id"], ["creators.creator_id"], name="payees_creator_id_fkey"),
    )
    if restored:
        op.bulk_insert(payees, restored)
    op.create_foreign_key("kyc_checks_payee_id_fkey", "kyc_checks", "payees", ["payee_id"], ["payee_id"])
    op.drop_column("payout_lines", "pii_ref")

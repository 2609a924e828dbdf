"""The metadata schema as the code before migrations created it (event file loads, royalties, payouts, audit log).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.text("now()")
TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_file_loads",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("produced", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("sha256", name="event_file_loads_pkey"),
    )
    op.create_table(
        "creators",
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("creator_id", name="creators_pkey"),
    )
    op.create_table(
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
    op.create_table(
        "contracts",
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("creator_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("document", JSONB(), nullable=False),
        sa.Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("reference", name="contracts_pkey"),
        sa.ForeignKeyConstraint(["creator_id"], ["creators.creator_id"], name="contracts_creator_id_fkey"),
    )
    op.create_table(
        "contract_versions",
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("document", JSONB(), nullable=False),
        sa.Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("reference", "version", name="contract_versions_pkey"),
    )
    op.create_table(
        "licenses",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("licensor", sa.Text(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("on_expiry", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "licensor", name="licenses_pkey"),
    )
    op.create_table(
        "license_workflows",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("licensor", sa.Text(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("requested_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "licensor", "expires_on", name="license_workflows_pkey"),
    )
    op.create_table(
        "royalty_periods",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'open'")),
        sa.Column("closed_at", TIMESTAMPTZ, nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("period", name="royalty_periods_pkey"),
    )
    op.create_table(
        "period_fx_rates",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("rate_to_reporting", sa.Numeric(), nullable=False),
        sa.Column("recorded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("period", "currency", name="period_fx_rates_pkey"),
    )
    op.create_table(
        "royalty_statement_totals",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("payee_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("earnings", sa.Numeric(), nullable=False),
        sa.Column("paid", sa.Numeric(), nullable=False),
        sa.Column("withheld", sa.Numeric(), nullable=False),
        sa.Column("carried_out", sa.Numeric(), nullable=False),
        sa.Column("carried_reason", sa.Text(), nullable=False),
        sa.Column("computed_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("held", sa.Numeric(), nullable=False, server_default=sa.text("0")),
        sa.Column("held_reason", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.PrimaryKeyConstraint("period", "payee_id", name="royalty_statement_totals_pkey"),
    )
    op.create_table(
        "payout_batches",
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("exported_at", TIMESTAMPTZ, nullable=True),
        sa.Column("manifest_sha256", sa.Text(), nullable=True),
        sa.Column("execution_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name="payout_batches_pkey"),
    )
    op.create_table(
        "payout_lines",
        sa.Column("line_id", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("payee_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("returned_period", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("line_id", "batch_id", name="payout_lines_pkey"),
        sa.ForeignKeyConstraint(["batch_id"], ["payout_batches.batch_id"], name="payout_lines_batch_id_fkey"),
    )
    op.create_index(
        "payout_lines_live", "payout_lines", ["line_id"], unique=True, postgresql_where=sa.text("status <> 'cancelled'")
    )
    op.create_table(
        "payout_holds",
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("payee_id", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("returned_period", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("period", "payee_id", "currency", name="payout_holds_pkey"),
    )
    op.create_table(
        "payout_approvals",
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("approver", sa.Text(), nullable=False),
        sa.Column("approved_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("batch_id", "approver", name="payout_approvals_pkey"),
        sa.ForeignKeyConstraint(["batch_id"], ["payout_batches.batch_id"], name="payout_approvals_batch_id_fkey"),
    )
    op.create_table(
        "payout_confirmations",
        sa.Column("file_key", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("posted_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("file_key", name="payout_confirmations_pkey"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=True),  # bigserial
        sa.Column("at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("details", JSONB(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="audit_log_pkey"),
    )


def downgrade() -> None:
    for table in (
        "audit_log",
        "payout_confirmations",
        "payout_approvals",
        "payout_holds",
        "payout_lines",
        "payout_batches",
        "royalty_statement_totals",
        "period_fx_rates",
        "royalty_periods",
        "license_workflows",
        "licenses",
        "contract_versions",
        "contracts",
        "payees",
        "creators",
        "event_file_loads",
    ):
        op.drop_table(table)

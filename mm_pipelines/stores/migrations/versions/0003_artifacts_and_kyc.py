"""Derivatives of uploaded versions (media_artifacts) and KYC checks at the provider (kyc_checks).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media_artifacts",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("asset_id", "version", "kind", name="media_artifacts_pkey"),
        sa.ForeignKeyConstraint(
            ["asset_id", "version"],
            ["media_asset_versions.asset_id", "media_asset_versions.version"],
            name="media_artifacts_version_fkey",
        ),
    )
    op.create_table(
        "kyc_checks",
        sa.Column("payee_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'requested'")),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("evidence_ref", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("next_attempt_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("decided_at", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("payee_id", name="kyc_checks_pkey"),
        sa.ForeignKeyConstraint(["payee_id"], ["payees.payee_id"], name="kyc_checks_payee_id_fkey"),
    )
    op.create_index(
        "kyc_checks_due", "kyc_checks", ["next_attempt_at"], postgresql_where=sa.text("status = 'requested'")
    )


def downgrade() -> None:
    op.drop_table("kyc_checks")
    op.drop_table("media_artifacts")

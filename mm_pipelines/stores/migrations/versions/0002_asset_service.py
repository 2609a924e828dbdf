"""The asset service: media assets and versions, moderation scans, webhook deliveries and reviews; audit records
gain the actor's role, before/after digests and a hash over the whole record; payout approvals record their channel.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
TIMESTAMPTZ = sa.DateTime(timezone=True)
TEXTS = ARRAY(sa.Text())


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("role", sa.Text(), nullable=False, server_default=sa.text("''")))
    op.add_column("audit_log", sa.Column("before_sha256", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("after_sha256", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("format", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("payout_approvals", sa.Column("via", sa.Text(), nullable=False, server_default=sa.text("'cli'")))
    op.create_table(
        "media_assets",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("creator_id", sa.Text(), nullable=True),
        sa.Column("licensor", sa.Text(), nullable=False),
        sa.Column("territories", TEXTS, nullable=False),
        sa.Column("license_starts_on", sa.Date(), nullable=False),
        sa.Column("license_ends_on", sa.Date(), nullable=False),
        sa.Column("usage", TEXTS, nullable=False),
        sa.Column("legal_sensitive", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("taken_down_at", TIMESTAMPTZ, nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("asset_id", name="media_assets_pkey"),
        sa.ForeignKeyConstraint(["creator_id"], ["creators.creator_id"], name="media_assets_creator_id_fkey"),
    )
    op.create_table(
        "media_asset_versions",
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("declared_size", sa.BigInteger(), nullable=False),
        sa.Column("declared_sha256", sa.Text(), nullable=False),
        sa.Column("declared_content_type", sa.Text(), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("object_version_id", sa.Text(), nullable=True),
        sa.Column("upload_status", sa.Text(), nullable=False, server_default=sa.text("'awaiting_upload'")),
        sa.Column("upload_problem", sa.Text(), nullable=True),
        sa.Column("sniffed_content_type", sa.Text(), nullable=True),
        sa.Column("moderation", sa.Text(), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("categories", TEXTS, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("completed_at", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("asset_id", "version", name="media_asset_versions_pkey"),
        sa.ForeignKeyConstraint(["asset_id"], ["media_assets.asset_id"], name="media_asset_versions_asset_id_fkey"),
    )
    op.create_index(
        "media_asset_versions_review",
        "media_asset_versions",
        ["moderation"],
        postgresql_where=sa.text("moderation IN ('quarantined', 'appealed', 'awaiting_legal')"),
    )
    op.create_table(
        "moderation_scans",
        sa.Column("scan_id", sa.Text(), nullable=False),
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scanner", sa.Text(), nullable=False),
        sa.Column("submitted_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("categories", TEXTS, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("evidence", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("delivery_id", sa.Text(), nullable=True),
        sa.Column("delivered_at", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("scan_id", name="moderation_scans_pkey"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.Text(), nullable=False),
        sa.Column("received_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("source", "delivery_id", name="webhook_deliveries_pkey"),
    )
    op.create_table(
        "moderation_actions",
        sa.Column("action_id", sa.BigInteger(), nullable=False, autoincrement=True),  # bigserial
        sa.Column("asset_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMPTZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("action_id", name="moderation_actions_pkey"),
    )


def downgrade() -> None:
    for table in (
        "moderation_actions",
        "webhook_deliveries",
        "moderation_scans",
        "media_asset_versions",
        "media_assets",
    ):
        op.drop_table(table)
    op.drop_column("payout_approvals", "via")
    for column in ("format", "after_sha256", "before_sha256", "role"):
        op.drop_column("audit_log", column)

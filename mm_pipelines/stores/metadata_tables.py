"""The metadata DB's tables as SQLAlchemy Core: what the migrations must build, compared with them in the tests.

Queries stay psycopg with SQL; these tables are the schema's reference and the base of `alembic revision
--autogenerate`. A change here needs a numbered migration in `migrations/versions/`, and the other way round.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

# Postgres' own default names, so that tables created before the migrations carry the same constraint names.
metadata = MetaData(
    naming_convention={
        "pk": "%(table_name)s_pkey",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "uq": "%(table_name)s_%(column_0_name)s_key",
        "ck": "%(table_name)s_%(constraint_name)s_check",
        "ix": "%(table_name)s_%(column_0_name)s_idx",
    }
)

NOW = text("now()")
TIMESTAMPTZ = DateTime(timezone=True)

event_file_loads = Table(
    "event_file_loads",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("file_name", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("produced", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

creators = Table(
    "creators",
    metadata,
    Column("creator_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
)

# A payee's legal name and bank details are kept only in the PII vault (stores.pii): here, the pointer to the version
# in force, what a person may see of the account, and a keyed digest that tells a reload whether they changed.
payees = Table(
    "payees",
    metadata,
    Column("payee_id", Text, primary_key=True),
    Column("creator_id", Text, ForeignKey("creators.creator_id"), nullable=False),
    Column("kyc_status", Text, nullable=False),
    Column("kyc_evidence", Text, nullable=False),
    Column("payout_method", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("threshold", Numeric, nullable=False),
    Column("withholding_rate", Numeric, nullable=False),
    Column("pii_ref", Text, nullable=False),  # "payees/<payee_id>#<version>": {name, iban, bic}
    Column("bank_hint", Text, nullable=False),  # country code and last four (DE…3000); empty for method manual
    Column("pii_digest", Text, nullable=False),  # HMAC-SHA256 of the record (MM_PII_DIGEST_KEY)
)

contracts = Table(
    "contracts",
    metadata,
    Column("reference", Text, primary_key=True),
    Column("creator_id", Text, ForeignKey("creators.creator_id"), nullable=False),
    Column("version", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

contract_versions = Table(
    "contract_versions",
    metadata,
    Column("reference", Text, primary_key=True),
    Column("version", Text, primary_key=True),
    Column("document", JSONB, nullable=False),
    Column("loaded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

licenses = Table(
    "licenses",
    metadata,
    Column("asset_id", Text, primary_key=True),
    Column("licensor", Text, primary_key=True),
    Column("expires_on", Date, nullable=False),
    Column("on_expiry", Text, nullable=False),
)

license_workflows = Table(
    "license_workflows",
    metadata,
    Column("asset_id", Text, primary_key=True),
    Column("licensor", Text, primary_key=True),
    Column("expires_on", Date, primary_key=True),
    Column("action", Text, nullable=False),
    Column("requested_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("run_id", Text, nullable=False),
)

royalty_periods = Table(
    "royalty_periods",
    metadata,
    Column("period", Text, primary_key=True),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("closed_at", TIMESTAMPTZ),
    Column("closed_by", Text),
)

period_fx_rates = Table(
    "period_fx_rates",
    metadata,
    Column("period", Text, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("rate_to_reporting", Numeric, nullable=False),
    Column("recorded_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

# Per-payee statement totals, written with the statements: payout batches are drafted from these.
royalty_statement_totals = Table(
    "royalty_statement_totals",
    metadata,
    Column("period", Text, primary_key=True),
    Column("payee_id", Text, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("earnings", Numeric, nullable=False),
    Column("paid", Numeric, nullable=False),
    Column("withheld", Numeric, nullable=False),
    Column("carried_out", Numeric, nullable=False),
    Column("carried_reason", Text, nullable=False),
    Column("computed_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # What a statement holds (KYC, no bank details) instead of paying: create_batches records it as a payout hold.
    Column("held", Numeric, nullable=False, server_default=text("0")),
    Column("held_reason", Text, nullable=False, server_default=text("''")),
)

payout_batches = Table(
    "payout_batches",
    metadata,
    Column("batch_id", Text, primary_key=True),
    Column("period", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Numeric, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("exported_at", TIMESTAMPTZ),
    Column("manifest_sha256", Text),
    # Fixed by the first export of a SEPA batch, so that every re-export asks the bank for the same day.
    Column("execution_date", Date),
)

# line_id is period:payee:currency; the live-line index means a statement is in one batch at most
# (a cancelled batch keeps its lines, marked cancelled, for the record).
payout_lines = Table(
    "payout_lines",
    metadata,
    Column("line_id", Text, primary_key=True),
    Column("batch_id", Text, ForeignKey("payout_batches.batch_id"), primary_key=True),
    Column("payee_id", Text, nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("paid_on", Date),
    Column("reason", Text, nullable=False, server_default=text("''")),
    Column("returned_period", Text),
    # The version of the payee's bank details the line was drafted with: the export pays exactly those.
    Column("pii_ref", Text),
    Index("payout_lines_live", "line_id", unique=True, postgresql_where=text("status <> 'cancelled'")),
)

payout_holds = Table(
    "payout_holds",
    metadata,
    Column("period", Text, primary_key=True),
    Column("payee_id", Text, primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("reason", Text, nullable=False),
    Column("returned_period", Text, nullable=False),
)

payout_approvals = Table(
    "payout_approvals",
    metadata,
    Column("batch_id", Text, ForeignKey("payout_batches.batch_id"), primary_key=True),
    Column("approver", Text, primary_key=True),
    Column("approved_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    # "api" (an authenticated FinanceApprover) or "cli" (a name typed on the embedded platform).
    Column("via", Text, nullable=False, server_default=text("'cli'")),
)

payout_confirmations = Table(
    "payout_confirmations",
    metadata,
    Column("file_key", Text, primary_key=True),
    Column("batch_id", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("posted_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

# Hash-chained: each record's hash covers the previous one (royalties.store.audit).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("role", Text, nullable=False, server_default=text("''")),
    Column("before_sha256", Text),
    Column("after_sha256", Text),
    # 1: hash over (prev, actor, action, subject, details); 2: over the whole canonical record (audit.chain).
    Column("format", Integer, nullable=False, server_default=text("1")),
)

# How far each export of the audit chain has taken it ("kafka": the mirror, "archive": sealed segments).
audit_exports = Table(
    "audit_exports",
    metadata,
    Column("sink", Text, primary_key=True),
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("last_hash", Text, nullable=False, server_default=text("'" + "0" * 64 + "'")),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

# --- the asset service: media assets, their versions, moderation ----------------------------------------------

media_assets = Table(
    "media_assets",
    metadata,
    Column("asset_id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("creator_id", Text, ForeignKey("creators.creator_id")),
    Column("licensor", Text, nullable=False),
    Column("territories", ARRAY(Text), nullable=False),
    Column("license_starts_on", Date, nullable=False),
    Column("license_ends_on", Date, nullable=False),
    Column("usage", ARRAY(Text), nullable=False),
    Column("legal_sensitive", Boolean, nullable=False, server_default=text("false")),
    Column("legal_hold", Boolean, nullable=False, server_default=text("false")),
    Column("taken_down_at", TIMESTAMPTZ),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

media_asset_versions = Table(
    "media_asset_versions",
    metadata,
    Column("asset_id", Text, ForeignKey("media_assets.asset_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("filename", Text, nullable=False),
    Column("declared_size", BigInteger, nullable=False),
    Column("declared_sha256", Text, nullable=False),
    Column("declared_content_type", Text, nullable=False),
    Column("object_key", Text, nullable=False),
    Column("object_version_id", Text),
    # awaiting_upload → uploaded, or rejected (with the reason) when the file is not what was declared.
    Column("upload_status", Text, nullable=False, server_default=text("'awaiting_upload'")),
    Column("upload_problem", Text),
    Column("sniffed_content_type", Text),
    Column("moderation", Text, nullable=False, server_default=text("'pending'")),
    Column("categories", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("created_by", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("completed_at", TIMESTAMPTZ),
    Index(
        "media_asset_versions_review",
        "moderation",
        postgresql_where=text("moderation IN ('quarantined', 'appealed', 'awaiting_legal')"),
    ),
)

moderation_scans = Table(
    "moderation_scans",
    metadata,
    Column("scan_id", Text, primary_key=True),
    Column("asset_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("scanner", Text, nullable=False),
    Column("submitted_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("verdict", Text),
    Column("categories", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("evidence", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("delivery_id", Text),
    Column("delivered_at", TIMESTAMPTZ),
    # When SentinelNet took the scan (the built-in scanner takes it at once), and the resends until then.
    Column("sent_at", TIMESTAMPTZ),
    Column("send_attempts", Integer, nullable=False, server_default=text("0")),
    Column("send_error", Text),
    Column("next_send_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

# Every webhook delivery accepted once: a redelivery with the same id is acknowledged and changes nothing.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("source", Text, primary_key=True),
    Column("delivery_id", Text, primary_key=True),
    Column("body_sha256", Text, nullable=False),
    Column("received_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

moderation_actions = Table(
    "moderation_actions",
    metadata,
    Column("action_id", BigInteger, primary_key=True, autoincrement=True),
    Column("asset_id", Text, nullable=False),
    Column("version", Integer),
    Column("action", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=text("''")),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("at", TIMESTAMPTZ, nullable=False, server_default=NOW),
)

# Derivatives of an uploaded version (thumbnail, poster frame, transcode), each a separate object.
media_artifacts = Table(
    "media_artifacts",
    metadata,
    Column("asset_id", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("object_key", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    ForeignKeyConstraint(
        ["asset_id", "version"],
        ["media_asset_versions.asset_id", "media_asset_versions.version"],
        name="media_artifacts_version_fkey",
    ),
)

# KYC checks at the provider: only its reference and verdict (a pointer to the evidence it holds) are kept here.
kyc_checks = Table(
    "kyc_checks",
    metadata,
    Column("payee_id", Text, ForeignKey("payees.payee_id"), primary_key=True),
    # requested (waiting to reach the provider) → submitted (the provider has it) → verified | rejected
    Column("status", Text, nullable=False, server_default=text("'requested'")),
    Column("provider_reference", Text),
    Column("evidence_ref", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("requested_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("next_attempt_at", TIMESTAMPTZ, nullable=False, server_default=NOW),
    Column("decided_at", TIMESTAMPTZ),
    Index("kyc_checks_due", "next_attempt_at", postgresql_where=text("status = 'requested'")),
)

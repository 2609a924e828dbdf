"""The metadata DB's tables as SQLAlchemy Core: what the migrations must build, compared with them in the tests.

Queries stay psycopg with SQL; these tables are the schema's reference and the base of `alembic revision
--autogenerate`. A change here needs a numbered migration in `migrations/versions/`, and the other way round.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

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

payees = Table(
    "payees",
    metadata,
    Column("payee_id", Text, primary_key=True),
    Column("creator_id", Text, ForeignKey("creators.creator_id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kyc_status", Text, nullable=False),
    Column("kyc_evidence", Text, nullable=False),
    Column("payout_method", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("iban", Text, nullable=False),
    Column("bic", Text, nullable=False),
    Column("threshold", Numeric, nullable=False),
    Column("withholding_rate", Numeric, nullable=False),
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
)

"""How far each export of the audit chain has got: the Kafka mirror and the sealed archive (audit.export).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_exports",
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_hash", sa.Text(), nullable=False, server_default=sa.text("'" + "0" * 64 + "'")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("sink", name="audit_exports_pkey"),
    )


def downgrade() -> None:
    op.drop_table("audit_exports")

"""SentinelNet submissions: when a scan reached SentinelNet, how often it was tried, the last error, the next try.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMPTZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("moderation_scans", sa.Column("sent_at", TIMESTAMPTZ, nullable=True))
    op.add_column(
        "moderation_scans", sa.Column("send_attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("moderation_scans", sa.Column("send_error", sa.Text(), nullable=True))
    op.add_column(
        "moderation_scans", sa.Column("next_send_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()"))
    )
    # Scans the built-in scanner took before this revision were handed over at once.
    op.execute("UPDATE moderation_scans SET sent_at = submitted_at WHERE scanner = 'builtin'")


def downgrade() -> None:
    for column in ("next_send_at", "send_error", "send_attempts", "sent_at"):
        op.drop_column("moderation_scans", column)

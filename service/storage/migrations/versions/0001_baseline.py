"""Baseline: the store's tables as the service created them before migrations existed.

Feedback entries, issued cards and seen JWT ids, with every column and index they had then. A fresh
database starts here. A database created by that earlier code (no ``alembic_version`` table) is
recognised by ``service.storage.migrate`` and stamped with this revision without running it; the next
revision then adds what such a database may lack.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("card_kind", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=True),
        sa.Column("override_system", sa.Text(), nullable=True),
        sa.Column("override_code", sa.Text(), nullable=True),
        sa.Column("override_display", sa.Text(), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("outcome_timestamp", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
        sa.Column("tenant", sa.Text(), nullable=True),
    )
    op.create_index("ix_feedback_service", "feedback", ["service_id"])
    op.create_index("ix_feedback_issuer_received", "feedback", ["issuer", "received_at"])
    op.create_index(
        "uq_feedback_card_caller_outcome", "feedback", ["service_id", "card_uuid", "issuer", "outcome"], unique=True
    )

    op.create_table(
        "issued_cards",
        sa.Column("card_uuid", sa.Text(), primary_key=True),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("override_codes", sa.JSON(), nullable=True),
    )
    op.create_index("ix_issued_cards_issued_at", "issued_cards", ["issued_at"])

    op.create_table(
        "seen_jti",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("iss", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("iss", "jti", name="uq_seen_jti_iss_jti"),
    )
    op.create_index("ix_seen_jti_expires", "seen_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_table("seen_jti")
    op.drop_table("issued_cards")
    op.drop_table("feedback")

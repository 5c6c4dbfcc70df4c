"""Pilot tables: cards recorded in every pilot mode with the data they quoted, reviewers' verdicts on
them, and sign-offs of the rulebook's knowledge hash.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pilot_cards",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(40), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("shown", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("indicator", sa.String(10), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("quoted", sa.JSON(), nullable=False),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_pilot_cards_recorded_at", "pilot_cards", ["recorded_at"])
    op.create_table(
        "pilot_verdicts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("record_id", "reviewer", name="uq_pilot_verdicts_record_reviewer"),
    )
    op.create_table(
        "rulebook_signoffs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("knowledge_hash", sa.String(64), nullable=False),
        sa.Column("signed_by", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_rulebook_signoffs_hash", "rulebook_signoffs", ["knowledge_hash"])


def downgrade() -> None:
    op.drop_index("ix_rulebook_signoffs_hash", table_name="rulebook_signoffs")
    op.drop_table("rulebook_signoffs")
    op.drop_table("pilot_verdicts")
    op.drop_index("ix_pilot_cards_recorded_at", table_name="pilot_cards")
    op.drop_table("pilot_cards")

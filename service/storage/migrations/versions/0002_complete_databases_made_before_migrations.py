"""Complete a database made before migrations: the columns and indexes it may lack.

Before migrations, tables came from ``metadata.create_all``, which creates a missing table with its
indexes but never touches a table that exists. A database created by the first release therefore
lacks the caller columns (``issuer``, ``tenant``) and the card's ``override_codes``, or has them
(added by a start-up patch, ``ALTER TABLE ... ADD COLUMN``) but lacks the indexes that came with
them: the per-caller feedback index, the issued-cards age index, and the unique index that lets a
card's outcome be counted once per caller. This revision adds whatever is missing; on a database
created by the baseline it changes nothing.

Before the unique index is built, repeated feedback (same service, card, caller and outcome, which
that release could store) is reduced to its first entry, the one received first (lowest id): the
summary counts an outcome once per card and caller, as the service now stores it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("tacro_cds.migrate")


def _later_columns() -> dict[str, list[sa.Column[object]]]:
    """table -> the columns added after the first release, in the order they were added."""
    return {
        "feedback": [
            sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
            sa.Column("tenant", sa.Text(), nullable=True),
        ],
        "issued_cards": [
            sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
            sa.Column("tenant", sa.Text(), nullable=True),
            sa.Column("override_codes", sa.JSON(), nullable=True),
        ],
    }


# (name, table, columns, unique) of every index the baseline has.
INDEXES: list[tuple[str, str, list[str], bool]] = [
    ("ix_feedback_service", "feedback", ["service_id"], False),
    ("ix_feedback_issuer_received", "feedback", ["issuer", "received_at"], False),
    ("uq_feedback_card_caller_outcome", "feedback", ["service_id", "card_uuid", "issuer", "outcome"], True),
    ("ix_issued_cards_issued_at", "issued_cards", ["issued_at"], False),
    ("ix_seen_jti_expires", "seen_jti", ["expires_at"], False),
]

_FEEDBACK_KEY = ("service_id", "card_uuid", "issuer", "outcome")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table, columns in _later_columns().items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)
    for name, table, indexed, unique in INDEXES:
        if name in {index["name"] for index in sa.inspect(bind).get_indexes(table)}:
            continue
        if name == "uq_feedback_card_caller_outcome":
            _keep_first_of_repeated_feedback(bind)
        op.create_index(name, table, indexed, unique=unique)


def _keep_first_of_repeated_feedback(bind: sa.Connection) -> None:
    feedback = sa.table("feedback", sa.column("id"), *(sa.column(name) for name in _FEEDBACK_KEY))
    first = sa.select(sa.func.min(feedback.c.id)).group_by(*(feedback.c[name] for name in _FEEDBACK_KEY))
    removed = bind.execute(sa.delete(feedback).where(feedback.c.id.not_in(first))).rowcount
    if removed:
        log.warning(
            "feedback: %d repeated entries (same service, card, caller and outcome) removed, the "
            "first of each kept, before the once-per-card-and-caller index was created",
            removed,
        )


def downgrade() -> None:
    # What this revision added is part of the baseline schema: nothing to take away.
    pass

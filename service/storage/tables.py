"""The store's tables: the model a database gets from the Alembic migrations in
``service/storage/migrations`` (a model change needs a new revision: ``tests/test_migrations.py`` fails
while the two differ)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False),
    Column("card_uuid", Text, nullable=False),
    Column("card_kind", Text, nullable=True),  # from issued_cards when the card was recorded
    Column("outcome", String(20), nullable=False),
    Column("accepted_suggestions", JSON, nullable=True),  # list of suggestion uuids
    Column("override_system", Text, nullable=True),
    Column("override_code", Text, nullable=True),
    Column("override_display", Text, nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("outcome_timestamp", DateTime, nullable=False),  # naive UTC
    Column("received_at", DateTime, nullable=False),  # naive UTC
    # Who sent it: the verified JWT's iss ("" with authentication off) and tenant.
    Column("issuer", Text, nullable=False, server_default=""),
    Column("tenant", Text, nullable=True),
    Index("ix_feedback_service", "service_id"),
    Index("ix_feedback_issuer_received", "issuer", "received_at"),
    # One accepted and one overridden entry per card and caller: repeats are not counted again.
    Index("uq_feedback_card_caller_outcome", "service_id", "card_uuid", "issuer", "outcome", unique=True),
)

issued_cards = Table(
    "issued_cards",
    metadata,
    Column("card_uuid", Text, primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("kind", Text, nullable=False),
    Column("issued_at", DateTime, nullable=False),  # naive UTC
    # To whom: feedback is accepted only from the same issuer (and tenant) on the same service.
    Column("issuer", Text, nullable=False, server_default=""),
    Column("tenant", Text, nullable=True),
    Column("override_codes", JSON, nullable=True),  # codes of the card's overrideReasons
    Index("ix_issued_cards_issued_at", "issued_at"),
)

seen_jti = Table(
    "seen_jti",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("iss", Text, nullable=False),
    Column("jti", Text, nullable=False),
    Column("expires_at", DateTime, nullable=False),  # naive UTC
    UniqueConstraint("iss", "jti", name="uq_seen_jti_iss_jti"),
    Index("ix_seen_jti_expires", "expires_at"),
)

# The pilot's tables: cards computed in every mode with the data they quoted, reviewers' verdicts on
# them, and sign-offs of the rulebook (service.storage.pilot reads and writes them).
pilot_cards = Table(
    "pilot_cards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", Text, nullable=False),
    Column("service_id", String(100), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("mode", String(10), nullable=False),  # live | silent | shadow
    Column("shown", Boolean, nullable=False),  # whether the EHR was given the card
    Column("kind", Text, nullable=False),
    Column("indicator", String(10), nullable=False),
    Column("summary", Text, nullable=False),
    Column("card", JSON, nullable=False),  # the rendered card
    Column("quoted", JSON, nullable=False),  # the values, dates and orders the card quoted
    Column("patient_id", Text, nullable=True),
    Column("user_id", Text, nullable=True),
    Column("issuer", Text, nullable=False, server_default=""),
    Column("tenant", Text, nullable=True),
    Column("recorded_at", DateTime, nullable=False),  # naive UTC
    Index("ix_pilot_cards_recorded_at", "recorded_at"),
)

pilot_verdicts = Table(
    "pilot_verdicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", Integer, nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("verdict", String(10), nullable=False),  # right | wrong | unsure
    Column("reason", Text, nullable=False),
    Column("decided_at", DateTime, nullable=False),  # naive UTC
    UniqueConstraint("record_id", "reviewer", name="uq_pilot_verdicts_record_reviewer"),
)

rulebook_signoffs = Table(
    "rulebook_signoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("knowledge_hash", String(64), nullable=False),
    Column("signed_by", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("signed_at", DateTime, nullable=False),  # naive UTC
    Index("ix_rulebook_signoffs_hash", "knowledge_hash"),
)

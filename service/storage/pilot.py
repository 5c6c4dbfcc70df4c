"""What a pilot keeps: the cards a service computed (whether or not the EHR was shown them) with the
values, dates and orders they quoted, a reviewer's verdict on each, and sign-offs of the rulebook.

The tables share the store's database and its retention: a recorded card lives as long as an issued
card (``ISSUED_CARDS_RETENTION_DAYS``) and its verdicts go with it. Nothing here holds a token: a card
is recorded from what the rules returned, never from the request's headers or ``fhirAuthorization``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
)

from service.storage.engine import outage_is_503
from service.storage.tables import feedback, issued_cards, metadata

if TYPE_CHECKING:  # the store imports this module to register its tables
    from service.storage.store import Store

log = logging.getLogger("tacro_cds.pilot")

VERDICTS = ("right", "wrong", "unsure")
REVIEWED_INDICATORS = ("warning", "critical")
PURGE_EVERY = 200

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


@dataclass(frozen=True)
class RecordedCard:
    """One card as the pilot recorded it (``card`` the rendered JSON, ``quoted`` the data it named)."""

    id: int
    service_id: str
    hook: str
    mode: str
    shown: bool
    kind: str
    indicator: str
    summary: str
    card: Mapping[str, Any]
    quoted: Mapping[str, Any]
    patient_id: str | None
    issuer: str
    tenant: str | None
    recorded_at: datetime
    verdict: str | None = None
    reason: str | None = None
    reviewer: str | None = None


@dataclass(frozen=True)
class Signoff:
    knowledge_hash: str
    signed_by: str
    role: str
    signed_at: datetime


class PilotRecords:
    """The pilot's tables in the store's database."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._calls = itertools.count()

    # --- recording ------------------------------------------------------------------------------

    def record(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record computed cards (keys: the ``pilot_cards`` columns but ``id`` and ``recorded_at``);
        never fails the service call."""
        if not rows:
            return
        if next(self._calls) % PURGE_EVERY == 0:
            try:
                self.purge()
            except Exception as exc:  # housekeeping never fails the call
                log.warning("could not purge pilot records", extra={"error": type(exc).__name__})
        try:
            now = self.store.now()
            with self.store.engine.begin() as conn:
                conn.execute(insert(pilot_cards), [{**row, "recorded_at": now} for row in rows])
        except Exception as exc:  # the answer matters more than the record
            log.warning("could not record pilot cards", extra={"cards": len(rows), "error": type(exc).__name__})

    @outage_is_503
    def purge(self) -> int:
        """Delete recorded cards older than the issued-card retention, with their verdicts."""
        cutoff = self.store.now() - timedelta(days=self.store.retention.issued_cards_days)
        with self.store.engine.begin() as conn:
            old = select(pilot_cards.c.id).where(pilot_cards.c.recorded_at < cutoff)
            conn.execute(delete(pilot_verdicts).where(pilot_verdicts.c.record_id.in_(old)))
            return int(conn.execute(delete(pilot_cards).where(pilot_cards.c.recorded_at < cutoff)).rowcount)

    # --- adjudication ---------------------------------------------------------------------------

    @outage_is_503
    def for_review(self, *, limit: int = 500) -> list[RecordedCard]:
        """Warning and critical cards, newest first, each with the latest verdict given on it."""
        with self.store.engine.begin() as conn:
            rows = conn.execute(
                select(pilot_cards)
                .where(pilot_cards.c.indicator.in_(REVIEWED_INDICATORS))
                .order_by(pilot_cards.c.recorded_at.desc(), pilot_cards.c.id.desc())
                .limit(limit)
            ).all()
            verdicts = _latest_verdicts(conn, [row.id for row in rows])
        return [_recorded(row, verdicts.get(row.id)) for row in rows]

    @outage_is_503
    def get(self, record_id: int) -> RecordedCard | None:
        with self.store.engine.begin() as conn:
            row = conn.execute(select(pilot_cards).where(pilot_cards.c.id == record_id)).first()
            if row is None:
                return None
            return _recorded(row, _latest_verdicts(conn, [record_id]).get(record_id))

    @outage_is_503
    def adjudicate(self, record_id: int, *, reviewer: str, verdict: str, reason: str) -> bool:
        """A reviewer's verdict on a recorded card (a second verdict by the same reviewer replaces
        the first); False when no such warning or critical card is on record."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        with self.store.engine.begin() as conn:
            found = conn.execute(
                select(pilot_cards.c.id).where(
                    pilot_cards.c.id == record_id, pilot_cards.c.indicator.in_(REVIEWED_INDICATORS)
                )
            ).first()
            if found is None:
                return False
            conn.execute(
                delete(pilot_verdicts).where(
                    pilot_verdicts.c.record_id == record_id, pilot_verdicts.c.reviewer == reviewer
                )
            )
            conn.execute(
                insert(pilot_verdicts).values(
                    record_id=record_id,
                    reviewer=reviewer,
                    verdict=verdict,
                    reason=reason,
                    decided_at=self.store.now(),
                )
            )
        return True

    def figures(self, records: Sequence[RecordedCard]) -> list[dict[str, Any]]:
        """Per card kind: recorded, reviewed, right, wrong, unsure, agreement (right / reviewed but
        unsure) and the wrong ones."""
        by_kind: dict[str, dict[str, Any]] = {}
        for record in records:
            row = by_kind.setdefault(
                record.kind,
                {
                    "kind": record.kind,
                    "recorded": 0,
                    "reviewed": 0,
                    "right": 0,
                    "wrong": 0,
                    "unsure": 0,
                    "wrong_ones": [],
                },
            )
            row["recorded"] += 1
            if record.verdict:
                row["reviewed"] += 1
                row[record.verdict] += 1
                if record.verdict == "wrong":
                    row["wrong_ones"].append(record)
        for row in by_kind.values():
            decided = row["right"] + row["wrong"]
            row["agreement"] = row["right"] / decided if decided else None
        return [by_kind[kind] for kind in sorted(by_kind)]

    # --- rulebook sign-off ----------------------------------------------------------------------

    @outage_is_503
    def sign(self, knowledge_hash: str, *, by: str, role: str) -> Signoff:
        now = self.store.now()
        with self.store.engine.begin() as conn:
            conn.execute(
                insert(rulebook_signoffs).values(knowledge_hash=knowledge_hash, signed_by=by, role=role, signed_at=now)
            )
        return Signoff(knowledge_hash, by, role, now)

    @outage_is_503
    def signoffs(self, knowledge_hash: str) -> list[Signoff]:
        """Every sign-off of this hash, oldest first."""
        with self.store.engine.begin() as conn:
            rows = conn.execute(
                select(rulebook_signoffs)
                .where(rulebook_signoffs.c.knowledge_hash == knowledge_hash)
                .order_by(rulebook_signoffs.c.signed_at, rulebook_signoffs.c.id)
            ).all()
        return [Signoff(r.knowledge_hash, r.signed_by, r.role, r.signed_at) for r in rows]

    # --- feedback over time (analytics) ---------------------------------------------------------

    @outage_is_503
    def feedback_rows(self) -> list[dict[str, Any]]:
        """Every issued card and every feedback entry on record, as plain rows for the analytics
        (issued: day, service, kind, issuer, tenant; feedback: the same and outcome, reason)."""
        with self.store.engine.begin() as conn:
            issued = conn.execute(
                select(
                    issued_cards.c.issued_at,
                    issued_cards.c.service_id,
                    issued_cards.c.kind,
                    issued_cards.c.issuer,
                    issued_cards.c.tenant,
                )
            ).all()
            given = conn.execute(
                select(
                    feedback.c.received_at,
                    feedback.c.service_id,
                    feedback.c.card_kind,
                    feedback.c.issuer,
                    feedback.c.tenant,
                    feedback.c.outcome,
                    feedback.c.override_system,
                    feedback.c.override_code,
                    feedback.c.override_display,
                )
            ).all()
        rows: list[dict[str, Any]] = [
            {
                "at": r.issued_at,
                "service": r.service_id,
                "kind": r.kind,
                "issuer": r.issuer,
                "tenant": r.tenant,
                "event": "shown",
                "reason": None,
            }
            for r in issued
        ]
        for r in given:
            reason = None
            if r.override_code:
                reason = f"{r.override_display or r.override_code} ({r.override_code})"
            rows.append(
                {
                    "at": r.received_at,
                    "service": r.service_id,
                    "kind": r.card_kind or "unknown",
                    "issuer": r.issuer,
                    "tenant": r.tenant,
                    "event": r.outcome,
                    "reason": reason,
                }
            )
        return rows


def _latest_verdicts(conn: Any, ids: Sequence[int]) -> dict[int, Any]:
    if not ids:
        return {}
    found: dict[int, Any] = {}
    for row in conn.execute(
        select(pilot_verdicts).where(pilot_verdicts.c.record_id.in_(ids)).order_by(pilot_verdicts.c.decided_at)
    ):
        found[row.record_id] = row
    return found


def _recorded(row: Any, verdict: Any) -> RecordedCard:
    return RecordedCard(
        id=row.id,
        service_id=row.service_id,
        hook=row.hook,
        mode=row.mode,
        shown=bool(row.shown),
        kind=row.kind,
        indicator=row.indicator,
        summary=row.summary,
        card=row.card,
        quoted=row.quoted,
        patient_id=row.patient_id,
        issuer=row.issuer,
        tenant=row.tenant,
        recorded_at=row.recorded_at,
        verdict=verdict.verdict if verdict is not None else None,
        reason=verdict.reason if verdict is not None else None,
        reviewer=verdict.reviewer if verdict is not None else None,
    )

"""Durable state shared by every worker and replica: feedback, issued cards (so the feedback summary
knows each card's kind) and the JWT replay cache.

Everything lives in ``FEEDBACK_DB`` (a SQLAlchemy URL): SQLite by default (WAL, one file shared by the
gunicorn workers of one host), PostgreSQL when several replicas run. Cross-process guarantees come
from the database (a uniqueness constraint, committed transactions), never from process memory.

One concern per module: ``engine`` (connections, the schema brought up to date on opening),
``tables`` (the model), ``replay`` (seen JWT ids), ``issued`` (issued cards), ``feedback``
(feedback and its quota). ``Store`` joins them and paces the housekeeping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert

from service.storage.engine import SQLITE_BUSY_TIMEOUT_MS, build_engine, outage_is_503, parse_timestamp
from service.storage.feedback import FeedbackLog, FeedbackQuota, FeedbackResult
from service.storage.files import private_directory
from service.storage.issued import IssuedCards
from service.storage.replay import PURGE_EVERY, ReplayCache
from service.storage.tables import feedback, issued_cards, metadata, seen_jti

log = logging.getLogger("tacro_cds.store")


@dataclass(frozen=True)
class Retention:
    """How long rows are kept (days); also: feedback on a card older than ``issued_cards_days`` is
    refused, since the card is no longer on record."""

    issued_cards_days: float = 30
    feedback_days: float = 365


class Store(IssuedCards, ReplayCache, FeedbackLog):
    """Feedback, issued cards and seen JWT ids in one SQLAlchemy database."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        retention: Retention | None = None,
        quota: FeedbackQuota | None = None,
        auto_upgrade: bool = True,
    ) -> None:
        """Open the store; its schema is brought up to date first (``service.storage.migrate``; with
        ``auto_upgrade`` False only checked), and DatabaseSchemaError stops a start on a database
        this release cannot run on."""
        self.retention = retention or Retention()
        self.quota = quota or FeedbackQuota()
        super().__init__(url, clock=clock, auto_upgrade=auto_upgrade)

    def record_cards(
        self,
        service_id: str,
        cards: list[Mapping[str, Any]],
        kinds: list[str],
        *,
        issuer: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Remember which kind of card each issued uuid was, and to whom it was issued (purging
        rows past their retention every ``PURGE_EVERY`` calls); never fails the service call."""
        if next(self._calls) % PURGE_EVERY == 0:
            try:
                self.purge_retained()
            except Exception as exc:  # housekeeping never fails the call; recording is tried all the same
                log.warning("could not purge retained rows", extra={"error": type(exc).__name__})
        super().record_cards(service_id, cards, kinds, issuer=issuer, tenant=tenant)

    @outage_is_503
    def purge_retained(self) -> dict[str, int]:
        """Delete expired jti rows, and issued cards and feedback older than their retention."""
        now = self.now()
        with self.engine.begin() as conn:
            jti = conn.execute(delete(seen_jti).where(seen_jti.c.expires_at < now)).rowcount
            cards = conn.execute(
                delete(issued_cards).where(
                    issued_cards.c.issued_at < now - timedelta(days=self.retention.issued_cards_days)
                )
            ).rowcount
            entries = conn.execute(
                delete(feedback).where(feedback.c.received_at < now - timedelta(days=self.retention.feedback_days))
            ).rowcount
        return {"jti": int(jti), "issued_cards": int(cards), "feedback": int(entries)}

    @outage_is_503
    def check_writable(self) -> None:
        """A write that must reach the disk (readiness): raises StorageUnavailableError if not."""
        with self.engine.begin() as conn:
            conn.execute(insert(seen_jti).values(iss="\0readiness", jti=os.urandom(8).hex(), expires_at=self.now()))
            conn.execute(delete(seen_jti).where(seen_jti.c.iss == "\0readiness"))


__all__ = [
    "PURGE_EVERY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "FeedbackQuota",
    "FeedbackResult",
    "Retention",
    "Store",
    "build_engine",
    "feedback",
    "issued_cards",
    "metadata",
    "parse_timestamp",
    "private_directory",
    "seen_jti",
]

# The pilot's tables (recorded cards, verdicts, rulebook sign-offs) live in the same database and
# migrations: defined in their own module, registered on ``metadata`` whenever the store is imported.
from service.storage import pilot as _pilot  # noqa: E402,F401

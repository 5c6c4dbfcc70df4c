"""Issued cards: which kind of card each uuid was and to whom it went, so feedback is accepted only
from that caller and counted by card kind."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite

from service.storage.engine import Database, key_text
from service.storage.tables import issued_cards

log = logging.getLogger("tacro_cds.store")


class IssuedCards(Database):
    """The record of issued cards (best-effort: it never fails a service call)."""

    def record_cards(
        self,
        service_id: str,
        cards: list[Mapping[str, Any]],
        kinds: list[str],
        *,
        issuer: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Remember which kind of card each issued uuid was, and to whom it was issued; never fails
        the service call."""
        try:
            issued = self.now()
            rows: list[dict[str, Any]] = [
                {
                    "card_uuid": str(card["uuid"]),
                    "service_id": service_id,
                    "kind": kind,
                    "issued_at": issued,
                    "issuer": key_text(issuer or ""),
                    "tenant": tenant,
                    "override_codes": _offered_codes(card),
                }
                for card, kind in zip(cards, kinds, strict=False)
                if card.get("uuid")
            ]
            if not rows:
                return
            with self.record_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # This transaction only: answered before its WAL record reaches the disk.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                conn.execute(self._upsert_issued(conn.dialect.name), rows)
        except Exception as exc:  # the answer matters more than the statistics
            log.warning(
                "could not record issued cards",
                extra={"service": service_id, "cards": len(cards), "error": type(exc).__name__},
            )

    @staticmethod
    def _upsert_issued(dialect: str) -> Any:
        # The same uuid issued again (pinned uuids in tests, a retried call) updates its row.
        new = {
            "service_id": issued_cards.c.service_id,
            "kind": issued_cards.c.kind,
            "issued_at": issued_cards.c.issued_at,
            "issuer": issued_cards.c.issuer,
            "tenant": issued_cards.c.tenant,
            "override_codes": issued_cards.c.override_codes,
        }
        if dialect == "sqlite":
            stmt = sqlite.insert(issued_cards)
            return stmt.on_conflict_do_update(index_elements=["card_uuid"], set_={k: stmt.excluded[k] for k in new})
        if dialect == "postgresql":
            pg = postgresql.insert(issued_cards)
            return pg.on_conflict_do_update(index_elements=["card_uuid"], set_={k: pg.excluded[k] for k in new})
        return insert(issued_cards)


def _offered_codes(card: Mapping[str, Any]) -> list[str] | None:
    reasons = card.get("overrideReasons")
    if not isinstance(reasons, list):
        return None
    return [str(r["code"]) for r in reasons if isinstance(r, Mapping) and r.get("code")]

"""Issued cards: which kind of card each uuid was and to whom it went, so feedback is accepted only
from that caller and counted by card kind."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite

from service.storage.engine import SQLITE_BEGIN, Database, key_text
from service.storage.tables import issued_cards

log = logging.getLogger("tacro_cds.store")


class IssuedCards(Database):
    """The record of issued cards (best-effort: it never fails a service call)."""

    # The upsert compiled for record_engine's dialect at the first record (``_RecordStatement``).
    _record: _RecordStatement | None = None

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
            self._write_records(rows)
        except Exception as exc:  # the answer matters more than the statistics
            log.warning(
                "could not record issued cards",
                extra={"service": service_id, "cards": len(cards), "error": type(exc).__name__},
            )

    def _write_records(self, rows: list[dict[str, Any]]) -> None:
        """One transaction on a pooled driver connection: the statement is compiled once and needs
        none of SQLAlchemy's per-statement machinery, which cost twice the database's own work on
        SQLite. The transaction starts as the engine's start it (``SQLITE_BEGIN`` on SQLite;
        implicitly elsewhere). A connection that failed is discarded, not returned to the pool."""
        dialect = self.record_engine.dialect
        if self._record is None:
            self._record = _record_statement(dialect)
        connection = self.record_engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                if dialect.name == "sqlite":
                    cursor.execute(SQLITE_BEGIN)
                elif dialect.name == "postgresql":
                    # This transaction only: answered before its WAL record reaches the disk.
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
                cursor.executemany(self._record.sql, self._record.parameters(rows))
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            connection.invalidate()
            raise
        finally:
            connection.close()


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


@dataclass(frozen=True)
class _RecordStatement:
    """The issued-card upsert compiled once for a dialect: its SQL and the order of its parameters,
    with each column's own conversion to the driver's value (a datetime to SQLite's text, a list
    to JSON), so a call's rows go to the driver as one executemany without building, caching or
    compiling a statement per call (that was most of the record's cost)."""

    sql: str
    names: tuple[str, ...]
    positional: bool
    convert: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Each row as the driver takes it: a tuple (positional paramstyle) or a dict."""
        pairs = tuple(zip(self.names, self.convert, strict=True))
        converted = [tuple(row[n] if f is None else f(row[n]) for n, f in pairs) for row in rows]
        return converted if self.positional else [dict(zip(self.names, values, strict=True)) for values in converted]


def _record_statement(dialect: Any) -> _RecordStatement:
    compiled = _upsert_issued(dialect.name).compile(dialect=dialect, column_keys=[c.key for c in issued_cards.c])
    names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
    convert = tuple(issued_cards.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
    return _RecordStatement(str(compiled), names, dialect.positional, convert)


def _offered_codes(card: Mapping[str, Any]) -> list[str] | None:
    reasons = card.get("overrideReasons")
    if not isinstance(reasons, list):
        return None
    return [str(r["code"]) for r in reasons if isinstance(r, Mapping) and r.get("code")]

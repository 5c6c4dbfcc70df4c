"""Durable state shared by every worker and replica: feedback, issued cards (so the feedback summary
knows each card's kind) and the JWT replay cache.

Everything lives in ``FEEDBACK_DB`` (a SQLAlchemy URL): SQLite by default (WAL, one file shared by the
gunicorn workers of one host), PostgreSQL when several replicas run. Cross-process guarantees come
from the database (a uniqueness constraint, committed transactions), never from process memory.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, ParamSpec, TypeVar

from sqlalchemy import (JSON, Column, DateTime, Engine, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, delete, event, func, insert, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from .errors import StorageUnavailableError

log = logging.getLogger("tacro_cds.store")

metadata = MetaData()

feedback = Table(
    "feedback", metadata,
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
    Index("ix_feedback_service", "service_id"),
)

issued_cards = Table(
    "issued_cards", metadata,
    Column("card_uuid", Text, primary_key=True),
    Column("service_id", String(100), nullable=False),
    Column("kind", Text, nullable=False),
    Column("issued_at", DateTime, nullable=False),  # naive UTC
)

seen_jti = Table(
    "seen_jti", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("iss", Text, nullable=False),
    Column("jti", Text, nullable=False),
    Column("expires_at", DateTime, nullable=False),  # naive UTC
    UniqueConstraint("iss", "jti", name="uq_seen_jti_iss_jti"),
    Index("ix_seen_jti_expires", "expires_at"),
)

# Purge expired jti rows on the first call and then every PURGE_EVERY calls of remember_jti.
PURGE_EVERY = 200
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Arbitrary fixed key: serialises table creation when several workers start against PostgreSQL.
_PG_CREATE_LOCK = 0x7AC_0CD5


P = ParamSpec("P")
R = TypeVar("R")


def _outage_is_503(method: Callable[P, R]) -> Callable[P, R]:
    """A database that is down or locked beyond the busy timeout is a 503 to retry, not a 500."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except OperationalError as exc:
            log.error("feedback database unavailable", extra={"error": type(exc.orig).__name__})
            raise StorageUnavailableError("the feedback database is unavailable; nothing was "
                                          "stored, send the request again later") from None

    return wrapper


def _utc_naive(moment: datetime) -> datetime:
    """Store every instant as naive UTC, so SQLite and PostgreSQL compare them the same way."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _key_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL. A jti is only ever compared, so escape it (injectively:
    # backslashes first) rather than fail the caller.
    return value.replace("\\", "\\\\").replace("\x00", "\\0")


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 date-time as naive UTC; ValueError when it is not one."""
    normalised = value.strip().replace("t", "T").replace("z", "Z")
    if normalised.endswith("Z"):
        normalised = normalised[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalised)
    if moment.tzinfo is None:
        raise ValueError("date-time needs a time zone offset")
    try:
        return _utc_naive(moment)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


class Store:
    """Feedback, issued cards and seen JWT ids in one SQLAlchemy database."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.url = url
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        self.engine = self._build_engine(url)
        self._calls = itertools.count()
        self._create_tables()
        # A forked child must not reuse the parent's pooled connections.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(ref))

    @staticmethod
    def _build_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            database = make_url(url).database
            if database and database != ":memory:" and not database.startswith("file:"):
                _private_file(Path(database))
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            _configure_sqlite(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)

    def _create_tables(self) -> None:
        # Several gunicorn workers may start at once: SQLite serialises this under BEGIN IMMEDIATE
        # (see _configure_sqlite), PostgreSQL under a transaction-scoped advisory lock.
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
            metadata.create_all(conn, checkfirst=True)

    def now(self) -> datetime:
        return _utc_naive(self.clock())

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        self.engine.dispose()

    # --- issued cards ---------------------------------------------------------------------------

    def record_cards(self, service_id: str, cards: list[Mapping[str, Any]], kinds: list[str]) -> None:
        """Remember which kind of card each issued uuid was; never fails the service call."""
        try:
            issued = self.now()
            rows: list[dict[str, Any]] = [
                {"card_uuid": str(card["uuid"]), "service_id": service_id, "kind": kind,
                 "issued_at": issued}
                for card, kind in zip(cards, kinds) if card.get("uuid")]
            if not rows:
                return
            with self.engine.begin() as conn:
                conn.execute(self._upsert_issued(conn.dialect.name), rows)
        except Exception as exc:  # the answer matters more than the statistics
            log.warning("could not record issued cards",
                        extra={"service": service_id, "cards": len(cards), "error": type(exc).__name__})

    @staticmethod
    def _upsert_issued(dialect: str) -> Any:
        # The same uuid issued again (pinned uuids in tests, a retried call) updates its row.
        new = {"service_id": issued_cards.c.service_id, "kind": issued_cards.c.kind,
               "issued_at": issued_cards.c.issued_at}
        if dialect == "sqlite":
            stmt = sqlite.insert(issued_cards)
            return stmt.on_conflict_do_update(index_elements=["card_uuid"],
                                              set_={k: stmt.excluded[k] for k in new})
        if dialect == "postgresql":
            pg = postgresql.insert(issued_cards)
            return pg.on_conflict_do_update(index_elements=["card_uuid"],
                                            set_={k: pg.excluded[k] for k in new})
        return insert(issued_cards)

    # --- JWT replay cache -----------------------------------------------------------------------

    @_outage_is_503
    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True if (iss, jti) is new, False if already seen and not yet expired."""
        now = self.now()
        if next(self._calls) % PURGE_EVERY == 0:
            self.purge_expired()
        key = {"iss": _key_text(iss), "jti": _key_text(jti)}
        expires = _utc_naive(expires_at)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(seen_jti).values(**key, expires_at=expires))
            return True
        except IntegrityError:
            pass
        # Seen before: only an expired, not yet purged row may be reused. The conditional update is
        # atomic, so of two processes racing for it exactly one wins.
        with self.engine.begin() as conn:
            reused = conn.execute(
                update(seen_jti)
                .where(seen_jti.c.iss == key["iss"], seen_jti.c.jti == key["jti"],
                       seen_jti.c.expires_at < now)
                .values(expires_at=expires))
        return reused.rowcount == 1

    @_outage_is_503
    def purge_expired(self) -> int:
        """Delete expired jti rows; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(seen_jti).where(seen_jti.c.expires_at < self.now()))
        return int(result.rowcount)

    # --- feedback -------------------------------------------------------------------------------

    @_outage_is_503
    def add_feedback(self, service_id: str, entries: list[Mapping[str, Any]]) -> int:
        """Store validated CDS Hooks feedback entries in one transaction; committed on return."""
        received = self.now()
        rows = [_feedback_row(service_id, entry, received) for entry in entries]
        if not rows:
            return 0
        uuids = sorted({row["card_uuid"] for row in rows})
        with self.engine.begin() as conn:
            found = conn.execute(select(issued_cards.c.card_uuid, issued_cards.c.kind)
                                 .where(issued_cards.c.card_uuid.in_(uuids)))
            kinds = {card_uuid: kind for card_uuid, kind in found}
            for row in rows:
                row["card_kind"] = kinds.get(row["card_uuid"])
            conn.execute(insert(feedback), rows)
        return len(rows)

    @_outage_is_503
    def feedback_summary(self, service_id: str) -> dict[str, Any]:
        """Counts per card kind and outcome, and per override reason code, for one service."""
        kind = func.coalesce(feedback.c.card_kind, issued_cards.c.kind, "unknown")
        with self.engine.begin() as conn:
            by_kind = conn.execute(
                select(kind, feedback.c.outcome, func.count())
                .select_from(feedback.outerjoin(issued_cards,
                                                issued_cards.c.card_uuid == feedback.c.card_uuid))
                .where(feedback.c.service_id == service_id)
                .group_by(kind, feedback.c.outcome)).all()
            reasons = conn.execute(
                select(feedback.c.override_code, func.count())
                .where(feedback.c.service_id == service_id, feedback.c.override_code.is_not(None))
                .group_by(feedback.c.override_code)).all()
            comments = conn.execute(
                select(func.count())
                .where(feedback.c.service_id == service_id, feedback.c.user_comment.is_not(None))
            ).scalar_one()
        summary: dict[str, Any] = {"service": service_id, "total": sum(n for _, _, n in by_kind),
                                   "byKind": {}, "overrideReasons": {}, "overrideComments": comments}
        for card_kind, outcome, count in sorted(by_kind):
            summary["byKind"].setdefault(card_kind, {})[outcome] = count
        for code, count in sorted(reasons):
            summary["overrideReasons"][code] = count
        return summary


def _feedback_row(service_id: str, entry: Mapping[str, Any], received: datetime) -> dict[str, Any]:
    override = entry.get("overrideReason") or {}
    reason = override.get("reason") or {}
    accepted = [str(s["id"]) for s in entry.get("acceptedSuggestions") or []]

    def opt(value: Any) -> str | None:
        return str(value) if value not in (None, "") else None

    return {
        "service_id": service_id,
        "card_uuid": str(entry["card"]),
        "outcome": str(entry["outcome"]),
        "accepted_suggestions": accepted or None,
        "override_system": opt(reason.get("system")),
        "override_code": opt(reason.get("code")),
        "override_display": opt(reason.get("display")),
        "user_comment": opt(override.get("userComment")),
        "outcome_timestamp": parse_timestamp(str(entry["outcomeTimestamp"])),
        "received_at": received,
    }


def private_directory(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by this user only; tighten it when it is
    ours and open to others."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        folder.chmod(0o700)


def _private_file(database: Path) -> None:
    """The SQLite file and its WAL/shared-memory companions are 0600 in a 0700 folder: they hold
    free-text feedback comments. SQLite gives the companions the database file's mode."""
    private_directory(database.parent)
    os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm"), Path(f"{database}-journal")):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)


def _configure_sqlite(engine: Engine) -> None:
    """WAL (readers never block the writer), a busy timeout instead of instant 'database is locked',
    synchronous=FULL (a commit that was answered survives a crash), and real transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, waiting under busy_timeout; a deferred
        # transaction that reads and then writes could fail at once with SQLITE_BUSY instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _dispose_in_child(ref: "weakref.ReferenceType[Store]") -> None:
    store = ref()
    if store is not None:
        store.engine.dispose(close=False)


__all__ = ["Store", "parse_timestamp", "metadata", "feedback", "issued_cards", "seen_jti"]

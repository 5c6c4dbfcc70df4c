"""Durable state shared by every worker and replica: feedback, issued cards (so the feedback summary
knows each card's kind) and the JWT replay cache.

Everything lives in ``FEEDBACK_DB`` (a SQLAlchemy URL): SQLite by default (WAL, one file shared by the
gunicorn workers of one host), PostgreSQL when several replicas run. Cross-process guarantees come
from the database (a uniqueness constraint, committed transactions), never from process memory.

The tables below are the model; a database gets them from the Alembic migrations in
``service/migrations``, applied by ``service.storage.migrate`` when the store opens (a model change needs a
new revision: ``tests/test_migrations.py`` fails while the two differ).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import sqlite3
import stat
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from service.errors import FeedbackQuotaError, StorageUnavailableError
from service.storage import migrate

log = logging.getLogger("tacro_cds.store")

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

# Purge expired jti rows on the first call and then every PURGE_EVERY calls of remember_jti.
PURGE_EVERY = 200
# An override reason code is a code: no markup, no spaces.
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# A client clock may run a little ahead; an outcome far in the future or long before the card was
# issued is not an outcome of that card.
FUTURE_SKEW = timedelta(hours=1)
PAST_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    """How long rows are kept (days); also: feedback on a card older than ``issued_cards_days`` is
    refused, since the card is no longer on record."""

    issued_cards_days: float = 30
    feedback_days: float = 365


@dataclass(frozen=True)
class FeedbackQuota:
    """Per caller (JWT iss): entries per rolling minute, and entries kept in all."""

    per_minute: int = 600
    total: int = 100_000


@dataclass
class FeedbackResult:
    stored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    stored_outcomes: dict[str, int] = field(default_factory=dict)  # entries stored, by outcome

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


SQLITE_BUSY_TIMEOUT_MS = 30_000


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
            raise StorageUnavailableError(
                "the feedback database is unavailable; nothing was stored, send the request again later"
            ) from None

    return wrapper


def _utc_naive(moment: datetime) -> datetime:
    """Store every instant as naive UTC, so SQLite and PostgreSQL compare them the same way."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


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
        self.url = url
        self.retention = retention or Retention()
        self.quota = quota or FeedbackQuota()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.engine = build_engine(url)
        # The issued-card record is best-effort: committed without waiting for the disk (a crash of
        # the process loses nothing; a power cut may lose the last few records, never feedback).
        self.record_engine = build_engine(url, best_effort=True) if _separate_file(url) else self.engine
        self._calls = itertools.count()
        try:
            migrate.bring_up_to_date(self.engine, upgrade=auto_upgrade)
        except BaseException:
            self.dispose()
            raise
        # A forked child must not reuse the parent's pooled connections.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(ref))

    def now(self) -> datetime:
        return _utc_naive(self.clock())

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        self.engine.dispose()
        if self.record_engine is not self.engine:
            self.record_engine.dispose()

    # --- issued cards ---------------------------------------------------------------------------

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
        if next(self._calls) % PURGE_EVERY == 0:
            try:
                self.purge_retained()
            except Exception as exc:  # housekeeping never fails the call; recording is tried all the same
                log.warning("could not purge retained rows", extra={"error": type(exc).__name__})
        try:
            issued = self.now()
            rows: list[dict[str, Any]] = [
                {
                    "card_uuid": str(card["uuid"]),
                    "service_id": service_id,
                    "kind": kind,
                    "issued_at": issued,
                    "issuer": _key_text(issuer or ""),
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
                .where(seen_jti.c.iss == key["iss"], seen_jti.c.jti == key["jti"], seen_jti.c.expires_at < now)
                .values(expires_at=expires)
            )
        return reused.rowcount == 1

    @_outage_is_503
    def purge_expired(self) -> int:
        """Delete expired jti rows; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(seen_jti).where(seen_jti.c.expires_at < self.now()))
        return int(result.rowcount)

    @_outage_is_503
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

    @_outage_is_503
    def check_writable(self) -> None:
        """A write that must reach the disk (readiness): raises StorageUnavailableError if not."""
        with self.engine.begin() as conn:
            conn.execute(insert(seen_jti).values(iss="\0readiness", jti=os.urandom(8).hex(), expires_at=self.now()))
            conn.execute(delete(seen_jti).where(seen_jti.c.iss == "\0readiness"))

    # --- feedback -------------------------------------------------------------------------------

    def add_feedback(
        self, service_id: str, entries: list[Mapping[str, Any]], *, issuer: str | None = None, tenant: str | None = None
    ) -> int:
        """``submit_feedback``, returning how many entries were stored."""
        return self.submit_feedback(service_id, entries, issuer=issuer, tenant=tenant).stored

    @_outage_is_503
    def submit_feedback(
        self, service_id: str, entries: list[Mapping[str, Any]], *, issuer: str | None = None, tenant: str | None = None
    ) -> FeedbackResult:
        """Store validated CDS Hooks feedback entries in one transaction; committed on return.

        An entry is stored only for a card this service issued to this caller (issuer and tenant)
        and still on record, once per card and outcome, with an outcome time between the card's
        issue (less a day) and now (plus an hour), and an override reason code the card offered.
        The others are counted by reason in the result. FeedbackQuotaError (429) when the caller
        is over its rate or quota: then nothing is stored."""
        received = self.now()
        rows = [_feedback_row(service_id, entry, received) for entry in entries]
        result = FeedbackResult()
        if not rows:
            return result
        caller = _key_text(issuer or "")
        uuids = sorted({row["card_uuid"] for row in rows})
        with self.engine.begin() as conn:
            self._check_quota(conn, caller, len(rows), received)
            found = conn.execute(
                select(
                    issued_cards.c.card_uuid,
                    issued_cards.c.kind,
                    issued_cards.c.issued_at,
                    issued_cards.c.tenant,
                    issued_cards.c.override_codes,
                ).where(
                    issued_cards.c.card_uuid.in_(uuids),
                    issued_cards.c.service_id == service_id,
                    issued_cards.c.issuer == caller,
                )
            )
            issued = {row.card_uuid: row for row in found if row.tenant == tenant}
            done = {
                (card, outcome)
                for card, outcome in conn.execute(
                    select(feedback.c.card_uuid, feedback.c.outcome).where(
                        feedback.c.service_id == service_id,
                        feedback.c.issuer == caller,
                        feedback.c.card_uuid.in_(uuids),
                    )
                )
            }
            keep = []
            for row in rows:
                card = issued.get(row["card_uuid"])
                reason = _refusal(row, card, received, done)
                if reason:
                    result.refuse(reason)
                    continue
                assert card is not None  # _refusal refuses a card not on record
                done.add((row["card_uuid"], row["outcome"]))
                row.update(card_kind=card.kind, issuer=caller, tenant=tenant)
                keep.append(row)
            if keep:
                conn.execute(insert(feedback), keep)
        result.stored = len(keep)
        for row in keep:
            result.stored_outcomes[row["outcome"]] = result.stored_outcomes.get(row["outcome"], 0) + 1
        if result.refused:
            log.info(
                "feedback refused",
                extra={
                    "service": service_id,
                    "cards": sum(result.refused.values()),
                    "reason": ",".join(sorted(result.refused)),
                },
            )
        return result

    def _check_quota(self, conn: Any, caller: str, count: int, now: datetime) -> None:
        recent = conn.execute(
            select(func.count())
            .select_from(feedback)
            .where(feedback.c.issuer == caller, feedback.c.received_at > now - timedelta(minutes=1))
        ).scalar_one()
        if recent + count > self.quota.per_minute:
            raise FeedbackQuotaError(
                f"more than {self.quota.per_minute} feedback entries in a minute; "
                "nothing was stored, send it again later"
            )
        total = conn.execute(select(func.count()).select_from(feedback).where(feedback.c.issuer == caller)).scalar_one()
        if total + count > self.quota.total:
            raise FeedbackQuotaError(
                f"this caller's feedback quota ({self.quota.total} entries) is used up; nothing was stored"
            )

    @_outage_is_503
    def feedback_summary(
        self, service_id: str, *, issuer: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Counts per card kind and outcome, and per override reason (system and code: two code
        systems may share a code), for one service and one caller: issuer and tenant (the feedback
        it sent on the cards issued to it; two tenants of one issuer never see each other's)."""
        kind = func.coalesce(feedback.c.card_kind, issued_cards.c.kind, "unknown")
        same_tenant = feedback.c.tenant.is_(None) if tenant is None else feedback.c.tenant == tenant
        mine = and_(feedback.c.issuer == _key_text(issuer or ""), same_tenant)
        with self.engine.begin() as conn:
            by_kind = conn.execute(
                select(kind, feedback.c.outcome, func.count())
                .select_from(feedback.outerjoin(issued_cards, issued_cards.c.card_uuid == feedback.c.card_uuid))
                .where(feedback.c.service_id == service_id, mine)
                .group_by(kind, feedback.c.outcome)
            ).all()
            reasons = conn.execute(
                select(feedback.c.override_system, feedback.c.override_code, func.count())
                .where(feedback.c.service_id == service_id, mine, feedback.c.override_code.is_not(None))
                .group_by(feedback.c.override_system, feedback.c.override_code)
            ).all()
            comments = conn.execute(
                select(func.count()).where(
                    feedback.c.service_id == service_id, mine, feedback.c.user_comment.is_not(None)
                )
            ).scalar_one()
        summary: dict[str, Any] = {
            "service": service_id,
            "total": sum(n for _, _, n in by_kind),
            "byKind": {},
            "overrideReasons": [],
            "overrideComments": comments,
        }
        for card_kind, outcome, count in sorted(by_kind):
            summary["byKind"].setdefault(card_kind, {})[outcome] = count
        for system, code, count in sorted(reasons, key=lambda r: (r[0] or "", r[1])):
            # A reason sent without a system (the public sandbox does) is counted apart, system-less.
            summary["overrideReasons"].append({**({"system": system} if system else {}), "code": code, "count": count})
        return summary


def _offered_codes(card: Mapping[str, Any]) -> list[str] | None:
    reasons = card.get("overrideReasons")
    if not isinstance(reasons, list):
        return None
    return [str(r["code"]) for r in reasons if isinstance(r, Mapping) and r.get("code")]


def _refusal(row: Mapping[str, Any], card: Any, now: datetime, done: set[tuple[str, str]]) -> str | None:
    """Why a feedback entry is not stored, or None."""
    if card is None:
        return "unknown-card"
    if (row["card_uuid"], row["outcome"]) in done:
        return "duplicate"
    moment = row["outcome_timestamp"]
    if moment > now + FUTURE_SKEW or moment < card.issued_at - PAST_SKEW:
        return "timestamp-out-of-range"
    code = row["override_code"]
    if code is not None and (not _CODE.match(code) or (card.override_codes and code not in card.override_codes)):
        return "unknown-override-reason"
    return None


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
    ours and open to others. A shared temporary folder (sticky bit, like /tmp) is never tightened,
    even when this user owns it (root owns /tmp): the files in it are private on their own."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077 and not info.st_mode & stat.S_ISVTX:
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


def build_engine(url: str, *, best_effort: bool = False) -> Engine:
    """The engine the store uses for ``url`` (SQLite: a private file, WAL, the write lock taken at
    the start of every transaction; ``best_effort``: commits not waited for on disk)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_file(Path(database))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine, synchronous="NORMAL" if best_effort else "FULL")
        return engine
    return create_engine(url, pool_pre_ping=True)


def _separate_file(url: str) -> bool:
    """A SQLite database in a file of its own, which a second engine can open (not an in-memory one)."""
    if not url.startswith("sqlite"):
        return False
    database = make_url(url).database
    return bool(database) and database != ":memory:" and "mode=memory" not in url


def _configure_sqlite(engine: Engine, *, synchronous: str = "FULL") -> None:
    """WAL (readers never block the writer), a busy timeout instead of instant 'database is locked',
    synchronous=FULL (a commit that was answered survives a crash; NORMAL for the best-effort
    engine: in WAL mode still safe from corruption and from a killed process, only a power cut
    may lose its last commits), and real transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, waiting under busy_timeout; a deferred
        # transaction that reads and then writes could fail at once with SQLITE_BUSY instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so, in the file). Switching a new database needs it to
    itself, and SQLite answers "database is locked" at once, without its busy timeout, while another
    connection holds a lock (workers starting together, one of them migrating): wait and try again,
    within the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")  # an in-memory database stays "memory"
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _dispose_in_child(ref: weakref.ReferenceType[Store]) -> None:
    store = ref()
    if store is not None:
        store.engine.dispose(close=False)
        if store.record_engine is not store.engine:
            store.record_engine.dispose(close=False)


__all__ = ["Store", "build_engine", "parse_timestamp", "metadata", "feedback", "issued_cards", "seen_jti"]

# The pilot's tables (recorded cards, verdicts, rulebook sign-offs) live in the same database and
# migrations: defined in their own module, registered on ``metadata`` whenever the store is imported.
from service.storage import pilot as _pilot  # noqa: E402,F401

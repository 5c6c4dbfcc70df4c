"""The store's database connection: SQLAlchemy engines (SQLite tuned for several workers sharing one
file, or PostgreSQL), times kept as naive UTC, and the base every part of the store builds on (it
opens the engines and brings the schema up to date)."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.errors import StorageUnavailableError
from service.storage import migrate
from service.storage.files import private_file

log = logging.getLogger("tacro_cds.store")

SQLITE_BUSY_TIMEOUT_MS = 30_000


P = ParamSpec("P")
R = TypeVar("R")


def outage_is_503(method: Callable[P, R]) -> Callable[P, R]:
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


def utc_naive(moment: datetime) -> datetime:
    """Store every instant as naive UTC, so SQLite and PostgreSQL compare them the same way."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def key_text(value: str) -> str:
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
        return utc_naive(moment)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


class Database:
    """The engines of one database (``url``), its clock, and a call counter that paces housekeeping.
    The store's parts (replay cache, issued cards, feedback) share one instance of it."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None, auto_upgrade: bool = True) -> None:
        """Open the database; its schema is brought up to date first (``service.storage.migrate``;
        with ``auto_upgrade`` False only checked), and DatabaseSchemaError stops a start on a
        database this release cannot run on."""
        self.url = url
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
        return utc_naive(self.clock())

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        self.engine.dispose()
        if self.record_engine is not self.engine:
            self.record_engine.dispose()


def build_engine(url: str, *, best_effort: bool = False) -> Engine:
    """The engine the store uses for ``url`` (SQLite: a private file, WAL, the write lock taken at
    the start of every transaction; ``best_effort``: commits not waited for on disk)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_file(Path(database))
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


# How every transaction on a SQLite store begins. IMMEDIATE takes the write lock up front, waiting
# under busy_timeout; a deferred transaction that reads and then writes could fail at once with
# SQLITE_BUSY instead.
SQLITE_BEGIN = "BEGIN IMMEDIATE"


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
        conn.exec_driver_sql(SQLITE_BEGIN)


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


def _dispose_in_child(ref: weakref.ReferenceType[Database]) -> None:
    store = ref()
    if store is not None:
        store.engine.dispose(close=False)
        if store.record_engine is not store.engine:
            store.record_engine.dispose(close=False)

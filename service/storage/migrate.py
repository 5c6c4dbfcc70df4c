"""Bringing the store's database to the schema this release runs on (Alembic, ``service/storage/migrations``).

Every start of the service (each gunicorn worker, each replica) opens the store through
``bring_up_to_date``, which, in one transaction:

- waits for any other process doing the same (PostgreSQL: a transaction-scoped advisory lock; SQLite:
  the write lock ``BEGIN IMMEDIATE`` takes), so workers and replicas starting together migrate once;
- refuses a database whose revision this release does not know (it was upgraded by a newer release);
- recognises a database made before migrations (the store's tables, no ``alembic_version``), stamps
  it with the baseline and upgrades it, keeping its rows;
- upgrades to the newest revision, or, with ``DB_AUTO_UPGRADE`` off, refuses to start until
  ``tacro-cds db upgrade`` has been run.

On PostgreSQL the whole upgrade is one transaction: it is applied completely or not at all.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.errors import DatabaseSchemaError

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("tacro_cds.migrate")

SCRIPT_LOCATION = "service.storage:migrations"
# The revision whose schema the service created before migrations (tables from create_all).
BASELINE = "0001"
STORE_TABLES = frozenset({"feedback", "issued_cards", "seen_jti"})
# Arbitrary fixed key: one migrating process at a time per PostgreSQL database.
PG_MIGRATION_LOCK = 0x7AC_0CD5


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None: none recorded) and this release's newest."""

    current: str | None
    head: str
    made_before_migrations: bool = False  # the store's tables without a recorded revision

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


@dataclass(frozen=True)
class Upgrade:
    """What ``bring_up_to_date`` did: from which revision (None: an empty database) to which."""

    before: SchemaState
    after: str

    @property
    def changed(self) -> bool:
        return self.before.current != self.after or self.before.made_before_migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def head() -> str:
    """The newest revision this release carries."""
    newest = _scripts().get_current_head()
    assert newest is not None, "service/storage/migrations has no revision"
    return newest


def _state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    newest = head()
    if current is not None:
        if current not in _known_revisions():
            raise DatabaseSchemaError(
                f"the database is at schema revision {current}, which this release of tacro-cds does not "
                f"know (its newest is {newest}): a newer release has upgraded it. Run that release (or "
                "newer) against this database; this one does not start on it"
            )
        return SchemaState(current, newest)
    present = STORE_TABLES & set(inspect(conn).get_table_names())
    if present and present != STORE_TABLES:
        raise DatabaseSchemaError(
            f"the database has no schema revision and only some of the store's tables "
            f"({', '.join(sorted(present))}; missing: {', '.join(sorted(STORE_TABLES - present))}): it was "
            "not made by tacro-cds, or not completely; point FEEDBACK_DB at the service's database or at "
            "an empty one"
        )
    return SchemaState(None, newest, made_before_migrations=bool(present))


def _lock(conn: Connection) -> None:
    # SQLite: the store's engines begin every transaction with BEGIN IMMEDIATE, the write lock.
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(PG_MIGRATION_LOCK)))


def schema_state(engine: Engine) -> SchemaState:
    """Where the database stands, without changing it."""
    with engine.begin() as conn:
        _lock(conn)
        return _state(conn)


def bring_up_to_date(engine: Engine, *, upgrade: bool = True) -> Upgrade:
    """Upgrade the database to ``head()`` (see the module's text); with ``upgrade`` False only check
    that it is there. DatabaseSchemaError when the service cannot run on it."""
    with engine.begin() as conn:
        _lock(conn)
        before = _state(conn)
        if before.up_to_date:
            return Upgrade(before, before.head)
        if not upgrade:
            where = (
                "an empty database"
                if before.current is None and not before.made_before_migrations
                else f"revision {before.current or 'none (tables made before migrations)'}"
            )
            raise DatabaseSchemaError(
                f"the database schema is at {where}; this release needs revision {before.head}. Run "
                "`tacro-cds db upgrade` (automatic upgrade at start-up is off: DB_AUTO_UPGRADE=false)"
            )
        config = alembic_config()
        config.attributes["connection"] = conn
        if before.made_before_migrations:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    log.info(
        "database schema upgraded",
        extra={
            "from_revision": before.current or "none",
            "to_revision": before.head,
            "made_before_migrations": before.made_before_migrations,
        },
    )
    return Upgrade(before, before.head)


def migration_engine(url: str) -> Engine:
    """An engine as the store builds it (SQLite: private file, WAL, write lock per transaction)."""
    from service.storage.store import build_engine

    return build_engine(url)


def database_url_from_environment() -> str:
    from service.config import database_url, load_settings

    return database_url(load_settings())


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _unreachable(url: str, exc: OperationalError) -> int:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    print(f"tacro-cds: database: cannot use {_shown(url)}: {reason}", file=sys.stderr)
    return 2


def _upgrade_command(_args: argparse.Namespace) -> int:
    url = database_url_from_environment()
    engine = migration_engine(url)
    try:
        done = bring_up_to_date(engine)
    except OperationalError as exc:
        return _unreachable(url, exc)
    finally:
        engine.dispose()
    if not done.changed:
        print(f"{_shown(url)}: already at revision {done.after}")
    elif done.before.made_before_migrations:
        print(f"{_shown(url)}: tables made before migrations recognised; upgraded to revision {done.after}")
    else:
        print(f"{_shown(url)}: upgraded from {done.before.current or 'an empty database'} to revision {done.after}")
    return 0


def _status_command(_args: argparse.Namespace) -> int:
    url = database_url_from_environment()
    engine = migration_engine(url)
    try:
        state = schema_state(engine)
    except OperationalError as exc:
        return _unreachable(url, exc)
    finally:
        engine.dispose()
    current = state.current or (
        "none (tables made before migrations)" if state.made_before_migrations else "none (empty)"
    )
    print(
        f"{_shown(url)}: revision {current}; this release needs {state.head}"
        + ("" if state.up_to_date else "; run `tacro-cds db upgrade`")
    )
    return 0 if state.up_to_date else 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = sub.add_parser(
        "db",
        help="the store's database schema (Alembic migrations)",
        description="Bring the database named by TACRO_CDS_FEEDBACK_DB (default: the SQLite "
        "file in TACRO_CDS_DATA_DIR) to this release's schema, or show where "
        "it stands.",
    )
    actions = db.add_subparsers(dest="db_command", required=True)
    actions.add_parser(
        "upgrade",
        help="apply every migration the database lacks (safe to repeat; waits for another process doing the same)",
    ).set_defaults(func=_upgrade_command)
    actions.add_parser(
        "status",
        help="print the database's revision and the one this release needs; exit status 1 when an upgrade is due",
    ).set_defaults(func=_status_command)


__all__ = [
    "BASELINE",
    "DatabaseSchemaError",
    "SchemaState",
    "Upgrade",
    "bring_up_to_date",
    "head",
    "schema_state",
    "add_parser",
]

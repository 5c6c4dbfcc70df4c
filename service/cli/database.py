"""``tacro-cds db``: bring the store's database to this release's schema, or show where it stands."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.config import database_url, load_settings
from service.storage.engine import build_engine
from service.storage.migrate import bring_up_to_date, schema_state


def migration_engine(url: str) -> Engine:
    """An engine as the store builds it (SQLite: private file, WAL, write lock per transaction)."""
    return build_engine(url)


def database_url_from_environment() -> str:
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

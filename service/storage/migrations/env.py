"""Alembic environment of the store.

The service (``service.storage.migrate``) hands Alembic an open connection inside the transaction that holds
the migration lock; the migrations then run in that transaction, all or nothing. Run by hand
(``alembic -c alembic.ini ...`` in a checkout, for writing a new revision), the database is the one
the service would use (``TACRO_CDS_FEEDBACK_DB``, else the SQLite file in ``TACRO_CDS_DATA_DIR``) or
``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.storage.store import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite alters a table by copying it; later revisions need batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise SystemExit(
            "tacro-cds migrations inspect the database they upgrade: offline (--sql) mode is not supported"
        )
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from service.storage.migrate import database_url_from_environment, migration_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or database_url_from_environment()
    engine = migration_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()

"""Alembic migrations of the store's tables (``service.storage.store``). ``service.storage.migrate`` applies them;
``env.py`` and ``versions/`` are read by Alembic, shipped with the package so that an installed
service can bring its database up to date."""

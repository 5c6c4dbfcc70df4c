"""Databases for the store, migration and topology tests: an SQLite file always, and a PostgreSQL
schema of its own per test when .ci/run started a server (TACRO_CDS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TACRO_CDS_TEST_POSTGRES_URL")
UNSET = "TACRO_CDS_TEST_POSTGRES_URL not set; .ci/postgres.sh starts a PostgreSQL and sets it"

# The two databases, as fixture params. Under CI (CI=true) the server is part of the run: a missing
# one fails instead of skipping.
DATABASES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL and os.environ.get("CI", "").lower() != "true", reason=UNSET),
        ],
    ),
]


@contextlib.contextmanager
def postgres_schema(prefix: str = "t") -> Iterator[str]:
    """The URL of a new, empty schema on the test server (its search_path), dropped afterwards."""
    if not POSTGRES_URL:  # only reached when the skip is lifted (CI)
        pytest.fail(UNSET)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind`` ("sqlite" in ``folder``, or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.sqlite'}"
        return
    with postgres_schema() as url:
        yield url

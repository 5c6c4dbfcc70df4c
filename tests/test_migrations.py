"""Schema migrations of the store (service/migrations, service/migrate.py), on SQLite always and on
PostgreSQL when .ci/run started one.

Databases made before migrations are rebuilt here the way the earlier code built them: its table
definitions, frozen below, through ``metadata.create_all``, and its start-up patch that added later
columns with ``ALTER TABLE ... ADD COLUMN`` (and no index). Each holds rows in every table; an
upgrade must keep them and leave a database the service works on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import FIXED_NOW, SteppingClock
from db_support import DATABASES, empty_database
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
    insert,
    inspect,
    text,
)
from sqlalchemy.engine import make_url

from service import create_app
from service.cli.main import main as cli_main
from service.errors import DatabaseSchemaError
from service.storage import migrate
from service.storage.store import Store, build_engine, metadata

SERVICE = "tacrolimus-order-select"
NOW = FIXED_NOW.replace(tzinfo=None)


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database per test: an SQLite file, or a PostgreSQL schema of its own."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    built = build_engine(db_url)
    yield built
    built.dispose()


# --- the schemas made before migrations -----------------------------------------------------------


def _first_release_tables() -> MetaData:
    """The tables of the first release with a store: no caller columns, no later index."""
    old = MetaData()
    Table(
        "feedback",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("service_id", String(100), nullable=False),
        Column("card_uuid", Text, nullable=False),
        Column("card_kind", Text, nullable=True),
        Column("outcome", String(20), nullable=False),
        Column("accepted_suggestions", JSON, nullable=True),
        Column("override_system", Text, nullable=True),
        Column("override_code", Text, nullable=True),
        Column("override_display", Text, nullable=True),
        Column("user_comment", Text, nullable=True),
        Column("outcome_timestamp", DateTime, nullable=False),
        Column("received_at", DateTime, nullable=False),
        Index("ix_feedback_service", "service_id"),
    )
    Table(
        "issued_cards",
        old,
        Column("card_uuid", Text, primary_key=True),
        Column("service_id", String(100), nullable=False),
        Column("kind", Text, nullable=False),
        Column("issued_at", DateTime, nullable=False),
    )
    Table(
        "seen_jti",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("iss", Text, nullable=False),
        Column("jti", Text, nullable=False),
        Column("expires_at", DateTime, nullable=False),
        UniqueConstraint("iss", "jti", name="uq_seen_jti_iss_jti"),
        Index("ix_seen_jti_expires", "expires_at"),
    )
    return old


def _tables_before_migrations() -> MetaData:
    """The tables as the last release before migrations created them in a new database."""
    old = MetaData()
    Table(
        "feedback",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("service_id", String(100), nullable=False),
        Column("card_uuid", Text, nullable=False),
        Column("card_kind", Text, nullable=True),
        Column("outcome", String(20), nullable=False),
        Column("accepted_suggestions", JSON, nullable=True),
        Column("override_system", Text, nullable=True),
        Column("override_code", Text, nullable=True),
        Column("override_display", Text, nullable=True),
        Column("user_comment", Text, nullable=True),
        Column("outcome_timestamp", DateTime, nullable=False),
        Column("received_at", DateTime, nullable=False),
        Column("issuer", Text, nullable=False, server_default=""),
        Column("tenant", Text, nullable=True),
        Index("ix_feedback_service", "service_id"),
        Index("ix_feedback_issuer_received", "issuer", "received_at"),
        Index("uq_feedback_card_caller_outcome", "service_id", "card_uuid", "issuer", "outcome", unique=True),
    )
    Table(
        "issued_cards",
        old,
        Column("card_uuid", Text, primary_key=True),
        Column("service_id", String(100), nullable=False),
        Column("kind", Text, nullable=False),
        Column("issued_at", DateTime, nullable=False),
        Column("issuer", Text, nullable=False, server_default=""),
        Column("tenant", Text, nullable=True),
        Column("override_codes", JSON, nullable=True),
        Index("ix_issued_cards_issued_at", "issued_at"),
    )
    Table(
        "seen_jti",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("iss", Text, nullable=False),
        Column("jti", Text, nullable=False),
        Column("expires_at", DateTime, nullable=False),
        UniqueConstraint("iss", "jti", name="uq_seen_jti_iss_jti"),
        Index("ix_seen_jti_expires", "expires_at"),
    )
    return old


# What the earlier start-up patch ran on a first-release database, column by column.
PATCHED_COLUMNS = {
    "feedback": ["issuer TEXT NOT NULL DEFAULT ''", "tenant TEXT"],
    "issued_cards": ["issuer TEXT NOT NULL DEFAULT ''", "tenant TEXT", "override_codes JSON"],
}


def _build_first_release(engine: Engine) -> MetaData:
    old = _first_release_tables()
    with engine.begin() as conn:
        old.create_all(conn)
    return old


def _build_first_release_patched(engine: Engine) -> MetaData:
    _build_first_release(engine)
    with engine.begin() as conn:
        for table, columns in PATCHED_COLUMNS.items():
            for column in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column}")
    patched = MetaData()
    patched.reflect(bind=engine, only=["feedback", "issued_cards", "seen_jti"])
    return patched


def _build_before_migrations(engine: Engine) -> MetaData:
    old = _tables_before_migrations()
    with engine.begin() as conn:
        old.create_all(conn)
    return old


SHAPES: dict[str, Callable[[Engine], MetaData]] = {
    "made by the last release before migrations": _build_before_migrations,
    "made by the first release": _build_first_release,
    "first release, columns added by the later start-up patch": _build_first_release_patched,
}


def _fill(engine: Engine, old: MetaData, *, repeats: bool) -> None:
    """Rows in every table: three issued cards, feedback on two of them (and, where the schema did not
    prevent it, the same outcome of one card sent twice), two JWT ids."""
    feedback, issued, seen = (old.tables[name] for name in ("feedback", "issued_cards", "seen_jti"))
    has_caller = "issuer" in feedback.c
    caller: dict[str, Any] = {"issuer": "https://ehr.example.org", "tenant": "t1"} if has_caller else {}
    with engine.begin() as conn:
        for n, kind in enumerate(["dose", "trough", "interaction:fluconazole"]):
            row = {
                "card_uuid": f"old-card-{n}",
                "service_id": SERVICE,
                "kind": kind,
                "issued_at": NOW - timedelta(hours=2),
            }
            row.update(caller)
            if "override_codes" in issued.c:
                row["override_codes"] = ["clinical-judgement"]
            conn.execute(insert(issued).values(**row))
        entries = [
            ("old-card-0", "accepted", None, None),
            ("old-card-1", "overridden", "clinical-judgement", "seen by the ward"),
        ]
        if repeats:
            entries.append(("old-card-0", "accepted", None, "sent again"))
        for card, outcome, code, comment in entries:
            kind = "dose" if card == "old-card-0" else "trough"
            conn.execute(
                insert(feedback).values(
                    service_id=SERVICE,
                    card_uuid=card,
                    card_kind=kind,
                    outcome=outcome,
                    accepted_suggestions=["s1"] if outcome == "accepted" else None,
                    override_system="http://example.org/fhir/CodeSystem/tacro-cds-override" if code else None,
                    override_code=code,
                    override_display=None,
                    user_comment=comment,
                    outcome_timestamp=NOW - timedelta(hours=1),
                    received_at=NOW - timedelta(hours=1),
                    **caller,
                )
            )
        for n in range(2):
            conn.execute(
                insert(seen).values(
                    iss="https://ehr.example.org", jti=f"jti-{n}", expires_at=NOW + timedelta(minutes=5)
                )
            )


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, by the columns every schema has."""
    columns = {
        "feedback": [
            "id",
            "service_id",
            "card_uuid",
            "card_kind",
            "outcome",
            "accepted_suggestions",
            "override_code",
            "user_comment",
            "outcome_timestamp",
            "received_at",
        ],
        "issued_cards": ["card_uuid", "service_id", "kind", "issued_at"],
        "seen_jti": ["iss", "jti", "expires_at"],
    }
    found = {}
    with engine.connect() as conn:
        for table, names in columns.items():
            query = text(f"SELECT {', '.join(names)} FROM {table} ORDER BY {names[0]}")
            found[table] = [tuple(row) for row in conn.execute(query)]
    return found


def _model_differences(engine: Engine, target: MetaData = metadata) -> list[Any]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), target)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _post_feedback_and_summarise(url: str, tmp_path, store: Store) -> dict[str, Any]:
    """Through the service: a card issued, feedback on it posted, the summary read."""
    app = create_app(
        {"AUTH_REQUIRED": False, "FEEDBACK_DB": url, "DATA_DIR": str(tmp_path / "data")},
        clock=lambda: FIXED_NOW,
        store=store,
    )
    store.record_cards(
        SERVICE, [{"uuid": "new-card", "summary": "s", "indicator": "info", "source": {"label": "l"}}], ["dose"]
    )
    client = app.test_client()
    posted = client.post(
        f"/cds-services/{SERVICE}/feedback",
        json={
            "feedback": [
                {
                    "card": "new-card",
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": "s1"}],
                    "outcomeTimestamp": "2026-11-25T08:59:00Z",
                }
            ]
        },
    )
    assert posted.status_code == 200 and posted.get_json() == {"stored": 1}
    summary = client.get(f"/cds-services/{SERVICE}/feedback/summary")
    assert summary.status_code == 200
    return summary.get_json()


# --- fresh databases --------------------------------------------------------------------------------


def test_a_fresh_database_is_brought_to_the_newest_revision(engine):
    done = migrate.bring_up_to_date(engine)
    assert (done.before.current, done.after, done.changed) == (None, migrate.head(), True)
    assert _revision(engine) == migrate.head()
    assert set(inspect(engine).get_table_names()) >= {"feedback", "issued_cards", "seen_jti", "alembic_version"}


def test_the_migrations_build_exactly_the_models(engine):
    """A change to the tables in service/store.py without a migration fails here."""
    migrate.bring_up_to_date(engine)
    assert _model_differences(engine) == []


def test_the_model_check_sees_a_column_no_migration_adds(engine):
    migrate.bring_up_to_date(engine)
    changed = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["feedback"].append_column(Column("reviewed_by", Text, nullable=True))
    differences = _model_differences(engine, changed)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "reviewed_by")]


# --- databases made before migrations -------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_database_made_before_migrations_is_upgraded_with_every_row_kept(db_url, engine, tmp_path, shape):
    old = SHAPES[shape](engine)
    _fill(engine, old, repeats=False)
    before = _rows(engine)

    store = Store(db_url, clock=SteppingClock())
    try:
        assert _revision(engine) == migrate.head()
        assert _rows(engine) == before
        assert _model_differences(engine) == []
        summary = _post_feedback_and_summarise(db_url, tmp_path, store)
    finally:
        store.dispose()
    if "issuer" in old.tables["feedback"].c:  # the old rows belong to their caller, not to this one
        assert summary["byKind"] == {"dose": {"accepted": 1}}
    else:  # rows from before callers were recorded count as the unauthenticated caller's ("")
        assert summary["byKind"] == {"dose": {"accepted": 2}, "trough": {"overridden": 1}}
        assert summary["overrideComments"] == 1


@pytest.mark.parametrize("shape", [name for name in SHAPES if "first release" in name])
def test_repeated_feedback_is_reduced_to_its_first_entry_before_the_unique_index(engine, shape):
    old = SHAPES[shape](engine)
    _fill(engine, old, repeats=True)
    before = _rows(engine)["feedback"]
    assert len(before) == 3

    migrate.bring_up_to_date(engine)

    after = _rows(engine)["feedback"]
    assert after == before[:2]  # the later repeat (its comment "sent again") is the one removed
    assert "uq_feedback_card_caller_outcome" in {index["name"] for index in inspect(engine).get_indexes("feedback")}
    assert _model_differences(engine) == []


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_second_upgrade_changes_nothing(engine, shape):
    _fill(engine, SHAPES[shape](engine), repeats=False)
    first = migrate.bring_up_to_date(engine)
    assert first.changed and first.before.made_before_migrations
    rows = _rows(engine)

    second = migrate.bring_up_to_date(engine)

    assert not second.changed and second.before.current == migrate.head()
    assert _rows(engine) == rows
    assert _model_differences(engine) == []


def test_workers_opening_a_database_made_before_migrations_together_upgrade_it_once(db_url, engine):
    _fill(engine, _build_first_release(engine), repeats=True)
    start = threading.Barrier(4)
    outcomes: list[Any] = []

    def open_store() -> None:
        start.wait()
        local = build_engine(db_url)
        try:
            outcomes.append(migrate.bring_up_to_date(local))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcomes.append(exc)
        finally:
            local.dispose()

    workers = [threading.Thread(target=open_store) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(outcomes) == 4 and all(isinstance(o, migrate.Upgrade) for o in outcomes), outcomes
    assert sum(o.changed for o in outcomes) == 1
    assert len(_rows(engine)["feedback"]) == 2
    assert _revision(engine) == migrate.head()


# --- databases the service refuses ----------------------------------------------------------------


def _stamp(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.exec_driver_sql(f"INSERT INTO alembic_version VALUES ('{revision}')")


def test_a_database_upgraded_by_a_newer_release_stops_start_up(db_url, engine, tmp_path):
    migrate.bring_up_to_date(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00d-from-the-future'")

    with pytest.raises(DatabaseSchemaError, match="f00d-from-the-future.*newer release"):
        Store(db_url)
    with pytest.raises(DatabaseSchemaError, match="newer release"):
        create_app({"AUTH_REQUIRED": False, "FEEDBACK_DB": db_url, "DATA_DIR": str(tmp_path / "data")})
    assert _revision(engine) == "f00d-from-the-future"


@pytest.mark.parametrize("present", [["feedback"], ["issued_cards", "seen_jti"]])
def test_a_database_with_only_some_of_the_tables_is_refused_not_recreated(engine, present):
    old = _first_release_tables()
    with engine.begin() as conn:
        old.create_all(conn, tables=[old.tables[name] for name in present])

    with pytest.raises(DatabaseSchemaError, match="only some of the store's tables"):
        migrate.bring_up_to_date(engine)
    assert sorted(inspect(engine).get_table_names()) == sorted(present)


def test_with_automatic_upgrade_off_a_database_behind_stops_start_up_until_upgraded(db_url, engine):
    _fill(engine, _build_first_release(engine), repeats=False)
    with pytest.raises(DatabaseSchemaError, match="tacro-cds db upgrade"):
        Store(db_url, auto_upgrade=False)
    assert _revision(engine) is None and "issuer" not in {c["name"] for c in inspect(engine).get_columns("feedback")}

    migrate.bring_up_to_date(engine)
    Store(db_url, auto_upgrade=False).dispose()


# --- the command ----------------------------------------------------------------------------------


def test_db_upgrade_and_status_commands(db_url, engine, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", db_url)
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(tmp_path / "data"))
    _fill(engine, _build_before_migrations(engine), repeats=False)
    rows = _rows(engine)

    assert cli_main(["db", "status"]) == 1
    assert "tables made before migrations" in capsys.readouterr().out
    assert cli_main(["db", "upgrade"]) == 0
    assert f"upgraded to revision {migrate.head()}" in capsys.readouterr().out
    assert cli_main(["db", "upgrade"]) == 0
    assert f"already at revision {migrate.head()}" in capsys.readouterr().out
    assert cli_main(["db", "status"]) == 0
    out = capsys.readouterr().out
    assert f"revision {migrate.head()}; this release needs {migrate.head()}" in out
    password = make_url(db_url).password
    assert not password or str(password) not in out
    assert _rows(engine) == rows


def test_db_upgrade_on_a_newer_database_fails_with_the_reason(db_url, engine, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", db_url)
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(tmp_path / "data"))
    _stamp(engine, "f00d-from-the-future")

    assert cli_main(["db", "upgrade"]) == 2
    assert "newer release" in capsys.readouterr().err


def test_serve_stops_before_starting_workers_on_a_newer_database(db_url, engine, tmp_path):
    """gunicorn's master checks the database before it forks: one message, exit status 2."""
    _stamp(engine, "f00d-from-the-future")
    env = {**os.environ, "TACRO_CDS_FEEDBACK_DB": db_url, "TACRO_CDS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2, done.stderr
    assert "tacro-cds: database: the database is at schema revision f00d-from-the-future" in done.stderr
    assert "Booting worker" not in done.stderr


def test_automatic_upgrade_is_turned_off_by_its_environment_variable(db_url, engine, monkeypatch, tmp_path):
    monkeypatch.setenv("TACRO_CDS_DB_AUTO_UPGRADE", "false")
    settings = {"AUTH_REQUIRED": False, "FEEDBACK_DB": db_url, "DATA_DIR": str(tmp_path / "data")}
    with pytest.raises(DatabaseSchemaError, match="an empty database.*tacro-cds db upgrade"):
        create_app(settings)
    assert _revision(engine) is None

    monkeypatch.setenv("TACRO_CDS_DB_AUTO_UPGRADE", "true")
    create_app(settings).extensions["tacro_cds"].store.dispose()
    assert _revision(engine) == migrate.head()


def test_db_upgrade_on_an_unreachable_database_says_so_without_the_password(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", "postgresql+psycopg://tacro:s3cret-pw@127.0.0.1:1/tacro_cds")
    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(tmp_path / "data"))

    assert cli_main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tacro-cds: database: cannot use postgresql+psycopg://tacro:***@127.0.0.1:1/tacro_cds")
    assert "s3cret-pw" not in err

"""The Store contract (service/store.py), on SQLite always and on PostgreSQL when .ci/run started one.

Two Store instances on one database stand for two gunicorn workers (or two replicas): whatever one
remembers, the other must see.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from conftest import SteppingClock
from db_support import DATABASES, empty_database
from sqlalchemy import text

from service.storage.store import PURGE_EVERY, Store, parse_timestamp


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database per test: an SQLite file, or a PostgreSQL schema of its own."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def open_store(db_url, clock) -> Iterator[Callable[[], Store]]:
    """Open Store instances on the test's database (each one like a separate worker)."""
    stores: list[Store] = []

    def factory() -> Store:
        store = Store(db_url, clock=clock)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.dispose()


def card(card_uuid: str) -> dict:
    return {"uuid": card_uuid, "summary": "s", "indicator": "info", "source": {"label": "x"}}


def entry(card_uuid: str, outcome: str = "accepted", **extra) -> dict:
    out = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": "2026-11-25T08:59:00Z"}
    if outcome == "accepted":
        out["acceptedSuggestions"] = [{"id": f"{card_uuid}-s1"}]
    out.update(extra)
    return out


# --- creation -------------------------------------------------------------------------------------


def test_opening_twice_keeps_the_data(open_store):
    """Creating tables is idempotent: a second worker starting later sees the first one's data."""
    first = open_store()
    first.record_cards("svc", [card("c1")], ["dose"])
    first.add_feedback("svc", [entry("c1")])
    assert open_store().feedback_summary("svc")["total"] == 1


def test_many_workers_starting_at_once_all_open_the_store(db_url, clock):
    """Several gunicorn workers create the tables at the same moment without an error."""
    errors: list[BaseException] = []
    stores: list[Store] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            stores.append(Store(db_url, clock=clock))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stores[0].record_cards("svc", [card("c1")], ["dose"])
    stores[0].add_feedback("svc", [entry("c1")])
    assert all(s.feedback_summary("svc")["total"] == 1 for s in stores)
    for s in stores:
        s.dispose()


# --- JWT replay cache -----------------------------------------------------------------------------


def test_a_new_jti_is_remembered_and_a_replay_refused(open_store, clock):
    store = open_store()
    expires = clock.now + timedelta(minutes=5)
    assert store.remember_jti("https://issuer.example", "jti-1", expires) is True
    assert store.remember_jti("https://issuer.example", "jti-1", expires) is False


def test_the_same_jti_from_another_issuer_is_a_different_token(open_store, clock):
    store = open_store()
    expires = clock.now + timedelta(minutes=5)
    assert store.remember_jti("https://a.example", "jti-1", expires) is True
    assert store.remember_jti("https://b.example", "jti-1", expires) is True


def test_replay_to_another_worker_is_refused(open_store, clock):
    """The replay cache holds across processes, not in one worker's memory."""
    worker_a, worker_b = open_store(), open_store()
    expires = clock.now + timedelta(minutes=5)
    assert worker_a.remember_jti("https://issuer.example", "jti-1", expires) is True
    assert worker_b.remember_jti("https://issuer.example", "jti-1", expires) is False


def test_simultaneous_replays_let_exactly_one_through(open_store, clock):
    """The uniqueness constraint, not a check-then-insert, decides: one winner among racers."""
    stores = [open_store() for _ in range(2)]
    expires = clock.now + timedelta(minutes=5)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def race(i: int) -> None:
        barrier.wait()
        results.append(stores[i % 2].remember_jti("https://issuer.example", "contested", expires))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_an_expired_jti_may_be_seen_again(open_store, clock):
    store = open_store()
    assert store.remember_jti("iss", "jti-1", clock.now + timedelta(minutes=5)) is True
    clock.advance(minutes=6)
    assert store.remember_jti("iss", "jti-1", clock.now + timedelta(minutes=5)) is True
    assert store.remember_jti("iss", "jti-1", clock.now + timedelta(minutes=5)) is False


def test_purge_removes_only_expired_ids(open_store, clock):
    store = open_store()
    for i in range(3):
        store.remember_jti("iss", f"short-{i}", clock.now + timedelta(minutes=1))
    store.remember_jti("iss", "long", clock.now + timedelta(hours=1))
    clock.advance(minutes=10)
    assert store.purge_expired() == 3
    assert store.remember_jti("iss", "long", clock.now + timedelta(hours=1)) is False


def test_expired_ids_are_purged_without_being_asked(open_store, clock):
    store = open_store()
    store.remember_jti("iss", "short", clock.now + timedelta(minutes=1))
    clock.advance(minutes=10)
    for i in range(PURGE_EVERY):
        store.remember_jti("iss", f"later-{i}", clock.now + timedelta(minutes=5))
    assert store.purge_expired() == 0


def test_timezone_of_the_expiry_does_not_matter(open_store, clock):
    store = open_store()
    in_paris = (clock.now + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=1)))
    assert store.remember_jti("iss", "jti-1", in_paris) is True
    clock.advance(minutes=4)
    assert store.remember_jti("iss", "jti-1", in_paris) is False


@pytest.mark.parametrize("jti", ["with\x00nul", "back\\slash", "\\0", "ünïcode-☃", "x" * 2000])
def test_odd_jti_values_are_stored_and_compared(open_store, clock, jti):
    store = open_store()
    expires = clock.now + timedelta(minutes=5)
    assert store.remember_jti("iss", jti, expires) is True
    assert store.remember_jti("iss", jti, expires) is False


def test_nul_escaping_does_not_merge_distinct_ids(open_store, clock):
    store = open_store()
    expires = clock.now + timedelta(minutes=5)
    assert store.remember_jti("iss", "a\x00", expires) is True
    assert store.remember_jti("iss", "a\\0", expires) is True


# --- feedback -------------------------------------------------------------------------------------


def test_feedback_is_counted_per_card_kind_and_outcome(open_store):
    store = open_store()
    store.record_cards("svc", [card("c-dose"), card("c-trough"), card("c-dose-2")], ["dose", "trough", "dose"])
    stored = store.add_feedback(
        "svc",
        [
            entry("c-dose"),
            entry(
                "c-dose-2",
                "overridden",
                overrideReason={"reason": {"system": "http://example.org/reasons", "code": "patient-declined"}},
            ),
            entry("c-trough", "overridden", overrideReason={"userComment": "level drawn elsewhere"}),
            entry(
                "never-issued",
                "overridden",
                overrideReason={"reason": {"code": "patient-declined", "display": "Patient declined"}},
            ),
        ],
    )
    assert stored == 3  # feedback on a card this service never issued is refused
    assert store.feedback_summary("svc") == {
        "service": "svc",
        "total": 3,
        "byKind": {"dose": {"accepted": 1, "overridden": 1}, "trough": {"overridden": 1}},
        "overrideReasons": [{"system": "http://example.org/reasons", "code": "patient-declined", "count": 1}],
        "overrideComments": 1,
    }


def test_summary_is_per_service(open_store):
    store = open_store()
    store.record_cards("svc-a", [card("c1")], ["dose"])
    store.record_cards("svc-b", [card("c2"), card("c3")], ["dose", "dose"])
    store.add_feedback("svc-a", [entry("c1")])
    store.add_feedback("svc-b", [entry("c2"), entry("c3")])
    assert store.feedback_summary("svc-a")["total"] == 1
    assert store.feedback_summary("svc-b")["total"] == 2
    assert store.feedback_summary("svc-c") == {
        "service": "svc-c",
        "total": 0,
        "byKind": {},
        "overrideReasons": [],
        "overrideComments": 0,
    }


def test_kind_recorded_by_another_worker_is_used(open_store):
    worker_a, worker_b = open_store(), open_store()
    worker_a.record_cards("svc", [card("c1")], ["interaction:fluconazole"])
    worker_b.add_feedback("svc", [entry("c1", "overridden", overrideReason={"userComment": "ok"})])
    assert worker_a.feedback_summary("svc")["byKind"] == {"interaction:fluconazole": {"overridden": 1}}


def test_reissued_uuid_takes_the_latest_kind(open_store):
    store = open_store()
    store.record_cards("svc", [card("c1")], ["dose"])
    store.record_cards("svc", [card("c1")], ["trough"])
    store.add_feedback("svc", [entry("c1")])
    assert store.feedback_summary("svc")["byKind"] == {"trough": {"accepted": 1}}


def test_record_cards_failure_does_not_raise(open_store, caplog):
    """A service call must not fail because the statistics table could not be written."""
    store = open_store()
    store.engine.dispose()
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE issued_cards"))
    # The app's logging stops at the "tacro_cds" logger (no propagation), so listen there.
    logger = logging.getLogger("tacro_cds.store")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)  # an app built earlier with LOG_LEVEL=ERROR must not hide the warning
    try:
        store.record_cards("svc", [card("c1")], ["dose"])
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(logging.NOTSET)
    assert "could not record issued cards" in caplog.text
    assert "c1" not in caplog.text


def test_concurrent_feedback_from_threads_and_workers_is_all_kept(open_store):
    workers = [open_store(), open_store()]
    errors: list[BaseException] = []
    uuids = [f"c{i}-{j}-{x}" for i in range(8) for j in range(10) for x in "ab"]
    workers[0].record_cards("svc", [card(u) for u in uuids], ["dose"] * len(uuids))

    def post(i: int) -> None:
        try:
            for j in range(10):
                workers[i % 2].add_feedback("svc", [entry(f"c{i}-{j}-a"), entry(f"c{i}-{j}-b")])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert workers[0].feedback_summary("svc")["total"] == 8 * 10 * 2


def test_feedback_is_all_or_nothing(open_store):
    """One transaction per post: an entry that cannot be stored leaves none of its batch behind."""
    store = open_store()
    with pytest.raises(ValueError):
        store.add_feedback("svc", [entry("c1"), entry("c2", outcomeTimestamp="not a time")])
    assert store.feedback_summary("svc")["total"] == 0


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2026-11-25T09:00:00Z", datetime(2026, 11, 25, 9, 0)),
        ("2026-11-25t09:00:00z", datetime(2026, 11, 25, 9, 0)),
        ("2026-11-25T10:00:00.123+01:00", datetime(2026, 11, 25, 9, 0, 0, 123000)),
    ],
    ids=["utc-z", "lowercase", "offset-with-fraction"],
)
def test_outcome_timestamps_are_stored_as_utc(raw, expected):
    assert parse_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["2026-11-25T09:00:00", "2026-11-25", "yesterday", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
    ids=["no-offset", "date-only", "words", "before-year-1-in-utc", "after-year-9999-in-utc"],
)
def test_timestamps_without_offset_or_time_are_refused(raw):
    with pytest.raises(ValueError):
        parse_timestamp(raw)


def test_issued_cards_are_recorded_without_waiting_for_the_disk_and_feedback_is_not(tmp_path, clock):
    """The best-effort card record commits with synchronous=NORMAL; feedback and the jti cache keep
    FULL. Both write the same file, so feedback on a card just recorded is accepted."""
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}", clock=clock)
    try:
        with store.record_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        store.record_cards("svc", [card("c1")], ["dose"])
        assert store.add_feedback("svc", [entry("c1")]) == 1
    finally:
        store.dispose()


def test_an_in_memory_store_records_cards_on_its_one_database(clock):
    store = Store("sqlite://", clock=clock)
    try:
        assert store.record_engine is store.engine
        store.record_cards("svc", [card("c1")], ["dose"])
        assert store.add_feedback("svc", [entry("c1")]) == 1
    finally:
        store.dispose()

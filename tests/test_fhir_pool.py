"""Kept-alive FHIR connections: a request whose reused connection the server had closed is sent
again once on a new connection; a new connection that fails is not retried; a connection the
call's deadline cut is never handed to the next request."""

from __future__ import annotations

import threading
import time

import pytest
from fault_server import FaultServer, close_without_answer, reset

from bench.fhir_standin import FhirStandIn, synthetic_answers
from service.fhir.client import FhirClient, FhirConnectionError, FhirTimeoutError, new_session

# A late answer comes LATE_S after the request; a deadline kept cuts the call long before, within its
# timeout plus MARGIN_S (a loaded 2-core machine schedules the clock thread late, never seconds late).
LATE_S = 5.0
MARGIN_S = 2.5


@pytest.fixture
def kept_session():
    session = new_session(4)
    yield session
    session.close()


def test_a_reused_connection_closed_by_the_server_is_retried_once_on_a_new_one(kept_session):
    with FhirStandIn(synthetic_answers("p1"), drop_reused_after=0.0) as server:
        client = FhirClient(server.url, "token", session=kept_session)
        ids = [client.read("Patient/p1")["id"] for _ in range(4)]
        assert ids == ["p1"] * 4
        # Requests 2-4 each met a closed connection and went again on a new one.
        assert (server.served, server.dropped, server.connections) == (4, 3, 4)


def test_connections_are_reused_while_the_server_keeps_them(kept_session):
    with FhirStandIn(synthetic_answers("p1")) as server:
        client = FhirClient(server.url, "token", session=kept_session)
        for _ in range(5):
            assert client.search("Observation?patient=p1")
        assert (server.served, server.connections) == (5, 1)


@pytest.mark.parametrize("fault", [close_without_answer, reset], ids=["closed", "reset"])
def test_a_new_connection_that_fails_is_not_retried(kept_session, fault):
    with FaultServer(default=fault()) as server:
        client = FhirClient(server.base, "token", session=kept_session)
        with pytest.raises(FhirConnectionError):
            client.read("Patient/p1")
        assert server.wait_idle(2)
        assert len(server.requests) == server.connections == 1


def test_a_connection_cut_at_the_deadline_is_not_used_again(kept_session):
    with FhirStandIn(synthetic_answers("p1"), delay=0.6) as server:
        client = FhirClient(server.url, "token", session=kept_session, timeout=0.2)
        with pytest.raises(FhirTimeoutError):
            client.read("Patient/p1")
        server.delay = 0.0
        client.timeout = 5.0
        assert client.read("Patient/p1")["id"] == "p1"
        assert client.read("Patient/p1")["id"] == "p1"
        # The cut connection was replaced by one new connection, which the third read reused.
        assert server.connections == 2


def test_a_retry_keeps_to_the_calls_deadline(kept_session):
    """The server closes the reused connection and then answers late: the retry is still bounded
    by the same deadline as the first attempt."""
    with FhirStandIn(synthetic_answers("p1"), drop_reused_after=0.0) as server:
        client = FhirClient(server.url, "token", session=kept_session)
        assert client.read("Patient/p1")["id"] == "p1"  # the default timeout: a busy machine's first call
        server.delay = LATE_S
        client.timeout = 0.3
        started = time.monotonic()
        with pytest.raises(FhirTimeoutError):
            client.read("Patient/p1")
        assert time.monotonic() - started < 0.3 + MARGIN_S
        assert (server.dropped, server.connections) == (1, 2)


def test_every_deadline_is_kept_by_one_clock_thread(kept_session):
    """Each GET's deadline is watched without a thread of its own: however many requests, the
    process has one deadline clock, and it still cuts a request at its deadline."""
    with FhirStandIn(synthetic_answers("p1")) as server:
        client = FhirClient(server.url, "token", session=kept_session)
        for _ in range(20):
            assert client.read("Patient/p1")["id"] == "p1"
        assert [t.name for t in threading.enumerate() if t.name.startswith("fhir-deadline")] == ["fhir-deadlines"]
        server.delay = LATE_S
        client.timeout = 0.2
        started = time.monotonic()
        with pytest.raises(FhirTimeoutError):
            client.read("Patient/p1")
        assert time.monotonic() - started < 0.2 + MARGIN_S

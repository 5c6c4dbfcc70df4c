"""FhirClient: headers, paging on the same server only, caps, and one exception per failure."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import responses
from fault_server import FaultServer, trickle_head
from fhir_doubles import BASE, FHIR_JSON, TOKEN, RawServer, auth_matcher, bundle, fhir_get, http_head, observation

from service.fhir.client import (
    FhirClient,
    FhirConnectionError,
    FhirContentTypeError,
    FhirForbiddenError,
    FhirHttpError,
    FhirNotFhirError,
    FhirNotFoundError,
    FhirNotJsonError,
    FhirPagingError,
    FhirRateLimitedError,
    FhirResponseTooLargeError,
    FhirServerError,
    FhirTimeoutError,
    FhirTruncatedError,
    FhirUnauthorizedError,
)


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with-token", "without-token"])
def test_search_sends_accept_and_the_bearer_token_or_none(rsps, token):
    """2.0: "the CDS Service MUST use the access token ... as a Bearer token" when one was given;
    the sandbox sends fhirServer alone for an open server."""
    fhir_get(rsps, r"Observation", bundle(observation("o1")), token=token)
    found = FhirClient(BASE, token).search("Observation?patient=p&_count=5")
    assert [r["id"] for r in found] == ["o1"]
    assert rsps.calls[0].request.headers["Accept"] == FHIR_JSON


def test_read_returns_the_resource(rsps):
    fhir_get(rsps, r"Patient/p1", {"resourceType": "Patient", "id": "p1"})
    assert FhirClient(BASE, TOKEN).read("Patient/p1")["id"] == "p1"


def test_search_drops_operation_outcome_entries_and_keeps_the_asked_types(rsps):
    answer = bundle(
        observation("o1"), {"resourceType": "OperationOutcome", "issue": []}, {"resourceType": "Patient", "id": "p"}
    )
    answer["entry"].append({"fullUrl": "no-resource"})
    fhir_get(rsps, r"Observation", answer)
    fhir_get(rsps, r"Observation", answer)
    client = FhirClient(BASE, TOKEN)
    assert [r["resourceType"] for r in client.search("Observation?x=1")] == ["Observation", "Patient"]
    assert [r["resourceType"] for r in client.search("Observation?x=1", resource_types={"Observation"})] == [
        "Observation"
    ]


def test_next_links_are_followed_on_the_same_server(rsps):
    """Paging as HAPI does it: the next link is the base URL with paging parameters."""
    rsps.get(
        f"{BASE}/Observation?patient=p",
        content_type=FHIR_JSON,
        match=[auth_matcher(TOKEN)],
        json=bundle(observation("o1"), next_url=f"{BASE}?_getpages=abc&_offset=1"),
    )
    rsps.get(
        f"{BASE}?_getpages=abc&_offset=1",
        content_type=FHIR_JSON,
        match=[auth_matcher(TOKEN)],
        json=bundle(observation("o2"), next_url="Observation?patient=p&page=3"),
    )
    rsps.get(
        f"{BASE}/Observation?patient=p&page=3",
        content_type=FHIR_JSON,
        match=[auth_matcher(TOKEN)],
        json=bundle(observation("o3")),
    )
    assert [r["id"] for r in FhirClient(BASE, TOKEN).search("Observation?patient=p")] == ["o1", "o2", "o3"]


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example.org/r4/Observation?page=2",
        "http://fhir.example.org/r4/Observation?page=2",
        "https://fhir.example.org:8443/r4/Observation?page=2",
        "https://fhir.example.org/other/Observation?page=2",
        "https://fhir.example.org/r4x/Observation?page=2",
    ],
    ids=["other-host", "downgraded-scheme", "other-port", "other-base-path", "base-path-prefix-trick"],
)
def test_a_next_link_off_the_server_is_refused_and_never_called(rsps, next_url):
    """The token must never travel to another server through a next link."""
    fhir_get(rsps, r"Observation", bundle(observation("o1"), next_url=next_url))
    with pytest.raises(FhirPagingError):
        FhirClient(BASE, TOKEN).search("Observation?patient=p")
    assert len(rsps.calls) == 1


def test_a_looping_next_link_is_refused(rsps):
    fhir_get(rsps, r"Observation", bundle(observation("o1"), next_url=f"{BASE}/Observation?patient=p"))
    with pytest.raises(FhirPagingError):
        FhirClient(BASE, TOKEN).search("Observation?patient=p")
    assert len(rsps.calls) == 1


def _pages(rsps, count: int, per_page: int) -> None:
    for page in range(1, count + 1):
        nxt = f"{BASE}/Observation?page={page + 1}" if page < count else None
        rsps.get(
            f"{BASE}/Observation?page={page}",
            content_type=FHIR_JSON,
            match=[auth_matcher(TOKEN)],
            json=bundle(*(observation(f"o{page}-{i}") for i in range(per_page)), next_url=nxt),
        )


def test_paging_stops_at_the_page_cap():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _pages(rsps, 5, 3)
        found = FhirClient(BASE, TOKEN, max_pages=2).search("Observation?page=1")
        assert len(rsps.calls) == 2
    assert [r["id"] for r in found] == ["o1-0", "o1-1", "o1-2", "o2-0", "o2-1", "o2-2"]


def test_paging_stops_at_the_entry_cap():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _pages(rsps, 5, 3)
        found = FhirClient(BASE, TOKEN, max_entries=4).search("Observation?page=1")
        assert len(rsps.calls) == 2
    assert [r["id"] for r in found] == ["o1-0", "o1-1", "o1-2", "o2-0"]


@pytest.mark.parametrize(
    "status, error",
    [
        (401, FhirUnauthorizedError),
        (403, FhirForbiddenError),
        (404, FhirNotFoundError),
        (429, FhirRateLimitedError),
        (500, FhirServerError),
        (503, FhirServerError),
        (400, FhirHttpError),
        (302, FhirHttpError),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else v.__name__,
)
def test_each_error_status_has_its_exception(rsps, status, error):
    headers = {"Location": "https://evil.example.org/"} if status == 302 else {}
    fhir_get(rsps, r"Observation", OUTCOME_BODY, status=status, headers=headers)
    with pytest.raises(error) as caught:
        FhirClient(BASE, TOKEN).search("Observation?patient=p")
    assert caught.value.status == status
    assert len(rsps.calls) == 1  # a redirect is not followed


OUTCOME_BODY = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"body": "{not json"}, FhirNotJsonError),
        ({"body": b"\xff\xfe\x00garbage"}, FhirNotJsonError),
        ({"json": {"hello": "world"}}, FhirNotFhirError),
        ({"json": [1, 2]}, FhirNotFhirError),
        ({"json": OUTCOME_BODY}, FhirNotFhirError),
        ({"json": {"resourceType": "Bundle"}, "content_type": "text/html"}, FhirContentTypeError),
        ({"json": {"resourceType": "Bundle"}, "content_type": ""}, FhirContentTypeError),
        ({"body": "[" * 100_000 + "]" * 100_000}, FhirNotFhirError),
        ({"body": requests.exceptions.ReadTimeout()}, FhirTimeoutError),
        ({"body": requests.exceptions.ConnectTimeout()}, FhirTimeoutError),
        ({"body": requests.exceptions.ConnectionError()}, FhirConnectionError),
    ],
    ids=[
        "invalid-json",
        "not-utf8",
        "json-not-fhir",
        "json-array",
        "operation-outcome-for-a-search",
        "html",
        "no-content-type",
        "nested-too-deep",
        "read-timeout",
        "connect-timeout",
        "connection-refused",
    ],
)
def test_unusable_answers_raise(rsps, kwargs, error):
    fhir_get(rsps, r"Observation", **kwargs)
    with pytest.raises(error):
        FhirClient(BASE, TOKEN).search("Observation?patient=p")


def test_a_read_answering_another_type_is_not_fhir_we_can_use(rsps):
    fhir_get(rsps, r"Patient/p1", {"resourceType": "Observation", "id": "p1"})
    with pytest.raises(FhirNotFhirError):
        FhirClient(BASE, TOKEN).read("Patient/p1")


def test_a_declared_length_over_the_cap_is_refused_before_reading(rsps):
    fhir_get(rsps, r"Observation", body=json.dumps(bundle(*(observation(f"o{i}") for i in range(50)))))
    with pytest.raises(FhirResponseTooLargeError):
        FhirClient(BASE, TOKEN, max_bytes=1000).search("Observation?patient=p")


def test_an_endless_chunked_body_is_cut_at_the_cap():
    """No Content-Length, a body that never ends: the byte cap stops it, memory stays bounded."""

    def respond(sock, stop, head):
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        piece = b" " * 8192
        while not stop.is_set():
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")

    with RawServer(respond) as server:
        with pytest.raises(FhirResponseTooLargeError):
            FhirClient(server.base, None, max_bytes=256 * 1024).search("Observation?patient=p")


def test_a_truncated_body_is_reported():
    payload = json.dumps(bundle(observation("o1"))).encode()

    def respond(sock, stop, head):
        sock.sendall(http_head(length=len(payload) + 500) + payload)  # then close: 500 bytes short

    with RawServer(respond) as server:
        with pytest.raises(FhirTruncatedError):
            FhirClient(server.base, None).search("Observation?patient=p")


def test_a_trickling_server_is_cut_at_the_timeout():
    """Each byte arrives before the read timeout, but the answer as a whole must not outlast it."""

    def respond(sock, stop, head):
        sock.sendall(http_head(length=10_000))
        while not stop.wait(0.05):
            sock.sendall(b" ")

    with RawServer(respond) as server:
        started = time.monotonic()
        with pytest.raises(FhirTimeoutError):
            FhirClient(server.base, None, timeout=0.5).search("Observation?patient=p")
        # The answer trickles for 500 s: cut at 0.5 s, with room for a machine busy with other runs.
        assert time.monotonic() - started < 0.5 + 3.0


def test_an_elapsed_deadline_makes_no_call(rsps):
    with pytest.raises(FhirTimeoutError):
        FhirClient(BASE, TOKEN).search("Observation?patient=p", deadline=time.monotonic() - 1)
    assert len(rsps.calls) == 0


def test_the_client_never_shows_its_token():
    assert TOKEN not in repr(FhirClient(BASE, TOKEN))


# -- regressions found by the fault server (tests/test_fhir_faults.py) ----------------------------


@pytest.mark.parametrize(
    "body, error",
    [
        ('{"resourceType": "Bundle", "total": ' + "9" * 5000 + "}", FhirNotJsonError),
        (json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": 5}), FhirNotFhirError),
        (json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [], "link": True}), FhirNotFhirError),
    ],
    ids=["integer-longer-than-python-parses", "entry-not-an-array", "link-not-an-array"],
)
def test_odd_json_is_a_fhir_error_not_a_crash(rsps, body, error):
    """Was a ValueError / TypeError escaping the client (a 500 from the service)."""
    fhir_get(rsps, r"Observation", body=body)
    with pytest.raises(error):
        FhirClient(BASE, TOKEN).search("Observation?patient=p")


def test_a_trickled_response_head_is_cut_at_the_deadline():
    """Each header byte arrives within the read timeout, so socket timeouts never fire; the call
    must still end at its deadline, and leave no thread or connection behind (was: held for as
    long as the server kept trickling)."""
    with FaultServer() as server:
        server.plan(trickle_head(0.05))
        before = set(threading.enumerate())
        started = time.monotonic()
        with pytest.raises(FhirTimeoutError):
            FhirClient(server.base, None, timeout=0.5).search("Observation?patient=p")
        # The head trickles for 5 s (then fails otherwise): cut at 0.5 s, with room for a busy machine.
        assert time.monotonic() - started < 0.5 + 3.0
        assert server.wait_idle(2.0)
        assert server.counters["closed_by_client"] == 1
        # Threads started since (the server's handler of this connection; not the process's one
        # deadline clock, started by the first FHIR call) end within two seconds in all, not when
        # the server stops trickling after 5 s. Joined, not sampled: the handler has counted itself
        # closed just before its thread returns.
        started_since = [t for t in threading.enumerate() if t not in before and t.name != "fhir-deadlines"]
        joined_by = time.monotonic() + 2.0
        for thread in started_since:
            thread.join(timeout=max(0.0, joined_by - time.monotonic()))
        assert not [t for t in started_since if t.is_alive()]


def test_the_deadline_watch_does_not_touch_a_call_that_finished():
    """A call answered in time is not cut afterwards: the same client keeps working."""
    with FaultServer() as server:
        # A timeout a local answer meets even on a loaded machine; each pause outlasts it.
        client = FhirClient(server.base, None, timeout=2.5)
        for _ in range(3):
            assert client.search("Observation?patient=p") == []
            time.sleep(2.55)  # past the first call's deadline
        assert client.read("Patient/p1")["id"] == "p1"

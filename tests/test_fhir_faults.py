"""A misbehaving FHIR server, through the real HTTP endpoint.

The service runs under werkzeug's threaded server on 127.0.0.1; ``fault_server`` (tests/fault_server.py)
plays the EHR's FHIR server and breaks in one way per row. Each hook request has every prefetch key
but the faulty one, so the service must fetch that key from ``fhirServer``. For every fault:

- the answer comes within FHIR_TIMEOUT_S plus a small margin (never a hung EHR order screen);
- it is 200 with the cards the rules whose data are complete can give, plus one card naming the
  checks that could not be made for the key that could not be had; 412 with an OperationOutcome
  naming every key only when no rule can run (every key failing); 200 with the same cards as a
  fully prefetched call when only the optional ``patient`` failed;
- afterwards no thread of the service or of the fault server is left running, and every connection
  the fault held open was closed by the service;
- the same running service still answers health and a full prefetched call correctly, and fetches
  correctly again once the FHIR server is healthy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fault_server as faults
import pytest
import requests
from conftest import FIXED_NOW, counting_uuids
from fault_server import FAULT_TALLY, FaultServer, Responder
from fhir_doubles import PATIENT, TOKEN, hook_body
from werkzeug.serving import make_server

from service import create_app

SERVICE = "/cds-services/tacrolimus-patient-view"
TIMEOUT_S = 0.5
# The budget stays well above one timeout plus the margin, so an answer within TIMEOUT_S + MARGIN_S
# still shows the fetches ran in parallel and were cut at their timeout (one after another they would
# run into the budget).
BUDGET_S = 6.0
MARGIN_S = 2.5  # request handling, rules and rendering on a loaded 2-core machine (another test run beside)
SETTLE_S = 5.0  # how long leftover threads and connections may take to end after the answer (polled)
MAX_PAGES = 5
MAX_ENTRIES = 1000
MAX_BYTES = 4 * 1024 * 1024
# Where each prefetch key's query goes: ``chemistry`` is a required search, ``patient`` the optional read.
TARGETS = {
    "chemistry": {"path": r"^Observation$", "query": r"2160-0"},
    "patient": {"path": r"^Patient/"},
    "medicationRequests": {"path": r"^MedicationRequest$"},
}
# How the card that lists the checks not made names each key's data.
MISSING_WORDS = {
    "chemistry": "Kidney, potassium, glucose and liver results: ",
    "medicationRequests": "Medication orders: ",
}


# -- the service under test, served for real --------------------------------------------------------


@dataclass
class Service:
    url: str
    templates: dict[str, str]
    reference: dict[str, Any]  # the answer to a fully prefetched call (no data), uuids removed

    def post(self, body: dict[str, Any]) -> tuple[requests.Response, float]:
        with requests.Session() as session:
            session.trust_env = False  # no proxy between us and 127.0.0.1
            started = time.monotonic()
            response = session.post(self.url + SERVICE, json=body, timeout=15)
            return response, time.monotonic() - started

    def get(self, path: str) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(self.url + path, timeout=5)

    def full_prefetch(self) -> dict[str, Any]:
        """Every key answered "no such data": null for the read, an empty searchset for searches."""
        return {
            key: None if "?" not in query else {"resourceType": "Bundle", "type": "searchset", "total": 0}
            for key, query in self.templates.items()
        }

    def body_without(self, fhir_server: str, *missing: str) -> dict[str, Any]:
        prefetch = {k: v for k, v in self.full_prefetch().items() if k not in missing}
        return hook_body(prefetch, fhir_server=fhir_server, token=TOKEN)


def without_uuids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [without_uuids(v) for v in value]
    return value


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    app = create_app(
        {
            "AUTH_REQUIRED": False,
            "LOG_LEVEL": "ERROR",
            "SMART_APP_ENABLED": False,  # its card links carry the patient id by design; this checks texts
            "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('faults') / 'feedback.sqlite'}",
            "ALLOW_HTTP_FHIR": "loopback",
            "FHIR_TIMEOUT_S": TIMEOUT_S,
            "FHIR_TOTAL_BUDGET_S": BUDGET_S,
            "FHIR_MAX_PAGES": MAX_PAGES,
            "FHIR_MAX_ENTRIES": MAX_ENTRIES,
            "FHIR_MAX_RESPONSE_BYTES": MAX_BYTES,
        },
        clock=lambda: FIXED_NOW,
        uuid_factory=counting_uuids(),
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="cds-app", daemon=True)
    thread.start()
    templates = dict(app.extensions["tacro_cds"].registry.get("tacrolimus-patient-view").prefetch)
    service = Service(f"http://127.0.0.1:{server.server_port}", templates, {})
    response, _ = service.post(hook_body(service.full_prefetch(), fhir_server=None))
    assert response.status_code == 200, response.text
    service.reference = without_uuids(response.json())
    yield service
    server.shutdown()
    server.server_close()


# -- the fault table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way for the FHIR server to fail, and what the service must answer for a required key."""

    name: str
    make: Callable[[FaultServer], Responder]
    code: str | None  # the OperationOutcome issue's diagnostics; None: the call still succeeds
    holds: bool = False  # the fault keeps the connection open until the service lets go
    search_only: bool = False  # a searchset fault (paging, entries): not applied to a read
    key: str | None = None  # only for this prefetch key (default: chemistry, and patient unless search_only)


FAULTS = [
    Fault("delay-within-timeout", lambda s: faults.delay(TIMEOUT_S * 0.3), None),
    # Beyond the timeout and beyond TIMEOUT_S + MARGIN_S: an answer that waited for it would fail the time bound.
    Fault("delay-beyond-timeout", lambda s: faults.delay(TIMEOUT_S * 10), "fhir-timeout", holds=True),
    Fault("hang", lambda s: faults.hang(), "fhir-timeout", holds=True),
    Fault("connection-reset", lambda s: faults.reset(), "fhir-unreachable"),
    Fault("reset-mid-body", lambda s: faults.reset_mid_body(), "fhir-truncated"),
    Fault("closed-without-answer", lambda s: faults.close_without_answer(), "fhir-unreachable"),
    Fault("401", lambda s: faults.status(401, "Unauthorized"), "fhir-unauthorized"),
    Fault("403", lambda s: faults.status(403, "Forbidden"), "fhir-forbidden"),
    Fault("404", lambda s: faults.status(404, "Not Found"), "fhir-not-found", search_only=True),
    Fault("429", lambda s: faults.status(429, "Too Many Requests", Retry_After="30"), "fhir-rate-limited"),
    Fault("500", lambda s: faults.status(500, "Internal Server Error"), "fhir-server-error"),
    Fault("503", lambda s: faults.status(503, "Service Unavailable"), "fhir-server-error"),
    Fault(
        "redirect-elsewhere", lambda s: faults.redirect(f"http://localhost:{s.port}/fhir/elsewhere"), "fhir-http-error"
    ),
    Fault("invalid-json", lambda s: faults.invalid_json(), "fhir-invalid-json"),
    Fault("json-number-too-long", lambda s: faults.huge_number(), "fhir-invalid-json"),
    Fault("json-but-not-fhir", lambda s: faults.not_fhir_json(), "fhir-not-fhir"),
    Fault("html-content-type", lambda s: faults.content_type(), "fhir-content-type"),
    Fault("truncated-body", lambda s: faults.truncated(), "fhir-truncated"),
    Fault("trickled-body", lambda s: faults.trickle_body(), "fhir-timeout", holds=True),
    Fault("trickled-headers", lambda s: faults.trickle_head(), "fhir-timeout", holds=True),
    Fault("declared-length-over-byte-cap", lambda s: faults.declared_too_large(MAX_BYTES * 4), "fhir-too-large"),
    Fault("gzip-bomb-over-byte-cap", lambda s: faults.gzip_bomb(MAX_BYTES * 4), "fhir-too-large"),
    Fault("endless-searchset-over-byte-cap", lambda s: faults.endless_searchset(), "fhir-too-large", search_only=True),
    Fault("entries-over-entry-cap", lambda s: faults.many_entries(MAX_ENTRIES + 500), None, search_only=True),
    Fault("pages-over-page-cap", lambda s: faults.endless_pages(), None, search_only=True),
    Fault("next-link-loops", lambda s: faults.next_loop(), "fhir-bad-next-link", search_only=True),
    Fault(
        "next-link-to-another-host",
        lambda s: faults.next_elsewhere(f"http://localhost:{s.port}/fhir/Observation?elsewhere=1"),
        "fhir-bad-next-link",
        search_only=True,
    ),
    Fault("bundle-entry-not-an-array", lambda s: faults.malformed_bundle(), "fhir-not-fhir", search_only=True),
    Fault(
        "medication-reference-not-an-object",
        lambda s: faults.medication_reference_not_an_object(),
        None,
        key="medicationRequests",
    ),
]
CASES = [
    pytest.param(f, key, id=f"{f.name}-{key}")
    for key in TARGETS
    for f in FAULTS
    if key == f.key or (f.key is None and (key == "chemistry" or (key == "patient" and not f.search_only)))
]


@dataclass
class Baseline:
    threads: set[threading.Thread]
    open_connections: int

    @classmethod
    def now(cls, server: FaultServer) -> Baseline:
        return cls(set(threading.enumerate()), server.open_connections)


def settle(baseline: Baseline, server: FaultServer) -> list[str]:
    """Wait up to SETTLE_S for every thread started since ``baseline`` to end and every fault-server
    connection opened since to close; what is still there after that."""
    end = time.monotonic() + SETTLE_S
    while True:
        # The process's one deadline clock, started by the first FHIR call, is not a leak.
        extra = [t.name for t in threading.enumerate() if t not in baseline.threads and t.name != "fhir-deadlines"]
        held = server.open_connections - baseline.open_connections
        if (not extra and held <= 0) or time.monotonic() > end:
            return extra + ([f"{held} open fault-server connection(s)"] if held > 0 else [])
        time.sleep(0.02)


def assert_still_serving(service: Service, server: FaultServer, missing_key: str) -> None:
    """Right after a fault the same process answers health, a full prefetch, and a fallback fetch."""
    health = service.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    response, _ = service.post(hook_body(service.full_prefetch(), fhir_server=server.base, token=TOKEN))
    assert response.status_code == 200 and without_uuids(response.json()) == service.reference
    server.heal()
    response, _ = service.post(service.body_without(server.base, missing_key))
    assert response.status_code == 200, response.text
    assert without_uuids(response.json()) == service.reference


@pytest.mark.parametrize("fault, key", CASES)
def test_a_fhir_fault_is_answered_in_time_and_leaves_nothing_stuck(service, fault_server, fault, key):
    """2.0 "Prefetch": the service fetches what the client did not send; when that data cannot be
    had, the checks needing it are named as not made (never silently absent), and the rest still run."""
    scenario = f"{fault.name}[{key}]"
    FAULT_TALLY.begin(scenario)
    baseline = Baseline.now(fault_server)
    fault_server.plan(fault.make(fault_server), **TARGETS[key])

    response, elapsed = service.post(service.body_without(fault_server.base, key))

    assert elapsed < TIMEOUT_S + MARGIN_S, f"answered after {elapsed:.2f} s"
    assert fault_server.injected >= 1
    if fault.code is None or key == "patient":
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["cards"], list)
        if key == "patient":  # the optional key failed: the cards are those of a full prefetch
            assert without_uuids(response.json()) == service.reference
    else:
        assert response.status_code == 200, response.text
        # Data not had at all, or (a searchset cut short after its first page) only partly.
        [card] = [
            c
            for c in response.json()["cards"]
            if "data not available" in c["summary"] or "part of the data" in c["summary"]
        ]
        assert card["indicator"] == "warning"
        assert MISSING_WORDS[key] in card["detail"]
        assert TOKEN not in response.text, response.text
        assert PATIENT not in response.text, response.text
    stuck = settle(baseline, fault_server)
    assert not stuck, f"still running {SETTLE_S} s after the answer: {stuck}"
    if fault.holds:
        assert fault_server.counters.get("closed_by_client", 0) >= 1
    assert_still_serving(service, fault_server, key)
    FAULT_TALLY.passed(scenario, elapsed)


def test_paging_stops_at_the_page_cap(service, fault_server):
    """Endless ``next`` links: exactly FHIR_MAX_PAGES pages are asked for, then the search ends."""
    fault_server.plan(faults.endless_pages(), **TARGETS["chemistry"])
    response, _ = service.post(service.body_without(fault_server.base, "chemistry"))
    assert response.status_code == 200
    assert len(fault_server.seen(r"2160-0")) == MAX_PAGES


@pytest.mark.parametrize(
    "fault", [faults.next_loop(), faults.redirect("/fhir/elsewhere")], ids=["next-link-loops", "redirect"]
)
def test_a_looping_or_redirecting_server_is_asked_once(service, fault_server, fault):
    fault_server.plan(fault, **TARGETS["chemistry"])
    service.post(service.body_without(fault_server.base, "chemistry"))
    assert len(fault_server.seen(r"2160-0")) == 1
    assert not fault_server.seen("elsewhere")


def test_a_next_link_to_another_host_is_never_followed(service, fault_server):
    """The token goes only to fhirServer: a ``next`` link to another host (here the same port under
    another host name) is refused, not requested."""
    fault_server.plan(
        faults.next_elsewhere(f"http://localhost:{fault_server.port}/fhir/Observation?elsewhere=1"),
        **TARGETS["chemistry"],
    )
    service.post(service.body_without(fault_server.base, "chemistry"))
    assert not fault_server.seen("elsewhere")


EVERY_KEY_FAULTS = [
    Fault("hang", lambda s: faults.hang(), "fhir-timeout", holds=True),
    Fault("connection-reset", lambda s: faults.reset(), "fhir-unreachable"),
    Fault("503", lambda s: faults.status(503, "Service Unavailable"), "fhir-server-error"),
    Fault("trickled-headers", lambda s: faults.trickle_head(), "fhir-timeout", holds=True),
]


@pytest.mark.parametrize("fault", EVERY_KEY_FAULTS, ids=[f.name for f in EVERY_KEY_FAULTS])
def test_a_fault_on_every_key_at_once_is_one_timeout_not_thirteen(service, fault_server, fault):
    """Nothing prefetched and every query failing together: the fetches run in parallel, so the
    answer still comes within one FHIR_TIMEOUT_S, naming every required key and not the optional one."""
    scenario = f"{fault.name}[every-key]"
    FAULT_TALLY.begin(scenario)
    baseline = Baseline.now(fault_server)
    fault_server.plan(fault.make(fault_server))

    response, elapsed = service.post(hook_body({}, fhir_server=fault_server.base, token=TOKEN))

    assert elapsed < TIMEOUT_S + MARGIN_S, f"answered after {elapsed:.2f} s"
    assert response.status_code == 412
    per_key = response.json()["issue"][1:]
    required = sorted(k for k in service.templates if k != "patient")
    assert sorted(i["location"][0].removeprefix("$.prefetch.") for i in per_key) == required
    assert {i["diagnostics"] for i in per_key} == {fault.code}
    # The 412's message says the FHIR server timed out, not only that the data was not had.
    assert ("timed out" in response.json()["issue"][0]["details"]["text"]) is (fault.code == "fhir-timeout")
    assert fault_server.injected == len(service.templates)
    stuck = settle(baseline, fault_server)
    assert not stuck, f"still running {SETTLE_S} s after the answer: {stuck}"
    if fault.holds:
        assert fault_server.counters.get("closed_by_client", 0) == len(service.templates)
    assert_still_serving(service, fault_server, "chemistry")
    FAULT_TALLY.passed(scenario, elapsed)


def test_a_fhir_server_that_is_down_is_412_at_once(service, fault_server):
    """Nothing listens at fhirServer (connection refused): no waiting for a timeout at all."""
    scenario = "connection-refused[every-key]"
    FAULT_TALLY.begin(scenario)
    with socket.socket() as probe:  # a port that was free a moment ago and now has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    baseline = Baseline.now(fault_server)

    response, elapsed = service.post(hook_body({}, fhir_server=f"http://127.0.0.1:{port}/fhir", token=TOKEN))

    # fhir-unreachable, not fhir-timeout: the refusal was seen at once, no timeout was waited for.
    assert elapsed < TIMEOUT_S + MARGIN_S, f"answered after {elapsed:.2f} s"
    assert response.status_code == 412
    assert {i["diagnostics"] for i in response.json()["issue"][1:]} == {"fhir-unreachable"}
    assert not settle(baseline, fault_server)
    assert_still_serving(service, fault_server, "chemistry")
    FAULT_TALLY.passed(scenario, elapsed)

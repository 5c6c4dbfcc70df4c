"""Prefetch resolution and the FHIR fallback (CDS Hooks 2.0 "Prefetch")."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests
import responses
from fhir_doubles import BASE, OUTCOME, PATIENT, TOKEN, RawServer, bundle, fhir_get, hook_body, http_head, observation

from service.config import load_settings
from service.errors import FhirServerRefusedError, PrefetchUnavailableError
from service.hooks.prefetch import MEDICATIONS, PrefetchResolver
from service.hooks.validation import validate_request

TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "chemistry": "Observation?patient={{context.patientId}}&code=http://loinc.org|2160-0&_sort=-date&_count=50",
    "conditions": "Condition?patient={{context.patientId}}&_count=100",
}
SERVICE = "/cds-services/tacrolimus-patient-view"
PATIENT_RESOURCE = {"resourceType": "Patient", "id": PATIENT}


def resolver(session_factory=None, **config: Any) -> PrefetchResolver:
    return PrefetchResolver(load_settings(config, environ={}), session_factory=session_factory)


def request_of(body: dict[str, Any]):
    return validate_request(body, hook=body["hook"], limits=load_settings(environ={}))


def complete_prefetch(templates) -> dict[str, Any]:
    """Every key answered: the read with the patient, every search with an empty searchset."""
    return {key: PATIENT_RESOURCE if key == "patient" else bundle() for key in templates}


def no_session():
    raise AssertionError("a FHIR session was opened although the prefetch was complete")


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


# -- each prefetch state --------------------------------------------------------------------------


def test_present_values_are_used_without_any_call(rsps):
    """2.0: a prefetched key is used as sent; a Bundle's OperationOutcome entries are not data."""
    prefetch = {
        "patient": PATIENT_RESOURCE,
        "chemistry": bundle(observation("o1"), OUTCOME, {"resourceType": "Patient", "id": "x"}),
        "conditions": bundle({"resourceType": "Condition", "id": "c1"}),
    }
    data = resolver(no_session).resolve(request_of(hook_body(prefetch)), TEMPLATES)
    assert data["patient"] == [PATIENT_RESOURCE]
    assert [r["id"] for r in data["chemistry"]] == ["o1"]
    assert [r["id"] for r in data["conditions"]] == ["c1"]
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "value",
    [None, bundle(), {"resourceType": "Bundle", "type": "searchset", "total": 0}],
    ids=["null", "empty-searchset", "empty-searchset-without-entry"],
)
def test_null_or_an_empty_searchset_is_an_answer_and_is_not_queried_again(rsps, value):
    """2.0: "If the CDS Client has no data to populate a prefetch template, the prefetch key is
    populated with null" / an empty searchset: there is no such data; do not fetch it again."""
    prefetch = {**complete_prefetch(TEMPLATES), "chemistry": value}
    data = resolver(no_session).resolve(request_of(hook_body(prefetch)), TEMPLATES)
    assert data["chemistry"] == []
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with-token", "without-token"])
@pytest.mark.parametrize("state", ["absent", "operation-outcome", "wrong-resource-type"])
def test_a_key_not_answered_is_fetched_from_fhir_server(rsps, state, token):
    """2.0: an absent key, or one holding an OperationOutcome, is fetched by the service from
    fhirServer, with "Authorization: Bearer <access_token>" when fhirAuthorization was given and
    without it when fhirServer came alone."""
    prefetch = complete_prefetch(TEMPLATES)
    if state == "absent":
        del prefetch["chemistry"]
    else:
        prefetch["chemistry"] = {"operation-outcome": OUTCOME, "wrong-resource-type": PATIENT_RESOURCE}[state]
    fhir_get(rsps, r"Observation", bundle(observation("o1"), OUTCOME), token=token)
    data = resolver().resolve(request_of(hook_body(prefetch, token=token)), TEMPLATES)
    assert [r["id"] for r in data["chemistry"]] == ["o1"]
    sent = rsps.calls[0].request.url
    assert sent.startswith(f"{BASE}/Observation?patient={PATIENT}&code=http://loinc.org%7C2160-0&_sort=-date")


def test_every_missing_key_is_fetched_and_the_patient_read_too(rsps):
    fhir_get(rsps, rf"Patient/{PATIENT}", PATIENT_RESOURCE)
    fhir_get(rsps, r"Observation", bundle(observation("o1")))
    fhir_get(rsps, r"Condition", bundle({"resourceType": "Condition", "id": "c1"}))
    data = resolver().resolve(request_of(hook_body({})), TEMPLATES)
    assert data["patient"] == [PATIENT_RESOURCE]
    assert [r["id"] for r in data["chemistry"]] == ["o1"]
    assert [r["id"] for r in data["conditions"]] == ["c1"]


def test_an_absent_key_without_fhir_server_is_412_naming_the_key(rsps):
    prefetch = complete_prefetch(TEMPLATES)
    del prefetch["conditions"]
    with pytest.raises(PrefetchUnavailableError) as caught:
        resolver(no_session).resolve(request_of(hook_body(prefetch, fhir_server=None)), TEMPLATES)
    outcome = caught.value.outcome()
    assert caught.value.status == 412
    assert [i.get("location") for i in outcome["issue"][1:]] == [["$.prefetch.conditions"]]
    assert "no fhirServer" in outcome["issue"][1]["details"]["text"]


def test_a_missing_optional_patient_does_not_fail_the_call(rsps):
    """Decision: no rule reads the Patient resource, so `patient` is optional
    (PREFETCH_OPTIONAL_KEYS): fetched best-effort, empty when it cannot be had."""
    prefetch = complete_prefetch(TEMPLATES)
    del prefetch["patient"]
    fhir_get(rsps, rf"Patient/{PATIENT}", OUTCOME, status=500)
    data = resolver().resolve(request_of(hook_body(prefetch)), TEMPLATES)
    assert data["patient"] == []


def test_a_read_answered_404_is_no_data(rsps):
    prefetch = complete_prefetch(TEMPLATES)
    del prefetch["patient"]
    fhir_get(rsps, rf"Patient/{PATIENT}", OUTCOME, status=404)
    assert resolver(PREFETCH_OPTIONAL_KEYS=[]).resolve(request_of(hook_body(prefetch)), TEMPLATES)["patient"] == []


def test_an_unresolvable_template_token_makes_the_key_unfetchable(rsps):
    templates = {**TEMPLATES, "encounter": "Encounter/{{context.encounterId}}"}
    with pytest.raises(PrefetchUnavailableError) as caught:
        resolver().resolve(request_of(hook_body(complete_prefetch(TEMPLATES))), templates)
    issue = caught.value.outcome()["issue"][1]
    assert issue["location"] == ["$.prefetch.encounter"]
    assert issue["diagnostics"] == "prefetch-token-unresolvable"
    assert len(rsps.calls) == 0


# -- zero calls when the prefetch is complete -----------------------------------------------------


def _templates_of(app, service_id: str = "tacrolimus-patient-view") -> dict[str, str]:
    return dict(app.extensions["tacro_cds"].registry.get(service_id).prefetch)


@pytest.mark.parametrize(
    "fhir_server",
    [BASE, "http://not-allowed.example.org/fhir"],
    ids=["fhir-server-given", "fhir-server-that-policy-would-refuse"],
)
def test_a_complete_prefetch_makes_zero_fhir_calls(make_app, fhir_server):
    """2.0: the service fetches only what the prefetch lacks. A complete prefetch means no call at
    all, so the fhirServer policy is not even consulted."""
    app = make_app(resolver=resolver(no_session, FHIR_SERVER_ALLOWLIST=[BASE]))
    body = hook_body(complete_prefetch(_templates_of(app)), fhir_server=fhir_server)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        response = app.test_client().post(SERVICE, json=body)
        assert len(rsps.calls) == 0
    assert response.status_code == 200, response.json
    assert "cards" in response.json


# -- failures through the HTTP endpoint -----------------------------------------------------------

FAULTS = {
    "timeout": {"body": requests.exceptions.ReadTimeout()},
    "connection-refused": {"body": requests.exceptions.ConnectionError()},
    "401": {"json": OUTCOME, "status": 401},
    "403": {"json": OUTCOME, "status": 403},
    "429": {"json": OUTCOME, "status": 429},
    "500": {"json": OUTCOME, "status": 500},
    "503": {"json": OUTCOME, "status": 503},
    "invalid-json": {"body": '{"resourceType": "Bundle", '},
    "non-fhir-json": {"json": {"results": []}},
    "html-login-page": {"body": "<html>login</html>", "content_type": "text/html"},
    "operation-outcome-instead-of-bundle": {"json": OUTCOME},
}
FAULT_CODES = {
    "timeout": "fhir-timeout",
    "connection-refused": "fhir-unreachable",
    "401": "fhir-unauthorized",
    "403": "fhir-forbidden",
    "429": "fhir-rate-limited",
    "500": "fhir-server-error",
    "503": "fhir-server-error",
    "invalid-json": "fhir-invalid-json",
    "non-fhir-json": "fhir-not-fhir",
    "html-login-page": "fhir-content-type",
    "operation-outcome-instead-of-bundle": "fhir-not-fhir",
}


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with-token", "without-token"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_fhir_server_is_412_with_an_outcome_naming_every_key(make_app, fault, token):
    """2.0: 412 when data the service needs can neither be found in the prefetch nor fetched; never
    cards computed from partial data. One issue per key, and no token or patient id in the body."""
    app = make_app(LOG_LEVEL="ERROR")
    templates = _templates_of(app)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        fhir_get(rsps, r"[A-Za-z]+\?.*", token=token, **FAULTS[fault])
        fhir_get(rsps, rf"Patient/{PATIENT}", PATIENT_RESOURCE, token=token)
        response = app.test_client().post(SERVICE, json=hook_body({}, token=token))
        calls = list(rsps.calls)
    assert response.status_code == 412
    outcome = response.json
    assert outcome["resourceType"] == "OperationOutcome"
    searched = sorted(k for k, t in templates.items() if k != "patient")
    per_key = outcome["issue"][1:]
    assert sorted(i["location"][0].removeprefix("$.prefetch.") for i in per_key) == searched
    assert {i["diagnostics"] for i in per_key} == {FAULT_CODES[fault]}
    text = response.get_data(as_text=True)
    assert PATIENT not in text and TOKEN not in text
    want = f"Bearer {token}" if token else None
    assert all(c.request.headers.get("Authorization") == want for c in calls)


def test_a_partly_failing_server_gives_the_checks_it_can_and_names_those_it_cannot(make_app):
    """Every Observation query fails: no lab-based check is made, and one card says so (the timing
    check, which needs no lab, still runs, so the call is not a 412)."""
    app = make_app(LOG_LEVEL="ERROR")
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        fhir_get(rsps, r"Observation", OUTCOME, status=500)
        fhir_get(rsps, r"(?!Observation)[A-Za-z]+\?.*", bundle())
        fhir_get(rsps, rf"Patient/{PATIENT}", PATIENT_RESOURCE)
        response = app.test_client().post(SERVICE, json=hook_body({}))
    assert response.status_code == 200, response.text
    [card] = [c for c in response.json["cards"] if "data not available" in c["summary"]]
    assert card["indicator"] == "warning"
    for check in ("Candidate selection", "Dose", "Baseline labs", "Tacrolimus levels", "Potassium"):
        assert f"- {check}: no " in card["detail"]
    # The interaction cards read the medication lists (and say themselves when potassium is missing).
    assert "- Timing around the embryo transfer" not in card["detail"]
    assert "- Drug interactions" not in card["detail"]
    assert TOKEN not in card["detail"] and BASE not in card["detail"]


def test_no_fhir_server_and_nothing_prefetched_is_412(make_app):
    response = make_app(LOG_LEVEL="ERROR").test_client().post(SERVICE, json=hook_body(None, fhir_server=None))
    assert response.status_code == 412
    assert all(i["code"] == "incomplete" for i in response.json["issue"])


def test_a_refused_fhir_server_is_400_before_any_call(make_app):
    app = make_app(FHIR_SERVER_ALLOWLIST=["https://fhir.hospital.example.org/r4"])
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        response = app.test_client().post(SERVICE, json=hook_body({}))
        assert len(rsps.calls) == 0
    assert response.status_code == 400
    assert response.json["issue"][0]["diagnostics"] == "fhir-server-not-allowed"
    assert "allowlist" in response.json["issue"][0]["details"]["text"]


def test_plain_http_fhir_server_is_refused_by_default(make_app):
    body = hook_body({}, fhir_server="http://fhir.example.org/r4")
    response = make_app().test_client().post(SERVICE, json=body)
    assert response.status_code == 400
    assert "https" in response.json["issue"][0]["details"]["text"]


def test_the_issuer_selects_its_allowlist(rsps):
    allow = {"https://ehr-a.example.org": [BASE]}
    request = request_of(hook_body({}))
    templates = {"chemistry": TEMPLATES["chemistry"]}
    with pytest.raises(FhirServerRefusedError):
        resolver(FHIR_SERVER_ALLOWLIST=allow).resolve(request, templates, issuer="https://ehr-b.example.org")
    fhir_get(rsps, r"Observation", bundle())
    assert (
        resolver(FHIR_SERVER_ALLOWLIST=allow).resolve(request, templates, issuer="https://ehr-a.example.org")[
            "chemistry"
        ]
        == []
    )


# -- medicationReference --------------------------------------------------------------------------

MED_TEMPLATES = {"medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active&_count=100"}
TACROLIMUS_MED = {
    "resourceType": "Medication",
    "id": "med-tac",
    "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "198377"}]},
}


def med_request(mid: str, reference: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "medicationReference": {"reference": reference},
        **extra,
    }


def test_a_contained_medication_needs_no_read(rsps):
    order = med_request("mr1", "#m", contained=[{**TACROLIMUS_MED, "id": "m"}])
    data = resolver(no_session).resolve(request_of(hook_body({"medicationRequests": bundle(order)})), MED_TEMPLATES)
    assert data["medicationRequests"] == [order]
    assert data[MEDICATIONS] == []


def test_a_prefetched_medication_needs_no_read_and_is_returned(rsps):
    prefetch = {"medicationRequests": bundle(med_request("mr1", "Medication/med-tac"), TACROLIMUS_MED)}
    data = resolver(no_session).resolve(request_of(hook_body(prefetch)), MED_TEMPLATES)
    assert [r["id"] for r in data["medicationRequests"]] == ["mr1"]
    assert data[MEDICATIONS] == [TACROLIMUS_MED]


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with-token", "without-token"])
def test_a_referenced_medication_is_read_once(rsps, token):
    prefetch = {
        "medicationRequests": bundle(
            med_request("mr1", "Medication/med-tac"), med_request("mr2", f"{BASE}/Medication/med-tac/_history/2")
        )
    }
    fhir_get(rsps, r"Medication/med-tac", TACROLIMUS_MED, token=token)
    data = resolver().resolve(request_of(hook_body(prefetch, token=token)), MED_TEMPLATES)
    assert data[MEDICATIONS] == [TACROLIMUS_MED]
    assert len(rsps.calls) == 1


def test_a_draft_orders_medication_reference_is_read(rsps):
    """order-select: the selected draft may name its drug by medicationReference."""
    draft = med_request("draft-1", "Medication/med-tac", status="draft")
    context = {
        "userId": "Practitioner/doc-1",
        "patientId": PATIENT,
        "selections": ["MedicationRequest/draft-1"],
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
    }
    body = hook_body({"medicationRequests": bundle()}, hook="order-select", context=context)
    fhir_get(rsps, r"Medication/med-tac", TACROLIMUS_MED)
    assert resolver().resolve(request_of(body), MED_TEMPLATES)[MEDICATIONS] == [TACROLIMUS_MED]


def test_a_medication_that_does_not_exist_is_left_unresolved(rsps):
    fhir_get(rsps, r"Medication/gone", OUTCOME, status=404)
    data = resolver().resolve(
        request_of(hook_body({"medicationRequests": bundle(med_request("mr1", "Medication/gone"))})), MED_TEMPLATES
    )
    assert data[MEDICATIONS] == []


@pytest.mark.parametrize(
    "fhir_server, fault",
    [(BASE, {"status": 500, "json": OUTCOME}), (BASE, {"status": 401, "json": OUTCOME}), (None, None)],
    ids=["server-error", "unauthorized", "no-fhir-server"],
)
def test_a_medication_that_cannot_be_read_is_412(rsps, fhir_server, fault):
    if fault:
        fhir_get(rsps, r"Medication/med-tac", **fault)
    body = hook_body({"medicationRequests": bundle(med_request("mr1", "Medication/med-tac"))}, fhir_server=fhir_server)
    with pytest.raises(PrefetchUnavailableError) as caught:
        resolver().resolve(request_of(body), MED_TEMPLATES)
    assert "medications" in caught.value.outcome()["issue"][1]["details"]["text"]


def test_a_medication_on_another_server_is_not_fetched(rsps):
    body = hook_body({"medicationRequests": bundle(med_request("mr1", "https://evil.example.org/Medication/x"))})
    with pytest.raises(PrefetchUnavailableError, match="medications"):
        resolver().resolve(request_of(body), MED_TEMPLATES)
    assert len(rsps.calls) == 0


# -- real sockets: timeouts, budget, parallelism --------------------------------------------------


def hang(sock, stop, head):
    stop.wait(30)


# What a bounded call may take beyond its bound on a 2-core machine busy with other test runs; still
# well short of what the hang (30 s), the per-key timeouts one after another, or the unbudgeted
# FHIR_TIMEOUT_S would take.
MARGIN_S = 2.5


def slow_answers(delay: float):
    """Every search answered with an empty searchset, the patient read with the patient, after ``delay``."""

    def respond(sock, stop, head):
        answer = PATIENT_RESOURCE if head.startswith(b"GET /fhir/Patient/") else bundle()
        payload = json.dumps(answer).encode()
        if not stop.wait(delay):
            sock.sendall(http_head(length=len(payload)) + payload)

    return respond


def _timed_post(make_app, server: RawServer, **config: Any) -> tuple[Any, float]:
    app = make_app(ALLOW_HTTP_FHIR="loopback", LOG_LEVEL="ERROR", **config)
    started = time.monotonic()
    response = app.test_client().post(SERVICE, json=hook_body({}, fhir_server=server.base, token=None))
    return response, time.monotonic() - started


def test_a_hanging_fhir_server_is_412_within_the_timeout(make_app):
    """A real server on 127.0.0.1 that accepts and never answers: every key is fetched in parallel,
    so the call ends after one FHIR_TIMEOUT_S (plus a margin), not one per key."""
    with RawServer(hang) as server:
        response, elapsed = _timed_post(make_app, server, FHIR_TIMEOUT_S=0.5, FHIR_TOTAL_BUDGET_S=10.0)
    assert response.status_code == 412
    assert {i["diagnostics"] for i in response.json["issue"][1:]} == {"fhir-timeout"}
    assert elapsed < 0.5 + MARGIN_S
    assert server.connections >= 12


def test_the_overall_budget_bounds_the_call(make_app):
    with RawServer(hang) as server:
        response, elapsed = _timed_post(make_app, server, FHIR_TIMEOUT_S=5.0, FHIR_TOTAL_BUDGET_S=0.5)
    assert response.status_code == 412
    assert elapsed < 0.5 + MARGIN_S


def test_missing_keys_are_fetched_in_parallel(make_app):
    """Thirteen queries that each take 0.6 s cost about one of them, not 7.8 s (the bound, half of
    that, leaves a loaded machine 3 s of room and still fails a fetch one query after another)."""
    with RawServer(slow_answers(0.6)) as server:
        response, elapsed = _timed_post(make_app, server, PREFETCH_OPTIONAL_KEYS=[])
    assert response.status_code == 200, response.json
    assert elapsed < 0.6 * 13 / 2


def test_no_fetch_thread_outlives_the_budget(make_app):
    """The server hangs for 30 s; every fetch thread ends soon after the 0.3 s budget (looked at
    until MARGIN_S has passed, for a busy machine)."""
    with RawServer(hang) as server:
        _timed_post(make_app, server, FHIR_TIMEOUT_S=0.3, FHIR_TOTAL_BUDGET_S=0.3)
        end = time.monotonic() + MARGIN_S
        while (
            fetching := [t for t in threading.enumerate() if t.name.startswith("fhir-fetch")]
        ) and time.monotonic() < end:
            time.sleep(0.02)
        assert not fetching


# -- regressions found by the fault server (tests/test_fhir_faults.py) ----------------------------


@pytest.mark.parametrize(
    "reference", ["Medication/med-tac", 7, ["Medication/med-tac"]], ids=["string", "number", "array"]
)
def test_a_medication_reference_that_is_not_a_reference_is_not_read(rsps, reference):
    """Left to the facts stage to report as unidentified (was: an AttributeError, a 500)."""
    order = {**med_request("mr1", "#m"), "medicationReference": reference}
    data = resolver(no_session).resolve(request_of(hook_body({"medicationRequests": bundle(order)})), MED_TEMPLATES)
    assert data["medicationRequests"] == [order]
    assert len(rsps.calls) == 0


def test_a_user_id_read_template_is_fetched_as_a_read_of_that_resource(rsps):
    """2.0.1 "Prefetch tokens identifying the user": the template "{{context.userId}}" reads the user's resource
    (PractitionerRole/r9), not a search on a type named after the token."""
    role = {"resourceType": "PractitionerRole", "id": "r9"}
    templates = {**TEMPLATES, "user": "{{context.userId}}"}
    fhir_get(rsps, r"PractitionerRole/r9", role)
    context = {"userId": "PractitionerRole/r9", "patientId": PATIENT}
    data = resolver().resolve(request_of(hook_body(complete_prefetch(TEMPLATES), context=context)), templates)
    assert data["user"] == [role]
    assert rsps.calls[0].request.url == f"{BASE}/PractitionerRole/r9"
    prefetched = resolver(no_session).resolve(
        request_of(hook_body({**complete_prefetch(TEMPLATES), "user": role}, context=context)), templates
    )
    assert prefetched["user"] == [role]


def test_a_long_ehr_medication_id_is_read_as_one_encoded_segment(rsps):
    """Real EHR ids run past FHIR's 64 characters (the 3.0 text's own examples): such a
    medicationReference is read, its id percent-encoded as one path segment."""
    long_id = "eX9" + "Ab3:xY9+qLm0=ZkT" * 12
    medication = {**TACROLIMUS_MED, "id": long_id}
    prefetch = {"medicationRequests": bundle(med_request("mr1", f"Medication/{long_id}"))}
    fhir_get(rsps, r"Medication/.*", medication)
    data = resolver().resolve(request_of(hook_body(prefetch)), MED_TEMPLATES)
    assert data[MEDICATIONS] == [medication]
    assert rsps.calls[0].request.url == f"{BASE}/Medication/" + long_id.replace(":", "%3A").replace("+", "%2B").replace(
        "=", "%3D"
    )


def test_a_cookie_set_for_one_call_is_not_sent_with_the_next(rsps):
    """Fallback calls to one server share its connections, never its cookies."""

    def no_cookie(request: requests.PreparedRequest) -> tuple[bool, str]:
        return "Cookie" not in request.headers, "a cookie was sent"

    templates = {"patient": TEMPLATES["patient"]}
    rsps.get(
        f"{BASE}/Patient/{PATIENT}",
        json=PATIENT_RESOURCE,
        content_type="application/fhir+json",
        headers={"Set-Cookie": "session=caller-a; Path=/"},
        match=[no_cookie],
    )
    rsps.get(
        f"{BASE}/Patient/{PATIENT}", json=PATIENT_RESOURCE, content_type="application/fhir+json", match=[no_cookie]
    )
    r = resolver()
    for _ in range(2):
        assert r.resolve(request_of(hook_body({})), templates)["patient"] == [PATIENT_RESOURCE]
    assert len(r.sessions) == 1  # one kept session for the one server

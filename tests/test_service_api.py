"""The HTTP side of CDS Hooks 2.0: discovery, invocation, and every error status."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import no_data_prefetch

SERVICES = {
    "tacrolimus-order-select": "order-select",
    "tacrolimus-order-sign": "order-sign",
    "tacrolimus-patient-view": "patient-view",
}

DRAFT = {
    "resourceType": "MedicationRequest",
    "id": "draft-1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "medicationCodeableConcept": {"text": "tacrolimus 1 mg capsule"},
}


def request_for(hook: str) -> dict:
    context: dict = {"userId": "Practitioner/u1", "patientId": "p1"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": copy.deepcopy(DRAFT)}],
        }
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-1"]
    return {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": no_data_prefetch(),
    }


def sandbox_request() -> dict:
    """What the public sandbox sends: no Bundle.type, category and doseAndRate as objects, {pill}
    dose units, fhirServer without fhirAuthorization, no encounterId."""
    req = request_for("order-select")
    draft = req["context"]["draftOrders"]
    del draft["type"]
    draft["entry"][0]["resource"].update(
        {
            "category": {"coding": [{"code": "outpatient"}]},
            "dosageInstruction": [
                {
                    "doseAndRate": {"doseQuantity": {"value": 1, "unit": "{pill}"}},
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                }
            ],
        }
    )
    req["fhirServer"] = "https://sandbox.example.org/r4"
    req["prefetch"]["patient"] = {"resourceType": "Patient", "id": "p1"}
    return req


def test_discovery_lists_three_services_with_prefetch(client):
    body = client.get("/cds-services").get_json()
    by_id = {s["id"]: s for s in body["services"]}
    assert {k: v["hook"] for k, v in by_id.items()} == SERVICES
    for service in by_id.values():
        assert service["title"] and service["description"]
        assert all("{{context.patientId}}" in q for q in service["prefetch"].values())
        observation_queries = [q for q in service["prefetch"].values() if q.startswith("Observation?")]
        assert observation_queries and all("_sort=-date" in q and "_count=" in q for q in observation_queries)


@pytest.mark.parametrize("service_id,hook", SERVICES.items())
def test_valid_request_answers_cards_list(client, service_id, hook):
    response = client.post(f"/cds-services/{service_id}", json=request_for(hook))
    assert response.status_code == 200, response.get_json()
    assert isinstance(response.get_json()["cards"], list)


def test_incomplete_sandbox_draft_is_normal_input(client):
    """The sandbox fires order-select with a draft that has no medication or dosage yet."""
    req = request_for("order-select")
    req["context"]["draftOrders"]["entry"][0]["resource"] = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
    }
    assert client.post("/cds-services/tacrolimus-order-select", json=req).status_code == 200


def _outcome(response) -> str:
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert response.mimetype == "application/fhir+json"
    return body["issue"][0]["details"]["text"]


def _with(path: str, value):
    req = request_for("order-select")
    target = req
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return req


_DELETE = object()

BAD_REQUESTS = [
    ("hook missing", _with("hook", _DELETE), "$"),
    ("hookInstance wrong type", _with("hookInstance", 42), "$.hookInstance"),
    ("hookInstance too long to be a UUID", _with("hookInstance", "x" * 129), "$.hookInstance"),
    ("context not an object", _with("context", []), "$.context"),
    ("selections missing", _with("context.selections", _DELETE), "$.context"),
    ("draftOrders missing", _with("context.draftOrders", _DELETE), "$.context"),
    ("selections empty", _with("context.selections", []), "$.context.selections"),
    (
        "selection not in draftOrders",
        _with("context.selections", ["MedicationRequest/other"]),
        "$.context.selections[0]",
    ),
    ("patientId missing", _with("context.patientId", _DELETE), "$.context"),
    (
        "draftOrders not a Bundle",
        _with("context.draftOrders", {"resourceType": "List"}),
        "$.context.draftOrders.resourceType",
    ),
    ("prefetch value not a resource", _with("prefetch", {"patient": 3}), "$.prefetch.patient"),
    (
        "fhirAuthorization without fhirServer",
        _with(
            "fhirAuthorization",
            {
                "access_token": "t",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "cds",
            },
        ),
        "$",
    ),
    ("fhirServer not a URL", _with("fhirServer", "not a url"), "$.fhirServer"),
]


@pytest.mark.parametrize("name,body,path", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_schema_violation_is_400_naming_the_path(client, name, body, path):
    response = client.post("/cds-services/tacrolimus-order-select", json=body)
    assert response.status_code == 400
    text = _outcome(response)
    assert response.get_json()["issue"][0]["location"] == [path] or text.startswith(path)


def test_hook_not_matching_service_is_400(client):
    response = client.post("/cds-services/tacrolimus-order-select", json=request_for("patient-view"))
    assert response.status_code == 400
    assert "order-select" in _outcome(response)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe", b"[1, 2", b"NaN", b"null"],
    ids=["broken", "empty", "not-utf8", "truncated", "nan", "null"],
)
def test_malformed_json_is_400(client, raw):
    response = client.post("/cds-services/tacrolimus-patient-view", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert _outcome(response)


def test_unknown_service_is_404(client):
    response = client.post("/cds-services/no-such-service", json=request_for("patient-view"))
    assert response.status_code == 404
    assert "no-such-service" in _outcome(response)


def test_body_over_limit_is_413(make_app):
    client = make_app(MAX_REQUEST_BYTES=1000).test_client()
    req = request_for("patient-view")
    req["prefetch"]["patient"] = {"resourceType": "Patient", "id": "p1", "text": {"div": "x" * 2000}}
    response = client.post(
        "/cds-services/tacrolimus-patient-view", data=json.dumps(req), content_type="application/json"
    )
    assert response.status_code == 413
    assert _outcome(response)


def test_unexpected_failure_is_500_outcome_without_trace(make_app):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    app = make_app()
    app.extensions["tacro_cds"].resolver.resolve_partial = broken
    response = app.test_client().post("/cds-services/tacrolimus-patient-view", json=request_for("patient-view"))
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)
    assert _outcome(response)


def test_healthz_needs_no_token(make_app):
    client = make_app(AUTH_REQUIRED=True).test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/cds-services")
    assert response.status_code == 401
    assert response.get_json(force=True)["issue"] == [{"severity": "error", "code": "login"}]

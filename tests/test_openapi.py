"""The OpenAPI 3.1 description (service/openapi.json): valid, served without a token, in step with
our JSON Schemas, and true of the real responses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from bench.samples import builtin_request
from service.errors import PrefetchUnavailableError
from service.services import HOOKS
from tests.openapi_check import check_response, description, schema_validator

SCHEMAS = Path(__file__).resolve().parent.parent / "service" / "schemas"
SERVICE_IDS = ["tacrolimus-order-select", "tacrolimus-order-sign", "tacrolimus-patient-view"]
CALL = "/cds-services/{service_id}"


def test_description_is_valid_openapi_3_1():
    validate(description())
    assert description()["openapi"].startswith("3.1.")


def test_served_without_a_token_and_identical_to_the_file(make_app):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == description()
    check_response("GET", "/openapi.json", 200, response.content_type, response.data)


def test_service_id_enum_is_the_registry(client):
    enum = description()["components"]["parameters"]["ServiceId"]["schema"]["enum"]
    ids = [s["id"] for s in client.get("/cds-services").get_json()["services"]]
    assert sorted(enum) == sorted(ids) == sorted(SERVICE_IDS)


# --- the components mirror the JSON Schemas the service validates with ------------------------------

_REF_MAP = {
    "#/$defs/resource": "#/components/schemas/FhirResource",
    "#/$defs/bundle": "#/components/schemas/DraftOrdersBundle",
    "context-order-select.json#/$defs/bundle": "#/components/schemas/DraftOrdersBundle",
}
_DOC_KEYS = {"$schema", "$id", "title", "description", "$defs"}


def _as_component(schema: Any) -> Any:
    """A schema file rewritten the way the description embeds it: refs to components, no metadata."""
    if isinstance(schema, dict):
        return {k: (_REF_MAP.get(v, v) if k == "$ref" else _as_component(v))
                for k, v in schema.items() if k not in _DOC_KEYS}
    if isinstance(schema, list):
        return [_as_component(v) for v in schema]
    return schema


def _component(name: str) -> Any:
    return _as_component(copy.deepcopy(description()["components"]["schemas"][name]))


@pytest.mark.parametrize("file, component", [
    ("request.json", "CdsServiceRequest"),
    ("context-order-select.json", "OrderSelectContext"),
    ("context-order-sign.json", "OrderSignContext"),
    ("context-patient-view.json", "PatientViewContext"),
])
def test_component_has_the_shape_of_the_schema_file(file, component):
    schema = json.loads((SCHEMAS / file).read_text(encoding="utf-8"))
    assert _component(component) == _as_component(schema)


@pytest.mark.parametrize("file, definition, component", [
    ("request.json", "resource", "FhirResource"),
    ("context-order-select.json", "bundle", "DraftOrdersBundle"),
])
def test_shared_definitions_have_the_shape_of_the_schema_file(file, definition, component):
    schema = json.loads((SCHEMAS / file).read_text(encoding="utf-8"))
    assert _component(component) == _as_component(schema["$defs"][definition])


def test_hooks_in_description_are_the_service_hooks():
    body = description()["components"]["schemas"]["ServiceRequestBody"]["allOf"][1]["properties"]
    assert tuple(body["hook"]["enum"]) == HOOKS


# --- real responses, each validated against the schema the description gives for it ---------------

def _post(client, service_id: str, body: Any = None, *, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body)
    return client.post(f"/cds-services/{service_id}", data=data, content_type="application/json")


def test_discovery_matches(client):
    response = client.get("/cds-services")
    check_response("GET", "/cds-services", 200, response.content_type, response.data)


def test_healthz_matches(client):
    response = client.get("/healthz")
    check_response("GET", "/healthz", 200, response.content_type, response.data)


@pytest.mark.parametrize("hook", HOOKS)
def test_valid_call_matches(client, hook):
    body = builtin_request(hook)
    assert schema_validator("ServiceRequestBody").is_valid(body), "the sample request itself must be valid"
    response = _post(client, f"tacrolimus-{hook}", body)
    assert response.status_code == 200
    check_response("POST", CALL, 200, response.content_type, response.data)


def test_cards_schema_accepts_a_full_card_and_rejects_spec_violations():
    card = {"uuid": "00000000-0000-4000-8000-000000000001", "summary": "Tacrolimus trough above range",
            "indicator": "warning", "source": {"label": "tacro-cds"},
            "suggestions": [{"label": "Reduce dose", "uuid": "00000000-0000-4000-8000-000000000002",
                             "actions": [{"type": "delete", "description": "Remove",
                                          "resourceId": "MedicationRequest/a1"}]}],
            "selectionBehavior": "at-most-one",
            "overrideReasons": [{"system": "http://example.org", "code": "x", "display": "Clinician judgement"}],
            "links": [{"label": "Guideline", "url": "https://example.org/g", "type": "absolute"}]}
    validator = schema_validator("Card")
    assert validator.is_valid(card)
    broken = {
        "summary-140": {**card, "summary": "x" * 140},
        "bad-indicator": {**card, "indicator": "hard-stop"},
        "no-selection-behavior": {k: v for k, v in card.items() if k != "selectionBehavior"},
        "override-without-display": {**card, "overrideReasons": [{"code": "x"}]},
        "delete-without-resourceId": {**card, "suggestions": [{**card["suggestions"][0],
                                      "actions": [{"type": "delete", "description": "Remove"}]}]},
        "create-without-resource": {**card, "suggestions": [{**card["suggestions"][0],
                                    "actions": [{"type": "create", "description": "Add"}]}]},
        "appContext-on-absolute": {**card, "links": [{**card["links"][0], "appContext": "a"}]},
        "empty-detail": {**card, "detail": ""},
        "null-source": {**card, "source": None},
    }
    for name, bad in broken.items():
        assert not validator.is_valid(bad), name


@pytest.mark.parametrize("case, service_id, raw, status", [
    ("malformed-json", "tacrolimus-patient-view", b"{not json", 400),
    ("schema-violation", "tacrolimus-patient-view", b'{"hook": "patient-view"}', 400),
    ("hook-mismatch", "tacrolimus-order-sign",
     json.dumps({"hook": "patient-view", "hookInstance": "i", "context": {"userId": "u", "patientId": "p"}}).encode(),
     400),
    ("too-deep", "tacrolimus-patient-view", b"[" * 200 + b"]" * 200, 400),
    ("unknown-service", "no-such-service", b"{}", 404),
], ids=lambda v: v if isinstance(v, str) and not v.startswith("tacrolimus") else None)
def test_error_responses_match(client, case, service_id, raw, status):
    response = _post(client, service_id, raw=raw)
    assert response.status_code == status, case
    outcome = check_response("POST", CALL, status, response.content_type, response.data)
    assert outcome["resourceType"] == "OperationOutcome"


def test_payload_too_large_matches(make_app):
    client = make_app(MAX_REQUEST_BYTES=1000).test_client()
    body = builtin_request("patient-view")
    response = _post(client, "tacrolimus-patient-view", body)
    assert response.status_code == 413
    check_response("POST", CALL, 413, response.content_type, response.data)


class _Unavailable:
    """A resolver that cannot obtain the required data (as the FHIR fallback reports it)."""

    optional = frozenset()

    def resolve_partial(self, request, templates, **_kwargs):
        raise PrefetchUnavailableError("patient: not in prefetch and no fhirServer to fetch it from",
                                       location=["$.prefetch.patient"])


def test_precondition_failed_matches(make_app):
    client = make_app(resolver=_Unavailable()).test_client()
    response = _post(client, "tacrolimus-patient-view", builtin_request("patient-view"))
    assert response.status_code == 412
    check_response("POST", CALL, 412, response.content_type, response.data)


@pytest.mark.parametrize("method, path, described", [
    ("GET", "/cds-services", "/cds-services"),
    ("POST", "/cds-services/tacrolimus-patient-view", CALL),
])
def test_unauthorized_is_the_generic_outcome_as_described(make_app, method, path, described):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = client.open(path, method=method, data="{}", content_type="application/json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    check_response(method, described, 401, response.content_type, response.data)

"""The OpenAPI 3.1 description: service/openapi.json referencing the JSON Schemas the service validates
with (service/schemas/, one copy of each), served assembled into one document that is valid,
resolvable, served without a token, and true of the real responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from bench.samples import builtin_request
from service.api.openapi import DescriptionError, bundle, description_text, referenced_files
from service.errors import PrefetchUnavailableError
from service.hooks.registry import HOOKS
from service.hooks.validation import SCHEMA_FILES, validator
from tests.openapi_check import check_response, description, schema_validator

SERVICE_DIR = Path(__file__).resolve().parent.parent / "service"
SCHEMAS = SERVICE_DIR / "schemas"
SERVICE_IDS = ["tacrolimus-order-select", "tacrolimus-order-sign", "tacrolimus-patient-view"]
CALL = "/cds-services/{service_id}"


def test_served_without_a_token_as_one_valid_self_contained_openapi_3_1_document(make_app):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served = response.get_json()
    validate(served)  # openapi-spec-validator resolves every $ref it meets
    assert served["openapi"].startswith("3.1.")
    assert all(ref.startswith("#/") for ref in _refs_in(served)), "a client must need no other file"
    assert served == description()
    check_response("GET", "/openapi.json", 200, response.content_type, response.data)


def test_service_id_enum_is_the_registry(client):
    enum = description()["components"]["parameters"]["ServiceId"]["schema"]["enum"]
    ids = [s["id"] for s in client.get("/cds-services").get_json()["services"]]
    assert sorted(enum) == sorted(ids) == sorted(SERVICE_IDS)


# --- one copy of each schema: the description references the files the service validates with -----


def _source() -> dict[str, Any]:
    return json.loads((SERVICE_DIR / "api" / "openapi.json").read_text(encoding="utf-8"))


def _schema_file(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def test_every_schema_file_is_referenced_by_the_description():
    assert referenced_files(_source()) == {p.name for p in SCHEMAS.glob("*.json")}
    assert set(SCHEMA_FILES) <= referenced_files(_source())


def _property_sets(node: Any) -> list[frozenset[str]]:
    """The property names of every schema with ``properties`` in a document."""
    if isinstance(node, dict):
        own = [frozenset(node["properties"])] if isinstance(node.get("properties"), dict) else []
        return own + [names for value in node.values() for names in _property_sets(value)]
    if isinstance(node, list):
        return [names for value in node for names in _property_sets(value)]
    return []


def test_the_source_holds_no_copy_of_a_schema_file():
    """No object schema of a schema file (nor any of its definitions) is written out again in
    service/openapi.json: the components that stand for them are bare references."""
    in_source = set(_property_sets(_source()))
    in_files = {
        names: p.name
        for p in SCHEMAS.glob("*.json")
        for names in _property_sets(_schema_file(p.name))
        if len(names) > 1
    }
    assert len(in_files) >= 8
    assert not [file for names, file in in_files.items() if names in in_source]
    homes = [c for c in _source()["components"]["schemas"].values() if c.get("$ref", "").startswith("schemas/")]
    assert len(homes) >= len(list(SCHEMAS.glob("*.json"))) and all(set(c) == {"$ref"} for c in homes)


@pytest.mark.parametrize(
    "file, component",
    [
        ("request.json", "CdsServiceRequest"),
        ("context-order-select.json", "OrderSelectContext"),
        ("context-order-sign.json", "OrderSignContext"),
        ("context-patient-view.json", "PatientViewContext"),
        ("response.json", "CdsServiceResponse"),
        ("feedback.json", "FeedbackRequest"),
    ],
)
def test_served_component_is_the_schema_file(file, component):
    """Embedded once, under the component that names the whole file; only $id/$schema left out and
    references made local."""
    served = description()["components"]["schemas"][component]
    written = _schema_file(file)
    assert set(served) == set(written) - {"$id", "$schema"}
    assert served["required"] == written["required"]
    assert served.get("$defs", {}).keys() == written.get("$defs", {}).keys()
    assert all(ref.startswith("#/components/schemas/") for ref in _refs_in(served))


def _refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs_in(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs_in(v)]
    return []


@pytest.mark.parametrize("file", SCHEMA_FILES)
def test_described_schema_and_service_validator_agree(file):
    """The served description judges a body as the service's own validator does (same file)."""
    component = {
        "request.json": "CdsServiceRequest",
        "feedback.json": "FeedbackRequest",
        "context-order-select.json": "OrderSelectContext",
        "context-order-sign.json": "OrderSignContext",
        "context-patient-view.json": "PatientViewContext",
    }[file]
    samples = [builtin_request(hook) for hook in HOOKS] + [
        {**builtin_request("order-select")["context"]},
        {"userId": "u", "patientId": "p"},
        {"userId": "", "patientId": "p"},
        {"userId": "u", "patientId": "p", "draftOrders": {"resourceType": "Patient"}},
        {"hook": "patient-view", "hookInstance": "i", "context": {}, "fhirAuthorization": {}},
        {
            "feedback": [
                {
                    "card": "c",
                    "outcome": "overridden",
                    "overrideReason": {"userComment": "x"},
                    "outcomeTimestamp": "2026-11-25T09:00:00Z",
                }
            ]
        },
        {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-25T09:00:00Z"}]},
        {
            "feedback": [
                {
                    "card": "c\u0000",
                    "outcome": "overridden",
                    "overrideReason": {"userComment": "x"},
                    "outcomeTimestamp": "2026-11-25T09:00:00Z",
                }
            ]
        },
    ]
    verdicts = [(schema_validator(component).is_valid(s), validator(file).is_valid(s)) for s in samples]
    assert all(described == served for described, served in verdicts), verdicts
    assert {served for _, served in verdicts} == {True, False}, "the samples must include both verdicts"


def test_the_description_is_assembled_once_per_process(make_app):
    client = make_app().test_client()
    assert client.get("/openapi.json").data == make_app().test_client().get("/openapi.json").data
    assert description_text() is description_text()


# --- the assembly itself --------------------------------------------------------------------------

_FILES = {
    "a.json": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.org/schemas/a.json",
        "type": "object",
        "properties": {"b": {"$ref": "b.json#/$defs/x"}, "self": {"$ref": "#/$defs/y"}},
        "$defs": {"y": {"type": "string"}},
    },
    "b.json": {"$id": "https://example.org/schemas/b.json", "$defs": {"x": {"type": "integer"}}},
}


def _doc(schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/a": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}},
                        }
                    }
                }
            }
        },
        "components": {"schemas": schemas},
    }


def test_bundle_embeds_each_file_once_and_makes_every_reference_local():
    out = bundle(
        _doc(
            {"A": {"$ref": "schemas/a.json"}, "B": {"$ref": "schemas/b.json"}, "X": {"$ref": "schemas/b.json#/$defs/x"}}
        ),
        _FILES.__getitem__,
    )
    schemas = out["components"]["schemas"]
    assert schemas["A"] == {
        "type": "object",
        "properties": {
            "b": {"$ref": "#/components/schemas/B/$defs/x"},
            "self": {"$ref": "#/components/schemas/A/$defs/y"},
        },
        "$defs": {"y": {"type": "string"}},
    }
    assert schemas["B"] == {"$defs": {"x": {"type": "integer"}}}
    assert schemas["X"] == {"$ref": "#/components/schemas/B/$defs/x"}
    validate(out)


@pytest.mark.parametrize(
    "schemas, files, message",
    [
        ({"A": {"$ref": "schemas/a.json"}}, _FILES, "no component"),  # b.json has no home
        (
            {"A": {"$ref": "schemas/a.json"}, "B": {"$ref": "schemas/b.json"}, "C": {"$ref": "schemas/b.json"}},
            _FILES,
            "embedded twice",
        ),
        (
            {"A": {"$ref": "schemas/a.json"}, "B": {"$ref": "schemas/b.json"}},
            {**_FILES, "b.json": {"$defs": {}}},
            "points at nothing",
        ),
        (
            {"A": {"$ref": "schemas/a.json"}, "B": {"$ref": "schemas/b.json"}},
            {**_FILES, "b.json": {"$id": "https://example.org/schemas/other.json", "$defs": {"x": {}}}},
            "does not end in the file's name",
        ),
        ({"A": {"$ref": "../secrets.json"}}, _FILES, "is not a file in schemas/"),
    ],
    ids=["file-without-home", "two-homes", "dangling-pointer", "id-of-another-file", "outside-schemas"],
)
def test_bundle_refuses_what_would_leave_clients_an_unresolvable_document(schemas, files, message):
    def read(name: str) -> Any:
        return files[name]

    with pytest.raises(DescriptionError, match=message):
        bundle(_doc(schemas), read)


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
    card = {
        "uuid": "00000000-0000-4000-8000-000000000001",
        "summary": "Tacrolimus trough above range",
        "indicator": "warning",
        "source": {"label": "tacro-cds"},
        "suggestions": [
            {
                "label": "Reduce dose",
                "uuid": "00000000-0000-4000-8000-000000000002",
                "actions": [{"type": "delete", "description": "Remove", "resourceId": "MedicationRequest/a1"}],
            }
        ],
        "selectionBehavior": "at-most-one",
        "overrideReasons": [{"system": "http://example.org", "code": "x", "display": "Clinician judgement"}],
        "links": [{"label": "Guideline", "url": "https://example.org/g", "type": "absolute"}],
    }
    validator = schema_validator("Card")
    assert validator.is_valid(card)
    broken = {
        "summary-140": {**card, "summary": "x" * 140},
        "bad-indicator": {**card, "indicator": "hard-stop"},
        "no-selection-behavior": {k: v for k, v in card.items() if k != "selectionBehavior"},
        "override-without-display": {**card, "overrideReasons": [{"code": "x"}]},
        "delete-without-resourceId": {
            **card,
            "suggestions": [{**card["suggestions"][0], "actions": [{"type": "delete", "description": "Remove"}]}],
        },
        "create-without-resource": {
            **card,
            "suggestions": [{**card["suggestions"][0], "actions": [{"type": "create", "description": "Add"}]}],
        },
        "appContext-on-absolute": {**card, "links": [{**card["links"][0], "appContext": "a"}]},
        "empty-detail": {**card, "detail": ""},
        "null-source": {**card, "source": None},
    }
    for name, bad in broken.items():
        assert not validator.is_valid(bad), name


@pytest.mark.parametrize(
    "case, service_id, raw, status",
    [
        ("malformed-json", "tacrolimus-patient-view", b"{not json", 400),
        ("schema-violation", "tacrolimus-patient-view", b'{"hook": "patient-view"}', 400),
        (
            "hook-mismatch",
            "tacrolimus-order-sign",
            json.dumps(
                {"hook": "patient-view", "hookInstance": "i", "context": {"userId": "u", "patientId": "p"}}
            ).encode(),
            400,
        ),
        ("too-deep", "tacrolimus-patient-view", b"[" * 200 + b"]" * 200, 400),
        ("unknown-service", "no-such-service", b"{}", 404),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("tacrolimus") else None,
)
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
        raise PrefetchUnavailableError(
            "patient: not in prefetch and no fhirServer to fetch it from", location=["$.prefetch.patient"]
        )


def test_precondition_failed_matches(make_app):
    client = make_app(resolver=_Unavailable()).test_client()
    response = _post(client, "tacrolimus-patient-view", builtin_request("patient-view"))
    assert response.status_code == 412
    check_response("POST", CALL, 412, response.content_type, response.data)


@pytest.mark.parametrize(
    "method, path, described",
    [
        ("GET", "/cds-services", "/cds-services"),
        ("POST", "/cds-services/tacrolimus-patient-view", CALL),
    ],
)
def test_unauthorized_is_the_generic_outcome_as_described(make_app, method, path, described):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = client.open(path, method=method, data="{}", content_type="application/json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    check_response(method, described, 401, response.content_type, response.data)

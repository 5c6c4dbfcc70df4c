"""The FHIR server demands its bearer token, and the service forwards the one the CDS client passes
in fhirAuthorization when it fetches what the prefetch lacks."""

from __future__ import annotations

import copy

import pytest

from fhir_fixtures import load_request, scenario_clock
from service import create_app

pytestmark = pytest.mark.integration

SCENARIO = "rif-eligible"
SERVICE = "tacrolimus-patient-view"


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["no-token", "wrong-token"])
@pytest.mark.parametrize(
    "query", [f"Patient/{SCENARIO}", f"Observation?patient={SCENARIO}&_count=5"], ids=["read", "search"]
)
def test_server_refuses_calls_without_its_token(fhir_server, token, query):
    assert fhir_server.get(query, token=token).status_code in (401, 403)


def test_server_answers_with_its_token(fhir_server):
    assert fhir_server.get(f"Patient/{SCENARIO}").status_code == 200


def _client(tmp_path):
    app = create_app(
        {
            "AUTH_REQUIRED": False,
            "ALLOW_HTTP_FHIR": "loopback",
            "LOG_LEVEL": "WARNING",
            "FEEDBACK_DB": f"sqlite:///{tmp_path / 'feedback.sqlite'}",
        },
        clock=lambda: scenario_clock(SCENARIO),
    )
    return app.test_client()


def _without_prefetch(fhir_url: str, token: str) -> dict:
    request = copy.deepcopy(load_request(SCENARIO, "patient-view"))
    del request["prefetch"]
    request["fhirServer"] = fhir_url
    request["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tacro-cds",
    }
    return request


def test_service_fetches_with_the_clients_token(fhir_server, tmp_path):
    response = _client(tmp_path).post(
        f"/cds-services/{SERVICE}", json=_without_prefetch(fhir_server.url, fhir_server.token or "none")
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


def test_service_answers_412_when_the_server_refuses_the_token(fhir_server, tmp_path):
    response = _client(tmp_path).post(
        f"/cds-services/{SERVICE}", json=_without_prefetch(fhir_server.url, "not-the-token")
    )
    assert response.status_code == 412, response.get_data(as_text=True)[:500]
    assert response.get_json()["resourceType"] == "OperationOutcome"

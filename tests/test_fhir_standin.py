"""The FHIR stand-in of the benches (bench/fhir_standin.py), which the load run uses when no real
FHIR server is configured: replaying the fixtures, a request sent without its prefetch gets the
cards of the same request prefetched; like a real server it refuses a wrong token."""

from __future__ import annotations

import pytest

from bench.fhir_standin import FhirStandIn, replay_answers, synthetic_answers
from bench.load import Fhir, comparable, fallback_body
from bench.samples import fixture_requests, fixture_resources
from cards.knowledge import load_knowledge
from service.prefetch_templates import prefetch_templates

TEMPLATES = prefetch_templates(load_knowledge())
REQUESTS = {name: (service, body) for name, service, body in fixture_requests()}
CASES = ["azole-fluconazole/order-sign", "rif-eligible/order-select", "trough-high/patient-view"]


@pytest.fixture(scope="module")
def standin():
    answers = replay_answers((body for _, body in REQUESTS.values()), TEMPLATES, fixture_resources())
    with FhirStandIn(answers, token="standin-token") as server:
        yield server


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("missing", ["all-keys", "some-keys"])
def test_fallback_from_the_standin_gives_the_prefetched_cards(make_app, standin, name, missing):
    service, body = REQUESTS[name]
    drop = None if missing == "all-keys" else sorted(body["prefetch"])[::2]
    client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
    prefetched = client.post(f"/cds-services/{service}", json=body)
    served = standin.served
    fallback = client.post(f"/cds-services/{service}", json=fallback_body(body, Fhir(standin.url, standin.token),
                                                                         drop))
    assert prefetched.status_code == fallback.status_code == 200
    assert prefetched.get_json()["cards"]
    assert comparable(fallback.get_json()) == comparable(prefetched.get_json())
    assert standin.served - served >= (len(TEMPLATES) if drop is None else len(drop))


def test_the_standin_refuses_a_wrong_token(make_app, standin):
    service, body = REQUESTS[CASES[0]]
    client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
    response = client.post(f"/cds-services/{service}", json=fallback_body(body, Fhir(standin.url, "wrong")))
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_replay_refuses_two_requests_that_disagree():
    _, body = REQUESTS[CASES[0]]
    other = {**body, "prefetch": {**body["prefetch"], "conditions": {"resourceType": "Bundle", "type": "searchset"}}}
    with pytest.raises(ValueError, match="conditions"):
        replay_answers([body, other], TEMPLATES)


def test_synthetic_answers_a_read_and_a_search():
    answer = synthetic_answers("p-1", per_search=3)
    assert answer("Patient/p-1") == (200, {"resourceType": "Patient", "id": "p-1"})
    status, bundle = answer("Observation?patient=p-1&code=http%3A%2F%2Floinc.org%7C2160-0")
    assert status == 200 and bundle["resourceType"] == "Bundle" and len(bundle["entry"]) == 3


def test_the_standin_counts_the_connections_it_accepts():
    """The fallback bench reads connection reuse from this count: one kept-alive client connection
    is one connection however many queries it carries; a fresh connection per query is one each."""
    import requests

    with FhirStandIn(synthetic_answers("p-1")) as server:
        with requests.Session() as session:
            for _ in range(3):
                assert session.get(f"{server.url}/Patient/p-1", timeout=30).status_code == 200
        assert (server.served, server.connections) == (3, 1)
        for _ in range(2):
            with requests.Session() as session:
                assert session.get(f"{server.url}/Patient/p-1", timeout=30).status_code == 200
        assert (server.served, server.connections) == (5, 3)

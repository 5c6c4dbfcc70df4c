"""The FHIR stand-in of the benches (bench/fhir_standin.py), which the load run uses when no real
FHIR server is configured: replaying the fixtures, a request sent without its prefetch gets the
cards of the same request prefetched; like a real server it refuses a wrong token."""

from __future__ import annotations

import time

import pytest

from bench.fhir_standin import FhirStandIn, replay_answers, synthetic_answers
from bench.load import Fhir, comparable, fallback_body
from bench.samples import fixture_requests, fixture_resources
from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates

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
    fallback = client.post(f"/cds-services/{service}", json=fallback_body(body, Fhir(standin.url, standin.token), drop))
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


def test_a_second_call_to_the_same_fhir_server_reuses_its_connections(make_app):
    service, body = REQUESTS[CASES[1]]
    answers = replay_answers([body], TEMPLATES, fixture_resources())
    # Each answer takes 300 ms, so every fetch of a call overlaps the others, in both calls alike. (At
    # 50 ms, a loaded machine started one call's fetch threads far enough apart that a fetch began after
    # another had finished: that call needed one connection fewer than the next, which then opened it.)
    with FhirStandIn(answers, token="standin-token", delay=0.3) as slow:
        client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
        fallback = fallback_body(body, Fhir(slow.url, slow.token), None)
        first = client.post(f"/cds-services/{service}", json=fallback)
        opened_by_first = slow.connections
        second = client.post(f"/cds-services/{service}", json=fallback)
        assert first.status_code == second.status_code == 200
        assert comparable(first.get_json()) == comparable(second.get_json())
        assert opened_by_first >= 1
        assert slow.connections == opened_by_first  # the second call opened none


def test_the_kept_connections_carry_each_calls_own_token(make_app, standin):
    service, body = REQUESTS[CASES[1]]
    client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
    good = client.post(f"/cds-services/{service}", json=fallback_body(body, Fhir(standin.url, standin.token)))
    wrong = client.post(f"/cds-services/{service}", json=fallback_body(body, Fhir(standin.url, "wrong")))
    assert good.status_code == 200
    assert wrong.status_code == 412


def _replay() -> object:
    return replay_answers((body for _, body in REQUESTS.values()), TEMPLATES, fixture_resources())


@pytest.mark.parametrize("name", CASES)
def test_a_kept_connection_the_server_closes_as_it_is_reused_costs_no_key(make_app, name):
    """A server's idle timer may close a kept-alive connection just as the next request goes out on
    it. The request is sent again on a new connection, so every key is still fetched, in the first
    call (whose Medication reads reuse its searches' connections) and in the next one."""
    service, body = REQUESTS[name]
    client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
    prefetched = client.post(f"/cds-services/{service}", json=body)
    with FhirStandIn(_replay(), token="standin-token", drop_reused_after=0.0) as closing:
        fallback = fallback_body(body, Fhir(closing.url, closing.token))
        answers = [client.post(f"/cds-services/{service}", json=fallback) for _ in range(3)]
        assert closing.dropped >= 1  # the race happened (every reused connection is closed)
    assert [a.status_code for a in answers] == [200, 200, 200]
    for answer in answers:
        assert comparable(answer.get_json()) == comparable(prefetched.get_json())


def test_kept_connections_the_server_closed_while_idle_are_not_used(make_app):
    """A server that closes idle kept-alive connections (as uvicorn does after 5 s): the next call
    opens new ones and still gets every key."""
    service, body = REQUESTS[CASES[1]]
    client = make_app(ALLOW_HTTP_FHIR="loopback").test_client()
    prefetched = client.post(f"/cds-services/{service}", json=body)
    with FhirStandIn(_replay(), token="standin-token", keep_alive_s=0.5) as idle_closing:
        fallback = fallback_body(body, Fhir(idle_closing.url, idle_closing.token))
        first = client.post(f"/cds-services/{service}", json=fallback)
        opened_by_first = idle_closing.connections
        time.sleep(2.0)  # every kept connection closed by the server meanwhile (idle for 4 times its limit)
        second = client.post(f"/cds-services/{service}", json=fallback)
        assert idle_closing.connections > opened_by_first
    assert first.status_code == second.status_code == 200
    assert comparable(first.get_json()) == comparable(second.get_json()) == comparable(prefetched.get_json())

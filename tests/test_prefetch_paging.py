"""Prefetched searchsets that are paged.

CDS Hooks 2.0.1, "Prefetch Template" (FHIR-28663 lifted the earlier "no next page links" rule): a
CDS client may answer a prefetch search with a paged searchset (a Bundle with a ``next`` link); the
3.0 ballot, same section, adds an example and says the service reads the next pages itself from
``fhirServer`` with the ``fhirAuthorization`` access token.
Using only the first page would compute cards from part of the history as if it were all of it.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses
from fhir_doubles import BASE, PATIENT, TOKEN, bundle, fhir_get, hook_body

from service.config import load_settings
from service.errors import PrefetchUnavailableError
from service.hooks.prefetch import PrefetchResolver
from service.hooks.validation import validate_request

TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&_count=100",
}
PATIENT_RESOURCE = {"resourceType": "Patient", "id": PATIENT}


def condition(cid: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid}


def resolver(**config: Any) -> PrefetchResolver:
    return PrefetchResolver(load_settings(config, environ={}))


def request_of(body: dict[str, Any]) -> Any:
    return validate_request(body, hook=body["hook"], limits=load_settings(environ={}))


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_the_next_pages_of_a_prefetched_searchset_are_fetched_with_the_token(rsps):
    """2.0.1 "Prefetch Template" (paged searchsets allowed); 3.0 ballot, same section: the
    service uses the fhirAuthorization access token to read the next page."""
    first = bundle(condition("c1"), next_url=f"{BASE}/Condition?patient={PATIENT}&page=2")
    fhir_get(
        rsps,
        r"Condition\?patient=.*&page=2$",
        bundle(condition("c2"), next_url=f"{BASE}/Condition?patient={PATIENT}&page=3"),
        token=TOKEN,
    )
    fhir_get(rsps, r"Condition\?patient=.*&page=3$", bundle(condition("c3")), token=TOKEN)
    data = resolver().resolve(request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": first})), TEMPLATES)
    assert ids(data["conditions"]) == ["c1", "c2", "c3"]
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)


def test_a_relative_next_link_is_read_from_fhir_server(rsps):
    first = bundle(condition("c1"), next_url=f"Condition?patient={PATIENT}&page=2")
    fhir_get(rsps, r"Condition\?patient=.*&page=2$", bundle(condition("c2")))
    data = resolver().resolve(request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": first})), TEMPLATES)
    assert ids(data["conditions"]) == ["c1", "c2"]


def test_paged_prefetch_reads_the_same_history_as_a_fetched_search(rsps):
    """The history depth a key reads does not depend on whether the client prefetched it: with
    FHIR_MAX_PAGES=2 both read two pages and stop before the third."""
    page = {
        n: bundle(condition(f"c{n}"), next_url=f"{BASE}/Condition?patient={PATIENT}&page={n + 1}") for n in (1, 2, 3)
    }
    fhir_get(rsps, r"Condition\?patient=[^&]*&_count=100$", page[1])
    fhir_get(rsps, r"Condition\?patient=.*&page=2$", page[2])
    fetched = resolver(FHIR_MAX_PAGES=2).resolve(request_of(hook_body({"patient": PATIENT_RESOURCE})), TEMPLATES)
    prefetched = resolver(FHIR_MAX_PAGES=2).resolve(
        request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": page[1]})), TEMPLATES
    )
    assert ids(fetched["conditions"]) == ids(prefetched["conditions"]) == ["c1", "c2"]
    assert len(rsps.calls) == 3  # fetched: pages 1 and 2; prefetched: page 2 only


def test_a_paged_prefetch_without_fhir_server_is_incomplete_and_a_412(rsps):
    """Without fhirServer the rest cannot be read: the key is handled like a missing key."""
    first = bundle(condition("c1"), next_url=f"{BASE}/Condition?patient={PATIENT}&page=2")
    body = hook_body({"patient": PATIENT_RESOURCE, "conditions": first}, fhir_server=None)
    with pytest.raises(PrefetchUnavailableError) as caught:
        resolver().resolve(request_of(body), TEMPLATES)
    issues = caught.value.outcome()["issue"][1:]
    assert [i["location"] for i in issues] == [["$.prefetch.conditions"]]
    assert issues[0]["diagnostics"] == "prefetch-incomplete"
    assert len(rsps.calls) == 0


def test_a_next_link_off_fhir_server_is_refused_and_never_called(rsps):
    """Same origin as fhirServer only: the token must not travel to another host. The page in hand is
    used, and the rest is named as missing."""
    first = bundle(condition("c1"), next_url="https://elsewhere.example.net/r4/Condition?page=2")
    data, missing = resolver().resolve_partial(
        request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": first})), TEMPLATES
    )
    assert ids(data["conditions"]) == ["c1"]
    [item] = [m for m in missing if m.key == "conditions"]
    assert item.partial and item.code == "prefetch-incomplete" and "outside fhirServer" in item.reason
    assert len(rsps.calls) == 0


def test_a_failing_next_page_keeps_the_first_page_and_names_the_rest_as_missing(rsps):
    """A critical result on the first page must not turn into "not checked" because page 2 failed."""
    first = bundle(condition("c1"), next_url=f"{BASE}/Condition?patient={PATIENT}&page=2")
    fhir_get(rsps, r"Condition\?patient=.*&page=2$", {"resourceType": "OperationOutcome", "issue": []}, status=503)
    data, missing = resolver().resolve_partial(
        request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": first})), TEMPLATES
    )
    assert ids(data["conditions"]) == ["c1"]
    [item] = [m for m in missing if m.key == "conditions"]
    assert item.partial and item.code == "prefetch-incomplete"
    # The strict resolve does not refuse the call for it either.
    assert ids(
        resolver().resolve(request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": first})), TEMPLATES)[
            "conditions"
        ]
    ) == ["c1"]


def test_a_prefetched_searchset_without_next_link_is_used_as_sent(rsps):
    data = resolver().resolve(
        request_of(hook_body({"patient": PATIENT_RESOURCE, "conditions": bundle(condition("c1"))})), TEMPLATES
    )
    assert ids(data["conditions"]) == ["c1"]
    assert len(rsps.calls) == 0

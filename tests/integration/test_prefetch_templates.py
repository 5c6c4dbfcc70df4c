"""Every prefetch template the service declares, run against the real FHIR server for every fixture
patient, answers what the fixture's prefetch holds (same resources, same order, same total)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_fixtures import hook_cases, load_request
from fhir_fixtures.build import declared_templates
from fhir_fixtures.matcher import substitute

pytestmark = pytest.mark.integration


def _queries() -> list[tuple[str, str, str, Any]]:
    """(scenario, key, substituted query, expected prefetch value), each distinct query once."""
    templates = declared_templates()
    seen: set[tuple[str, str]] = set()
    out = []
    for scenario, hook in hook_cases():
        request = load_request(scenario, hook)
        for key, template in templates[hook].items():
            query = substitute(template, request["context"])
            if (scenario, query) not in seen:
                seen.add((scenario, query))
                out.append((scenario, key, query, request["prefetch"][key]))
    return out


QUERIES = _queries()


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry") or []
        if (e.get("search") or {}).get("mode", "match") == "match"
    ]


@pytest.mark.parametrize(("scenario", "key", "query", "expected"), QUERIES, ids=[f"{s}-{k}" for s, k, _, _ in QUERIES])
def test_template_answers_what_the_fixture_prefetch_holds(fhir_server, scenario, key, query, expected):
    response = fhir_server.get(query)
    if expected is None:
        assert response.status_code == 404, f"{query}: expected no resource, got {response.status_code}"
        return
    assert response.status_code == 200, f"{query}: {response.status_code} {response.text[:300]}"
    body = response.json()
    if expected["resourceType"] != "Bundle":
        assert (body["resourceType"], body["id"]) == (expected["resourceType"], expected["id"])
        return
    assert body["type"] == "searchset"
    outcomes = [e["resource"] for e in body.get("entry") or [] if (e.get("search") or {}).get("mode") == "outcome"]
    assert not outcomes, f"{query}: the server ignored part of the query: {outcomes}"
    assert _ids(body) == _ids(expected), query
    assert body.get("total") == expected["total"], query


def test_every_declared_key_was_exercised():
    keys = {key for templates in declared_templates().values() for key in templates}
    assert keys and keys == {k for _, k, _, _ in QUERIES}

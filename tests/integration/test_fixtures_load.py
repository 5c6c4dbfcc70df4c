"""Loading the fixtures again (PUT with stable ids) leaves the server with the same resources."""

from __future__ import annotations

import io

import pytest

from tacro_dev.fixtures import fixtures_dir, load_all

pytestmark = pytest.mark.integration

SCENARIO = "gestational-glucose"


def _ids(fhir_server, query: str) -> list[str]:
    body = fhir_server.get(query).json()
    return sorted(e["resource"]["id"] for e in body.get("entry") or [])


def test_loading_twice_is_idempotent(fhir_server):
    queries = [f"{t}?patient={SCENARIO}&_count=500" for t in ("Observation", "Condition", "MedicationRequest")]
    before = [_ids(fhir_server, q) for q in queries]
    out = io.StringIO()
    assert load_all(fhir_server.url, fhir_server.token, fixtures_dir(), [SCENARIO], out) == 0
    assert "ok (" in out.getvalue()
    assert [_ids(fhir_server, q) for q in queries] == before and all(before)

"""A prefetched searchset is read as incomplete when an OperationOutcome entry says so
(``searchset_incomplete``). ``resolve_partial`` looks for one only when some entry was not kept
as a resource; this holds its answer to ``searchset_incomplete`` on every shape of Bundle."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fhir_doubles import PATIENT, hook_body

from service.config import load_settings
from service.hooks.prefetch import PrefetchResolver
from service.hooks.prefetch_values import searchset_incomplete
from service.hooks.validation import validate_request

TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}&_count=100",
}


def outcome(severity: Any, code: Any = "incomplete", issues: Any = None) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": issues if issues is not None else [{"severity": severity, "code": code}],
        },
        "search": {"mode": "outcome"},
    }


ENTRIES: list[Any] = [
    {"resource": {"resourceType": "Condition", "id": "c1"}},
    {"resource": {"resourceType": "Condition", "id": "c2"}},
    {"resource": {"resourceType": "Observation", "id": "o1"}},
    outcome("warning"),
    outcome("information"),
    outcome("error", 7),
    outcome("fatal", "too-costly"),
    outcome("warning", issues="not a list"),
    outcome("warning", issues=[3, {"severity": "note"}]),
    {"resource": "not an object"},
    {"fullUrl": "urn:uuid:1"},
    3,
    None,
]


def incomplete_of(value: Any) -> list[str]:
    resolver = PrefetchResolver(load_settings(environ={}))
    body = hook_body({"patient": {"resourceType": "Patient", "id": PATIENT}, "conditions": value}, fhir_server=None)
    request = validate_request(body, hook=body["hook"], limits=load_settings(environ={}))
    _, missing = resolver.resolve_partial(request, TEMPLATES)
    return [m.reason for m in missing if m.key == "conditions" and m.code == "prefetch-incomplete"]


def expected(value: Any) -> list[str]:
    warning = searchset_incomplete(value)
    return [] if warning is None else [warning]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: repr(e)[:60])
def test_each_entry_alone_and_after_kept_resources(entry: Any) -> None:
    for entries in ([entry], [ENTRIES[0], entry], [entry, ENTRIES[1], ENTRIES[2]]):
        value = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        assert incomplete_of(value) == expected(value)


def test_generated_bundles() -> None:
    rng = random.Random(22)
    for _ in range(300):
        entries = [rng.choice(ENTRIES) for _ in range(rng.randrange(0, 6))]
        value: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if entries or rng.random() < 0.5:
            value["entry"] = entries
        assert incomplete_of(value) == expected(value)


def test_a_bundle_with_an_outcome_is_still_read_as_incomplete() -> None:
    value = {"resourceType": "Bundle", "type": "searchset", "entry": [ENTRIES[0], outcome("warning")]}
    assert incomplete_of(value) == ["the server marked its answer incomplete (warning: incomplete)"]

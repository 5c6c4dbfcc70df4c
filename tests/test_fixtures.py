"""The synthetic patients of fhir_fixtures/: valid FHIR, loadable idempotently, requests complete and
up to date with the service's declared prefetch, and the in-memory search that builds them."""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_fixtures import FIXTURES_DIR, HOOKS, hook_cases, load_request, read_json, scenario_dirs
from fhir_fixtures.build import declared_templates, planned_files
from fhir_fixtures.matcher import UnsupportedQuery, search, substitute
from service.config import default_settings
from service.hooks.validation import validate_request

SCENARIOS = [d.name for d in scenario_dirs()]
CASES = hook_cases()

# The clinical situations the fixtures must cover (every concern the rules decide).
REQUIRED = [
    "rif-eligible",
    "below-cutoff",
    "euploid-transfer",
    "trough-high",
    "trough-low",
    "trough-in-range",
    "trough-pre-steady-state",
    "creatinine-rising",
    "hyperkalaemia",
    "hypertension",
    "gestational-glucose",
    "azole-fluconazole",
    "macrolide-clarithromycin",
    "mycophenolate",
    "missing-baseline-labs",
    "rif-rpl-pregnant",
    "units-si",
    "product-code-only",
    "text-only",
    "medication-reference",
    "sandbox-incomplete-draft",
]


def test_every_required_scenario_exists():
    assert set(REQUIRED) <= set(SCENARIOS)


def test_committed_files_are_what_the_build_produces():
    stale = [
        str(p.relative_to(FIXTURES_DIR))
        for p, text in planned_files().items()
        if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale fixtures (run `python -m fhir_fixtures.build`): {stale[:10]}"


def test_no_orphan_requests_or_goldens():
    cases = set(CASES)
    for d in scenario_dirs():
        for p in d.glob("requests/*.json"):
            assert (d.name, p.stem) in cases
        for p in d.glob("expected/*.response.json"):
            assert (d.name, p.name[: -len(".response.json")]) in cases, f"orphan golden {p}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_patient_bundle_is_an_idempotent_transaction_of_valid_r4_resources(scenario):
    bundle = read_json(FIXTURES_DIR / scenario / "patient.json")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    get_fhir_model_class("Bundle").model_validate(bundle)
    kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds["Patient"] == 1
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert resource["id"] == scenario or resource["id"].startswith(f"{scenario}-"), resource["id"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        if resource["resourceType"] != "Patient":
            refs = re.findall(r"'reference': 'Patient/([^']+)'", str(resource))
            assert refs and set(refs) == {scenario}


def test_resource_ids_are_unique_across_scenarios():
    ids = Counter(
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for s in SCENARIOS
        for e in read_json(FIXTURES_DIR / s / "patient.json")["entry"]
    )
    assert [k for k, n in ids.items() if n > 1] == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_file(scenario):
    data = read_json(FIXTURES_DIR / scenario / "scenario.json")
    assert data["asOf"] == "2026-11-25"
    assert data["description"] and "\n" not in data["description"]
    assert set(data["hooks"]) <= set(HOOKS) and "patient-view" in data["hooks"]


@pytest.mark.parametrize(("scenario", "hook"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_request_is_valid_and_fully_prefetched(scenario, hook):
    request = load_request(scenario, hook)
    validated = validate_request(request, hook=hook, limits=default_settings())
    assert validated.patient_id == scenario
    assert uuid.UUID(request["hookInstance"])
    assert "fhirServer" not in request
    assert set(request["prefetch"]) == set(declared_templates()[hook])


def test_si_scenario_reports_in_si_units():
    units = {
        e["resource"].get("valueQuantity", {}).get("code")
        for e in read_json(FIXTURES_DIR / "units-si" / "patient.json")["entry"]
    }
    assert {"umol/L", "mmol/L", "ug/L"} <= units


@pytest.mark.parametrize(
    ("scenario", "how"),
    [
        (
            "product-code-only",
            lambda m: (
                m["medicationCodeableConcept"]["coding"][0]["code"] == "198377"
                and "text" not in m["medicationCodeableConcept"]
            ),
        ),
        ("text-only", lambda m: "coding" not in m["medicationCodeableConcept"]),
        (
            "medication-reference",
            lambda m: (
                m["medicationReference"]["reference"] == "#med" and m["contained"][0]["resourceType"] == "Medication"
            ),
        ),
    ],
    ids=["product-code", "text", "medicationReference"],
)
def test_selected_draft_names_the_drug_the_way_the_scenario_says(scenario, how):
    context = load_request(scenario, "order-select")["context"]
    selected = [
        e["resource"]
        for e in context["draftOrders"]["entry"]
        if f"{e['resource']['resourceType']}/{e['resource']['id']}" in context["selections"]
    ]
    assert len(selected) == 1 and how(selected[0])


# ---- the in-memory search ------------------------------------------------------------------------


def _obs(rid, code, when=None, system="http://loinc.org", patient="p1", status="final"):
    r = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"coding": [{"system": system, "code": code}]},
    }
    if when:
        r["effectiveDateTime"] = when
    return r


POOL = [
    {"resourceType": "Patient", "id": "p1"},
    _obs("a", "2160-0", "2026-11-01T08:00:00Z"),
    _obs("b", "2160-0", "2026-11-20T08:00:00Z"),
    _obs("c", "2823-3"),  # no date: sorts last
    _obs("d", "2160-0", "2026-11-10", patient="p2"),
    _obs("e", "2160-0", "2026-11-15T08:00:00Z", system="http://other"),
    {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "subject": {"reference": "Patient/p1"}},
    {"resourceType": "MedicationRequest", "id": "m2", "status": "stopped", "subject": {"reference": "Patient/p1"}},
    {
        "resourceType": "Appointment",
        "id": "ap",
        "status": "booked",
        "start": "2026-12-01T10:00:00Z",
        "serviceType": [{"coding": [{"system": "L", "code": "embryo-transfer"}]}],
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
    },
]


def _ids(bundle):
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@pytest.mark.parametrize(
    ("query", "ids", "total"),
    [
        ("Observation?patient=p1&code=http://loinc.org|2160-0", ["a", "b"], 2),
        ("Observation?patient=p1&code=2160-0", ["a", "b", "e"], 3),
        ("Observation?patient=p1&code=http://loinc.org|2160-0,http://loinc.org|2823-3&_sort=-date", ["b", "a", "c"], 3),
        ("Observation?patient=p1&code=http://loinc.org|2160-0,http://loinc.org|2823-3&_sort=date", ["a", "b", "c"], 3),
        ("Observation?patient=Patient/p1&code=http://loinc.org|2160-0&_sort=-date&_count=1", ["b"], 2),
        ("Observation?patient=p3", [], 0),
        ("MedicationRequest?patient=p1&status=active,on-hold", ["m1"], 1),
        ("Appointment?patient=p1&service-type=L|embryo-transfer&_sort=-date", ["ap"], 1),
        ("Appointment?patient=p1&service-type=L|other", [], 0),
    ],
    ids=[
        "system-and-code",
        "code-only-any-system",
        "newest-first-undated-last",
        "oldest-first",
        "count-caps-page",
        "other-patient",
        "status-list",
        "service-type",
        "service-type-no-match",
    ],
)
def test_search(query, ids, total):
    bundle = search(query, POOL)
    assert bundle["type"] == "searchset" and _ids(bundle) == ids and bundle["total"] == total
    assert ("entry" in bundle) == bool(ids)  # an empty searchset has no empty entry array


def test_read():
    assert search("Patient/p1", POOL) == {"resourceType": "Patient", "id": "p1"}
    assert search("Patient/nobody", POOL) is None


@pytest.mark.parametrize(
    "query",
    [
        "Observation?patient=p1&value-quantity=5",
        "Observation?patient=p1&_sort=code",
        "Condition?patient=p1&_sort=-date",
        "Observation?patient=p1&_include=Observation:subject",
    ],
)
def test_unsupported_queries_are_refused_not_guessed(query):
    with pytest.raises(UnsupportedQuery):
        search(query, POOL)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Patient/{{context.patientId}}", "Patient/p1"),
        (
            "Observation?patient={{ context.patientId }}&encounter={{context.encounterId}}",
            "Observation?patient=p1&encounter=e1",
        ),
        ("Practitioner/{{userPractitionerId}}", "Practitioner/dr1"),
    ],
)
def test_substitute(template, expected):
    context = {"patientId": "p1", "encounterId": "e1", "userId": "Practitioner/dr1"}
    assert substitute(template, context) == expected


@pytest.mark.parametrize(
    "template", ["X?s={{context.selections}}", "X?p={{context.missing}}", "X?p={{userPatientId}}", "X?p={{today}}"]
)
def test_unresolvable_tokens_are_refused(template):
    with pytest.raises(UnsupportedQuery):
        substitute(template, {"patientId": "p1", "userId": "Practitioner/dr1", "selections": ["a"]})

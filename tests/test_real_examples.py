"""Every result, order, diagnosis, procedure and vaccine shape the FHIR R4 and US Core examples use,
and one whole Synthea record, put into a fixture chart: no 5xx, and the newest result is either used
or named on a card.

The examples are published data nobody on this project wrote (``tests/data/fhir-examples/README.md``).
Each Observation is placed in the critical-trough chart as her newest tacrolimus trough, keeping its
``value[x]``, ``effective[x]`` type, ``status``, components and ``dataAbsentReason`` as published; the
chart's older trough (21.5 ng/mL, critical) may decide only when the example is not a result
(cancelled, entered in error), and otherwise the example is what the cards show.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cards.knowledge import load_knowledge
from cards.text import reported
from fhir_fixtures import load_request, scenario_clock
from service import create_app
from service.hooks.base import HookRequest
from service.hooks.extract import build_facts
from service.hooks.prefetch import resources_of

DATA = Path(__file__).parent / "data" / "fhir-examples"
SCENARIO = "trough-critical"
PATIENT = "trough-critical"
NEWEST = "2026-11-24T20:30:00Z"  # after the chart's own evening trough (19:00), before the clock
IGNORED = {"entered-in-error", "cancelled"}
TROUGH = {"coding": [{"system": "http://loinc.org", "code": "77348-1"}]}


def examples(kind: str) -> list[tuple[str, dict[str, Any]]]:
    items = json.loads((DATA / f"{kind}.json").read_text(encoding="utf-8"))
    return [(f"{item['source'].split('/')[-1]}#{n}", item["resource"]) for n, item in enumerate(items)]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    clock = scenario_clock(SCENARIO)
    return create_app(
        {
            "AUTH_REQUIRED": False,
            "LOG_LEVEL": "CRITICAL",
            "SMART_APP_ENABLED": False,
            "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('examples') / 'f.sqlite'}",
        },
        clock=lambda: clock,
    )


def post(app, body: dict[str, Any]) -> Any:
    response = app.test_client().post("/cds-services/tacrolimus-patient-view", json=body)
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def as_newest_trough(resource: dict[str, Any]) -> dict[str, Any]:
    """The example as her newest trough: her subject, the trough code, its times moved to NEWEST in the
    same effective[x] type."""
    ex = copy.deepcopy(resource)
    ex["id"] = "example"
    ex["subject"] = {"reference": f"Patient/{PATIENT}"}
    ex["code"] = copy.deepcopy(TROUGH)
    for key in ("effectiveDateTime", "effectiveInstant", "issued"):
        if key in ex:
            ex[key] = NEWEST
    if isinstance(ex.get("effectivePeriod"), dict):
        ex["effectivePeriod"] = {k: NEWEST for k in ("start", "end") if k in ex["effectivePeriod"]} or {"start": NEWEST}
    if isinstance(ex.get("effectiveTiming"), dict):
        ex["effectiveTiming"] = {"event": [NEWEST]}
    return ex


OBSERVATIONS = examples("Observation")


@pytest.mark.parametrize("name, resource", OBSERVATIONS, ids=[n for n, _ in OBSERVATIONS])
def test_every_observation_shape_is_used_or_named(app, name, resource):
    body = copy.deepcopy(load_request(SCENARIO, "patient-view"))
    example = as_newest_trough(resource)
    body["prefetch"]["tacrolimusLevels"]["entry"].append({"resource": example})
    cards = post(app, body).get_json()["cards"]
    text = "\n".join(f"{c['summary']}\n{c.get('detail', '')}" for c in cards)

    data = {key: resources_of(value) for key, value in body["prefetch"].items()}
    request = HookRequest(hook="patient-view", hook_instance="i", context=body["context"])
    facts = build_facts(request, data, load_knowledge(), today=scenario_clock(SCENARIO).date())
    read = [m for m in facts.results("tacrolimus") if m.source.startswith("Observation/example")]
    if example.get("status") in IGNORED:
        assert not read
        return
    unusable = [u for u in facts.unusable if u.source == "Observation/example"]
    if unusable:
        return  # named on the data-quality card (its reason), never used
    assert read, f"{name}: the example was neither read nor reported"
    newest = read[0]
    if newest.when is None:
        return  # undated: cannot be placed as newest; named as unusable where it is shown
    assert reported(newest) in text, f"{name}: the newest result {reported(newest)!r} is on no card"


@pytest.mark.parametrize(
    "kind, key",
    [
        ("MedicationRequest", "medicationRequests"),
        ("Condition", "conditions"),
        ("Procedure", "transferProcedures"),
        ("ServiceRequest", "transferRequests"),
        ("Immunization", "immunizations"),
    ],
)
def test_every_order_diagnosis_procedure_and_vaccine_shape_is_read_without_error(app, kind, key):
    """All examples of the type in one chart (their subject made hers): the critical trough stays."""
    body = copy.deepcopy(load_request(SCENARIO, "patient-view"))
    for n, (_, resource) in enumerate(examples(kind)):
        ex = copy.deepcopy(resource)
        ex["id"] = f"example-{n}"
        ex.pop("subject", None)
        ex["subject" if kind != "Immunization" else "patient"] = {"reference": f"Patient/{PATIENT}"}
        body["prefetch"][key].setdefault("entry", []).append({"resource": ex})
    cards = post(app, body).get_json()["cards"]
    assert any(c["indicator"] == "critical" and "21.5" in c["summary"] for c in cards), [c["summary"] for c in cards]


def test_a_whole_synthea_record_is_read_without_error(app):
    """A real-shaped record (thousands of resources, urn:uuid references) through every template."""
    from fhir_fixtures.build import declared_templates
    from fhir_fixtures.matcher import search, substitute

    record = json.loads((DATA / "synthea-Dannie_Schmitt.json").read_text(encoding="utf-8"))
    chart = [e["resource"] for e in record["entry"]]
    patient = next(r for r in chart if r["resourceType"] == "Patient")
    for resource in chart:  # urn:uuid references as a server stores them: Patient/<id>
        for field in ("subject", "patient"):
            if isinstance(resource.get(field), dict):
                resource[field] = {"reference": f"Patient/{patient['id']}"}
    context = {"userId": "Practitioner/p", "patientId": patient["id"]}
    templates = declared_templates()["patient-view"]
    body = {
        "hook": "patient-view",
        "hookInstance": "7f0e6f43-8a0b-4c35-9d64-6f8e2c3b1a10",
        "context": context,
        "prefetch": {key: search(substitute(query, context), chart) for key, query in templates.items()},
    }
    post(app, body)

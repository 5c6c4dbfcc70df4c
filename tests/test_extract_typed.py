"""The usual-shape reading of Observations (``UsualObservationReader._usual_observation``) against the
lenient reading alone: identical facts and identical cards, for every fixture request, every published
Observation example placed in a chart, the bench's year of data, and a seeded generated set of value,
unit, comparator, timing, status, code and component shapes. The usual-shape reading may decline a
resource (the lenient path then reads it), never read it differently."""

from __future__ import annotations

import copy
import json
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cards.evaluate import evaluate
from cards.facts import PatientFacts
from cards.knowledge import load_knowledge
from cards.model import Card
from fhir_fixtures import load_request, scenario_clock
from service.config import default_settings
from service.hooks.extract import build_facts
from service.hooks.extract import usual_observations as observations_module
from service.hooks.prefetch import resources_of
from service.hooks.validation import validate_request

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_REQUESTS = sorted(ROOT.glob("fhir_fixtures/*/requests/*.json"))
EXAMPLES = ROOT / "tests" / "data" / "fhir-examples" / "Observation.json"
KNOWLEDGE = load_knowledge()
LIMITS = default_settings()
CHART = "trough-critical"
PATIENT = "trough-critical"

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"


def both_ways(body: dict[str, Any], today: date) -> tuple[PatientFacts, list[Card], int]:
    """Facts and cards of ``body`` read both ways (asserted identical); how many Observations the
    usual-shape reading took."""
    request = validate_request(body, hook=body["hook"], limits=LIMITS)
    data = {key: resources_of(value) for key, value in (body.get("prefetch") or {}).items()}
    taken = 0
    original = observations_module.UsualObservationReader._usual_observation

    def counting(reader: Any, resource: dict[str, Any]) -> bool:
        nonlocal taken
        took = original(reader, resource)
        taken += took
        return took

    observations_module.UsualObservationReader._usual_observation = counting  # type: ignore[method-assign]
    try:
        typed = build_facts(request, data, KNOWLEDGE, today=today)
    finally:
        observations_module.UsualObservationReader._usual_observation = original  # type: ignore[method-assign]
    lenient = build_facts(request, data, KNOWLEDGE, today=today, typed=False)
    assert typed == lenient
    typed_cards = evaluate(typed, today, KNOWLEDGE)
    assert typed_cards == evaluate(lenient, today, KNOWLEDGE)
    return typed, typed_cards, taken


def test_there_are_fixture_requests():
    assert len(FIXTURE_REQUESTS) >= 100


@pytest.mark.parametrize("path", FIXTURE_REQUESTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_fixture_request_gives_the_same_facts_and_cards(path):
    body = json.loads(path.read_text(encoding="utf-8"))
    both_ways(body, scenario_clock(path.parent.parent.name).date())


def test_the_usual_shape_is_what_the_fixtures_carry():
    """The fixtures' results are of the usual shape: the typed reading takes nearly all of them (a
    reading that declined everything would pass the comparisons above and gain nothing)."""
    taken = total = 0
    for path in FIXTURE_REQUESTS:
        body = json.loads(path.read_text(encoding="utf-8"))
        total += sum(
            1
            for value in (body.get("prefetch") or {}).values()
            for r in resources_of(value)
            if isinstance(r, dict) and r.get("resourceType") == "Observation"
        )
        taken += both_ways(body, scenario_clock(path.parent.parent.name).date())[2]
    assert total > 500
    assert taken >= 0.8 * total


def test_the_bench_year_is_read_alike_by_the_usual_shape():
    from bench.bodies import build_body

    for name in ("order-select", "patient-view-cards"):
        body = json.loads(build_body(name).payload)
        facts, _, taken = both_ways(body, scenario_clock(CHART).date())
        assert taken >= 150 and facts.labs


def chart_with(observations: list[dict[str, Any]]) -> dict[str, Any]:
    body = copy.deepcopy(load_request(CHART, "patient-view"))
    body["prefetch"]["tacrolimusLevels"].setdefault("entry", []).extend({"resource": o} for o in observations)
    return body


def published_examples() -> list[tuple[str, dict[str, Any]]]:
    items = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return [(f"{item['source'].split('/')[-1]}#{n}", item["resource"]) for n, item in enumerate(items)]


@pytest.mark.parametrize("name, resource", published_examples(), ids=[n for n, _ in published_examples()])
def test_every_published_observation_shape_is_read_alike(name, resource):
    """As published, and as her newest trough (her subject, the trough code), beside her own results."""
    example = copy.deepcopy(resource)
    example["id"] = "example"
    example["subject"] = {"reference": f"Patient/{PATIENT}"}
    as_trough = copy.deepcopy(example)
    as_trough["id"] = "example-trough"
    as_trough["code"] = {"coding": [{"system": LOINC, "code": "77348-1"}]}
    both_ways(chart_with([example, as_trough]), scenario_clock(CHART).date())


# ---- generated shapes --------------------------------------------------------------------------------

# (concept's code, a usual unit) for concepts with and without unit tables, hCG, pregnancy test, the
# Th1/Th2 panel, blood pressure as a panel and as standalone sides.
CODES = [
    ({"system": LOINC, "code": "77348-1"}, "ng/mL"),  # tacrolimus trough
    ({"system": LOINC, "code": "2160-0"}, "mg/dL"),  # creatinine
    ({"system": LOINC, "code": "2823-3"}, "mmol/L"),  # potassium
    ({"system": LOINC, "code": "2345-7"}, "mg/dL"),  # glucose
    ({"system": LOINC, "code": "4548-4"}, "%"),  # HbA1c
    ({"system": LOINC, "code": "11253-2"}, "ng/mL"),  # tacrolimus of unknown timing
    ({"system": LOINC, "code": "19080-1"}, "[IU]/L"),  # hCG
    ({"system": LOINC, "code": "21198-7"}, "m[IU]/mL"),  # hCG beta
    ({"system": LOINC, "code": "2106-3"}, None),  # pregnancy test
    ({"system": LOINC, "code": "85354-9"}, "mm[Hg]"),  # blood pressure panel
    ({"system": LOINC, "code": "55284-4"}, "mm[Hg]"),  # blood pressure panel as Synthea sends it
    ({"system": LOINC, "code": "8480-6"}, "mm[Hg]"),  # systolic
    ({"system": LOINC, "code": "8462-4"}, "mm[Hg]"),  # diastolic
    ({"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "th1-th2-ratio"}, "{ratio}"),
    ({"system": LOINC, "code": "00000-0"}, "mg/dL"),  # not a code this service reads
]
COMPONENT_CODES = [
    {"system": LOINC, "code": "8480-6"},
    {"system": LOINC, "code": "8462-4"},
    {"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "th1-cd4-ifng-pct"},
    {"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "th2-cd4-il4-pct"},
    {"system": LOINC, "code": "2823-3"},
    {"system": LOINC, "code": "99999-9"},
]
NUMBERS: list[Any] = [6.2, 12, 0, -1, 0.000001, 5.179565090425196, 1e6, 21.5, 4.2, 140, True, "6.9", " 7 ", None,
                      float("inf"), float("nan"), 10**400, "x"]  # fmt: skip
UNITS: list[dict[str, Any]] = [
    {},  # the concept's usual unit, as UCUM
    {"unit": "mg/dl"},
    {"unit": "µg/L", "system": UCUM, "code": "ug/L"},
    {"unit": "umol/L", "system": UCUM, "code": "umol/L"},
    {"unit": "mmol/L"},
    {"code": "mg/dL"},
    {"system": "http://example.org/units", "code": "mg/dL", "unit": "milligrams per decilitre"},
    {"unit": "furlongs"},
    {"unit": None, "code": None},
    {"unit": 5},
    {"unit": "mEq/L", "system": UCUM, "code": "meq/L"},
    {"unit": "10^3/uL"},
]
TIMES: list[Any] = [
    {"effectiveDateTime": "2026-11-20T07:30:00Z"},
    {"effectiveDateTime": "2026-11-20T07:30:00Z"},  # twice: same-time results of one concept conflict
    {"effectiveDateTime": "2026-11-21"},
    {"effectiveDateTime": "2026-11"},
    {"effectiveDateTime": "2026-11-22T07:30:00"},
    {"effectiveDateTime": "2026-11-22T07:30:00+02:00"},
    {"effectiveDateTime": "yesterday"},
    {"effectiveDateTime": ""},
    {"effectiveDateTime": "9999-12-31"},
    {"effectiveDateTime": 20261120},
    {"effectiveDateTime": None, "issued": "2026-11-19T10:00:00Z"},
    {"effectivePeriod": {"start": "2026-11-18T07:00:00Z", "end": "2026-11-18T08:00:00Z"}},
    {"effectiveInstant": "2026-11-23T07:30:00.000Z"},
    {"effectiveTiming": {"event": ["2026-11-17T07:00:00Z", "2026-11-17T19:00:00Z"]}},
    {"issued": "2026-11-16T12:00:00Z"},
    {},
]
STATUSES: list[Any] = ["final", "final", "amended", "corrected", "preliminary", "registered", "unknown",
                       "cancelled", "entered-in-error", "", None, 5, "FINAL"]  # fmt: skip


def quantity(rng: random.Random, unit: str | None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": rng.choice(NUMBERS)}
    shape = rng.choice(UNITS)
    if not shape and unit is not None:
        shape = {"unit": unit, "system": UCUM, "code": unit}
    q.update({k: v for k, v in shape.items() if v is not None or rng.random() < 0.5})
    if rng.random() < 0.2:
        q["comparator"] = rng.choice(["<", ">", "<=", ">=", "", None, "ad"])
    if rng.random() < 0.05:
        del q["value"]
    return q


def value(rng: random.Random, unit: str | None) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.6:
        return {"valueQuantity": quantity(rng, unit)}
    return rng.choice(
        [
            {"valueString": rng.choice(["6.9", ">30 ng/mL", "< 1,5 mmol/L", "pending", "Positive", "neg", " 12 "])},
            {"valueString": "7.1", "valueQuantity": quantity(rng, unit)},
            {"valueInteger": rng.choice([7, 0, "7", True])},
            {"valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]}},
            {"valueCodeableConcept": {"text": "Negative"}},
            {"valueRatio": {"numerator": {"value": 25.2}, "denominator": {"value": 2.0}}},
            {"valueBoolean": True},
            {"valueQuantity": "6.2 ng/mL"},
            {"valueQuantity": [{"value": 6.2}]},
            {"dataAbsentReason": {"coding": [{"code": "not-performed"}]}},
            {},
        ]
    )


def code_of(rng: random.Random, coding: dict[str, Any]) -> Any:
    shape = rng.random()
    if shape < 0.75:
        return {"coding": [dict(coding, display="a display")]}
    return rng.choice(
        [
            {"coding": [{"system": LOINC, "code": "1234-5"}, dict(coding)]},
            {"coding": dict(coding)},
            [{"coding": [dict(coding)]}],
            {"coding": [{"code": coding["code"]}]},
            {"coding": [dict(coding), {"system": 7, "code": "x"}]},
            {"coding": [dict(coding), "text"]},
            {"coding": []},
            {"text": "no coding"},
            {"coding": [dict(coding, code="")]},
            None,
        ]
    )


def component(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return "not an object"
    out: dict[str, Any] = {"code": code_of(rng, rng.choice(COMPONENT_CODES))}
    out.update(value(rng, rng.choice(["mm[Hg]", "%", "mmol/L"])))
    return out


def generated_observation(rng: random.Random, n: int) -> dict[str, Any]:
    coding, unit = rng.choice(CODES)
    res: dict[str, Any] = {"resourceType": "Observation", "id": f"gen-{n}"}
    status = rng.choice(STATUSES)
    if status is not None or rng.random() < 0.5:
        res["status"] = status
    res["code"] = code_of(rng, coding)
    res["subject"] = rng.choice(
        [
            {"reference": f"Patient/{PATIENT}"},
            {"reference": f"Patient/{PATIENT}"},
            {"reference": f"https://ehr.example.org/fhir/Patient/{PATIENT}/_history/3"},
            {"reference": "Patient/someone-else"},
        ]
    )
    res.update(rng.choice(TIMES))
    res.update(value(rng, unit))
    if rng.random() < 0.3:
        count = rng.choice([1, 2, 2, 3])
        res["component"] = [component(rng) for _ in range(count)] if rng.random() < 0.9 else component(rng)
    if rng.random() < 0.2:
        res["referenceRange"] = rng.choice(
            [
                [{"high": {"value": 15, "unit": unit}}],
                [{"high": {"value": 1.2}}],
                [{"low": {"value": 1}}, {"high": {"value": 130, "system": UCUM, "code": "umol/L"}}],
                {"high": {"value": "x"}},
                ["text"],
            ]
        )
    if rng.random() < 0.1:
        res["specimen"] = rng.choice([{"reference": "Specimen/s1"}, {"reference": 4}, "Specimen/s1"])
    return res


@pytest.mark.parametrize("seed", range(40))
def test_generated_observation_shapes_are_read_alike(seed):
    """20 generated results at a time in her chart (same-time conflicts, derived ratios and paired
    blood pressure depend on the set, not on one resource)."""
    rng = random.Random(seed)
    observations = [generated_observation(rng, n) for n in range(20)]
    both_ways(chart_with(observations), scenario_clock(CHART).date())


def test_the_generated_set_exercises_both_readings():
    """The generated set has usual shapes the typed reading takes and unusual ones it declines."""
    taken = total = 0
    for seed in range(40):
        rng = random.Random(seed)
        observations = [generated_observation(rng, n) for n in range(20)]
        total += len(observations)
        taken += both_ways(chart_with(observations), scenario_clock(CHART).date())[2]
    own = both_ways(chart_with([]), scenario_clock(CHART).date())[2]
    assert 0.2 * total < taken - 40 * own < 0.8 * total

"""The usual-shape readings of Observations (``UsualObservationReader._usual_observation``) and of
MedicationRequests (``UsualMedicationReader._usual_medication``) against the lenient reading alone:
identical facts and identical cards, for every fixture request, every published Observation example
placed in a chart, the bench's bodies, a seeded generated set of value, unit, comparator, timing,
status, code and component shapes, and a seeded generated set of order shapes (statuses, drugs coded,
named or referenced, doses, rates, ranges, timings, courses, sigs, drafts, other patients, odd types).
A usual-shape reading may decline a resource (the lenient path then reads it), never read it
differently."""

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
from service.hooks.extract import build_facts, extract
from service.hooks.extract import usual_medications as medications_module
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
    facts, cards, taken, _ = read_both_ways(body, today)
    return facts, cards, taken


def state_of(reader: Any) -> tuple[int, ...]:
    """What a reader has read so far, as far as a medication can add to it."""
    return (len(reader.medications), len(reader.ended_medications), len(reader.unusable), len(reader.orders))


def read_both_ways(body: dict[str, Any], today: date) -> tuple[PatientFacts, list[Card], int, int]:
    """``both_ways``, with how many MedicationRequests the usual-shape reading took too."""
    request = validate_request(body, hook=body["hook"], limits=LIMITS)
    data = {key: resources_of(value) for key, value in (body.get("prefetch") or {}).items()}
    taken = meds_taken = 0
    original = observations_module.UsualObservationReader._usual_observation
    original_medication = medications_module.UsualMedicationReader._usual_medication

    def counting(reader: Any, resource: dict[str, Any]) -> bool:
        nonlocal taken
        took = original(reader, resource)
        taken += took
        return took

    def counting_medications(reader: Any, resource: dict[str, Any], draft: bool) -> bool:
        nonlocal meds_taken
        before = state_of(reader)
        took = original_medication(reader, resource, draft)
        meds_taken += took
        if not took:
            assert state_of(reader) == before, "declined after reading something"
        return took

    observations_module.UsualObservationReader._usual_observation = counting  # type: ignore[method-assign]
    medications_module.UsualMedicationReader._usual_medication = counting_medications  # type: ignore[method-assign]
    try:
        typed_extracted = extract(request, data, KNOWLEDGE, today=today)
    finally:
        observations_module.UsualObservationReader._usual_observation = original  # type: ignore[method-assign]
        medications_module.UsualMedicationReader._usual_medication = original_medication  # type: ignore[method-assign]
    typed = typed_extracted.facts
    lenient = build_facts(request, data, KNOWLEDGE, today=today, typed=False)
    assert typed == lenient
    # The order each medication fact was read from (what a suggested change rewrites), by its key.
    lenient_extracted = extract(
        request, data, KNOWLEDGE, today=today, typed_observations=False, typed_medications=False
    )
    assert lenient_extracted.facts == lenient
    assert [m.key for m in typed.medications + typed.ended_medications] == [
        m.key for m in lenient.medications + lenient.ended_medications
    ]
    assert {k: id(v) for k, v in typed_extracted.orders.items()} == {
        k: id(v) for k, v in lenient_extracted.orders.items()
    }
    typed_cards = evaluate(typed, today, KNOWLEDGE)
    assert typed_cards == evaluate(lenient, today, KNOWLEDGE)
    return typed, typed_cards, taken, meds_taken


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


def fixture_orders(body: dict[str, Any]) -> int:
    """How many MedicationRequests a request carries (prefetched and drafts)."""
    drafts = resources_of((body.get("context") or {}).get("draftOrders") or [])
    stored = [r for value in (body.get("prefetch") or {}).values() for r in resources_of(value)]
    return sum(1 for r in drafts + stored if isinstance(r, dict) and r.get("resourceType") == "MedicationRequest")


def test_the_usual_order_shape_is_what_the_fixtures_carry():
    """The fixtures' orders are of the usual shape: the typed reading takes nearly all of them."""
    taken = total = 0
    for path in FIXTURE_REQUESTS:
        body = json.loads(path.read_text(encoding="utf-8"))
        total += fixture_orders(body)
        taken += read_both_ways(body, scenario_clock(path.parent.parent.name).date())[3]
    assert total > 100
    assert taken >= 0.8 * total


@pytest.mark.parametrize(
    "name", ["order-select", "patient-view", "history-50-order-select", "history-5000-order-select"]
)
def test_the_bench_bodies_orders_are_read_alike_and_by_the_usual_shape(name):
    from bench.bodies import build_body

    body = json.loads(build_body(name).payload)
    facts, _, _, taken = read_both_ways(body, scenario_clock(CHART).date())
    assert facts.medications and taken == fixture_orders(body)


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


# ---- generated order shapes --------------------------------------------------------------------------

ORDER_CHART = "azole-fluconazole"
ORDER_PATIENT = "azole-fluconazole"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
SNOMED = "http://snomed.info/sct"

ORDER_STATUSES: list[Any] = ["active", "active", "active", "on-hold", "draft", "stopped", "completed", "cancelled",
                             "entered-in-error", "unknown", "", None, 5, "ACTIVE"]  # fmt: skip
CODINGS: list[dict[str, Any]] = [
    {"system": RXNORM, "code": "198377", "display": "tacrolimus 1 MG Oral Capsule"},
    {"system": RXNORM, "code": "1664463"},  # Envarsus XR 1 mg (extended release)
    {"system": RXNORM, "code": "42316", "display": "tacrolimus"},  # ingredient
    {"system": RXNORM, "code": "4450", "display": "fluconazole"},
    {"system": RXNORM, "code": "0000000"},  # not a code this service knows
    {"system": CVX, "code": "03", "display": "MMR"},
    {"system": "http://example.org/drugs", "code": "tac-1", "display": "Prograf 1 mg"},
]
NAMES = ["tacrolimus 1 mg capsule", "Envarsus XR 1 mg", "fluconazole 150 mg tablet", "vitamin D3 1000 unit tablet",
         "Varivax", "clotrimazole vaginal cream", "", "tacrolimus"]  # fmt: skip


def drug(rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.55:
        concept: dict[str, Any] = {"coding": [dict(rng.choice(CODINGS)) for _ in range(rng.choice([1, 1, 2]))]}
        if rng.random() < 0.5:
            concept["text"] = rng.choice(NAMES)
        return {"medicationCodeableConcept": concept}
    if kind < 0.7:
        return {"medicationCodeableConcept": {"text": rng.choice(NAMES)}}
    if kind < 0.82:
        return rng.choice(
            [
                {"medicationReference": {"reference": "#med"}},
                {"medicationReference": {"reference": "#other", "display": "tacrolimus 1 mg"}},
                {"medicationReference": {"reference": "Medication/stored"}},
                {"medicationReference": {"reference": "Medication/nowhere"}},
                {"medicationReference": {"reference": "Medication/nowhere", "display": "fluconazole"}},
                {"medicationReference": {"display": "Prograf"}},
                {"medicationReference": "Medication/stored"},
            ]
        )
    return rng.choice(
        [
            {"medicationCodeableConcept": "tacrolimus 1 mg"},
            {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": ""}], "text": "x"}},
            {"medicationCodeableConcept": {"coding": [{"system": 7, "code": "198377"}]}},
            {"medicationCodeableConcept": {"coding": {"system": RXNORM, "code": "198377"}}},
            {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "198377"}, "text"]}},
            {"medicationCodeableConcept": {"coding": [{"code": "198377"}]}},
            {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "198377", "display": 5}]}},
            {"medicationCodeableConcept": {"coding": [], "text": ""}},
            {"medicationCodeableConcept": {"text": 7}},
            {"medicationCodeableConcept": {}},
            {"medicationCodeableConcept": None},
            {"medicationCodeableConcept": {"text": "tacrolimus"}, "medicationReference": {"reference": "#med"}},
            {},
        ]
    )


DOSE_VALUES: list[Any] = [1, 2, 3, 0.5, 150, 0, -1, 1e6, "2", True, None, 10**400, float("nan"), float("inf")]
DOSE_UNITS: list[dict[str, Any]] = [
    {"unit": "capsule", "system": UCUM, "code": "{capsule}"},
    {"unit": "mg", "system": UCUM, "code": "mg"},
    {"unit": "tablet", "system": UCUM, "code": "{tablet}"},
    {"unit": "mg"},
    {"code": "mg"},
    {"unit": "mcg"},
    {"unit": "g", "code": "g"},
    {"unit": "tablet", "code": "mg"},  # ambiguous
    {"unit": "mL", "code": "mL"},
    {"unit": "furlongs"},
    {"unit": 5},
    {"code": None, "unit": None},
    {},
]


def dose_and_rate(rng: random.Random) -> Any:
    quantity: dict[str, Any] = {"value": rng.choice(DOSE_VALUES), **rng.choice(DOSE_UNITS)}
    if rng.random() < 0.05:
        del quantity["value"]
    kind = rng.random()
    if kind < 0.7:
        return [{"doseQuantity": quantity}]
    return rng.choice(
        [
            [{"doseQuantity": quantity, "rateQuantity": {"value": 1, "unit": "mL/h"}}],
            [{"type": {"text": "ordered"}, "doseQuantity": quantity}, {"doseQuantity": {"value": 9, "unit": "mg"}}],
            [{"rateRatio": {"numerator": {"value": 1}}}, {"doseQuantity": quantity}],
            [{"doseRange": {"low": {"value": 1, "unit": "mg"}, "high": {"value": 2, "unit": "mg"}}}],
            [{"doseQuantity": "2 mg"}],
            [],
            {"doseQuantity": quantity},
            ["2 mg"],
            None,
        ]
    )


def repeat(rng: random.Random) -> Any:
    out: dict[str, Any] = {}
    shape = rng.random()
    if shape < 0.75:
        out.update(frequency=rng.choice([1, 1, 2, 3]), period=rng.choice([1, 1, 12, 8, 1.5]),
                   periodUnit=rng.choice(["d", "d", "h", "wk", "mo"]))  # fmt: skip
    else:
        out.update(
            rng.choice(
                [
                    {"frequency": 2},
                    {"period": 1},
                    {"frequency": 0, "period": 1, "periodUnit": "d"},
                    {"frequency": "2", "period": 1, "periodUnit": "d"},
                    {"frequency": 1, "period": 0, "periodUnit": "d"},
                    {"frequency": 1, "period": 5e-324, "periodUnit": "h"},
                    {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"},
                    {"frequency": 1, "period": 8, "periodMax": 12, "periodUnit": "h"},
                    {"frequency": 1, "period": 1, "periodUnit": "day"},
                    {"timeOfDay": ["08:00:00", "20:00:00"]},
                    {"when": ["PCV"]},
                    {"timeOfDay": "20:00:00"},
                    {"frequency": True, "period": 1, "periodUnit": "d"},
                    {},
                ]
            )
        )
    if rng.random() < 0.3:
        out["timeOfDay"] = rng.choice([["20:00:00"], ["08:00:00", "20:00:00"], ["8pm"], "20:00:00"])
    if rng.random() < 0.2:
        out["when"] = rng.choice([["PCV"], ["HS"], ["MORN"], [5]])
    bounds = rng.random()
    if bounds < 0.4:
        out["boundsPeriod"] = rng.choice(
            [
                {"start": "2026-11-25"},
                {"start": "2026-11-25", "end": "2026-11-25"},
                {"start": "2026-11-20", "end": "2026-12-01"},
                {"start": "2026-11-25T08:00:00Z", "end": "2026-12-02T08:00:00Z"},
                {"end": "2026-12-01"},
                {"start": "yesterday"},
                {"start": "2026-12-01", "end": "2026-11-01"},
                {"start": "9999-12-31"},
                {},
                "2026-11-25",
            ]
        )
    elif bounds < 0.6:
        out["boundsDuration"] = rng.choice(
            [
                {"value": 7, "unit": "days"},
                {"value": 1, "unit": "wk"},
                {"value": 1, "code": "d"},
                {"value": 0, "unit": "d"},
                {"value": 40000, "unit": "d"},
                {"value": 2, "unit": "mo"},
                {"value": "7", "unit": "d"},
                7,
            ]  # fmt: skip
        )
    elif bounds < 0.7:
        out["count"] = rng.choice([1, 3, 14, 0, "2", 2.5])
    elif bounds < 0.75:
        out["boundsRange"] = {"low": {"value": 1}, "high": {"value": 3}}
    return out


SIGS: list[Any] = ["2 mg once daily after dinner", "150 mg by mouth 1 time(s) a day", "fluconazole 150 mg x 1 week",
                   "200 mg daily x1 month", "150 mg single dose", "once only", "150 mg stat", "1 tab at bedtime",
                   "", None, 5]  # fmt: skip


def instruction(rng: random.Random, n: int) -> Any:
    if rng.random() < 0.03:
        return "take as directed"
    out: dict[str, Any] = {}
    if rng.random() < 0.8:
        out["sequence"] = rng.choice([1, 1, n + 1, "1"])
    sig = rng.choice(SIGS)
    if sig is not None:
        out["text"] = sig
    if rng.random() < 0.1:
        out["patientInstruction"] = rng.choice(["take in the evening", "single dose", 4])
    timing = rng.random()
    if timing < 0.85:
        out["timing"] = {"repeat": repeat(rng)}
        if rng.random() < 0.05:
            out["timing"]["code"] = {"coding": [{"code": "BID"}]}
    elif timing < 0.95:
        out["timing"] = rng.choice([{"code": {"coding": [{"code": "BID"}]}}, {"code": {"text": "daily"}}, "daily",
                                    {"repeat": "daily"}, {}])  # fmt: skip
    route = rng.random()
    if route < 0.6:
        out["route"] = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}
    elif route < 0.75:
        out["route"] = rng.choice([{"text": "vaginal"}, {"coding": [{"system": SNOMED, "code": "16857009"}]},
                                   {"text": "by mouth"}, "oral", {"coding": [{"code": 5}]}])  # fmt: skip
    if rng.random() < 0.93:
        out["doseAndRate"] = dose_and_rate(rng)
    if rng.random() < 0.04:
        out["asNeededBoolean"] = rng.choice([True, False])
    if rng.random() < 0.02:
        out["asNeededCodeableConcept"] = {"text": "pain"}
    return out


def generated_order(rng: random.Random, n: int) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationRequest", "id": f"gen-order-{n}"}
    if rng.random() < 0.03:
        del res["id"]
    status = rng.choice(ORDER_STATUSES)
    if status is not None or rng.random() < 0.5:
        res["status"] = status
    intent = rng.choice(["order", "order", "plan", "proposal", None, 7])
    if intent is not None:
        res["intent"] = intent
    res.update(drug(rng))
    res["subject"] = rng.choice(
        [
            {"reference": f"Patient/{ORDER_PATIENT}"},
            {"reference": f"Patient/{ORDER_PATIENT}"},
            {"reference": f"https://ehr.example.org/fhir/Patient/{ORDER_PATIENT}/_history/2"},
            {"reference": "Patient/someone-else"},
        ]
    )
    authored = rng.choice(["2026-11-20T09:00:00Z", "2026-11-20", "2026-11", "yesterday", 20261120, "9999-12-31", None])
    if authored is not None:
        res["authoredOn"] = authored
    count = rng.choice([1, 1, 1, 2, 2, 3])
    shape = rng.random()
    if shape < 0.85:
        res["dosageInstruction"] = [instruction(rng, i) for i in range(count)]
    elif shape < 0.92:
        res["dosageInstruction"] = rng.choice([instruction(rng, 0), [], None, "daily"])
    if rng.random() < 0.25:
        res["dispenseRequest"] = rng.choice(
            [
                {"expectedSupplyDuration": {"value": 7, "unit": "days"}},
                {"expectedSupplyDuration": {"value": 30, "unit": "d"}, "numberOfRepeatsAllowed": 2},
                {"numberOfRepeatsAllowed": 0, "validityPeriod": {"start": "2026-11-20", "end": "2026-12-20"}},
                {"expectedSupplyDuration": {"value": 99999, "unit": "d"}},
                {"validityPeriod": {"start": "2026-11-20"}, "quantity": {"value": 30}},
                "30 days",
            ]
        )
    if rng.random() < 0.1:
        res["priorPrescription"] = rng.choice([{"reference": "MedicationRequest/old-1"}, {"reference": ""}, "x"])
    if rng.random() < 0.1:
        res["reasonCode"] = rng.choice([[{"coding": [{"system": SNOMED, "code": "55741006"}], "text": "Lupus"}],
                                        {"text": "thrush"}])  # fmt: skip
    if rng.random() < 0.1:
        res["reasonReference"] = rng.choice([[{"display": "Lupus nephritis"}], {"display": "Thrush"}, ["x"]])
    if rng.random() < 0.04:
        res["doNotPerform"] = rng.choice([True, False])
    if res.get("medicationReference") == {"reference": "#med"} or rng.random() < 0.05:
        res["contained"] = [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": rng.choice(
                    [{"coding": [dict(CODINGS[0])]}, {"text": "fluconazole 150 mg"}, {"coding": "x"}, None]
                ),
                "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "42316"}]}}],
            }
        ]
    return res


STORED_MEDICATION = {
    "resourceType": "Medication",
    "id": "stored",
    "code": {"coding": [{"system": RXNORM, "code": "4450", "display": "fluconazole"}]},
}


def order_chart_with(orders: list[dict[str, Any]], drafts: list[dict[str, Any]]) -> dict[str, Any]:
    body = copy.deepcopy(load_request(ORDER_CHART, "order-select"))
    body["prefetch"]["medicationRequests"].setdefault("entry", []).extend({"resource": o} for o in orders)
    body["prefetch"]["medications"] = {"resourceType": "Bundle", "type": "searchset",
                                       "entry": [{"resource": STORED_MEDICATION}]}  # fmt: skip
    body["context"]["draftOrders"]["entry"].extend({"resource": d} for d in drafts)
    body["context"]["selections"] += [f"MedicationRequest/{d['id']}" for d in drafts[:2] if "id" in d]
    return body


def generated_orders(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    orders = [generated_order(rng, n) for n in range(20)]
    return orders[:14], orders[14:]


@pytest.mark.parametrize("seed", range(40))
def test_generated_order_shapes_are_read_alike(seed):
    """20 generated orders at a time in her chart, 14 stored and 6 drafts (two of them selected)."""
    stored, drafts = generated_orders(seed)
    read_both_ways(order_chart_with(stored, drafts), scenario_clock(ORDER_CHART).date())


def test_the_generated_orders_exercise_both_readings():
    """The generated set has usual shapes the typed reading takes and unusual ones it declines."""
    taken = total = 0
    for seed in range(40):
        stored, drafts = generated_orders(seed)
        total += len(stored) + len(drafts)
        taken += read_both_ways(order_chart_with(stored, drafts), scenario_clock(ORDER_CHART).date())[3]
    own = read_both_ways(order_chart_with([], []), scenario_clock(ORDER_CHART).date())[3]
    assert 0.2 * total < taken - 40 * own < 0.8 * total


COURSES: list[dict[str, Any]] = [
    {},
    {"count": 1},
    {"count": 3},
    {"count": 14},
    {"count": 0},
    {"count": 2.5},
    {"count": "2"},
    {"boundsDuration": {"value": 7, "unit": "days"}},
    {"boundsDuration": {"value": 0, "unit": "d"}},
    {"boundsPeriod": {"start": "2026-11-20", "end": "2026-12-01"}},
    {"boundsPeriod": {"start": "2026-12-01", "end": "2026-11-01"}, "count": 3},
    {"boundsPeriod": {"start": "2026-11-25"}, "boundsDuration": {"value": 1, "unit": "wk"}},
]


def usual_course_order(n: int, courses: list[dict[str, Any]], supply: Any) -> dict[str, Any]:
    """An order of the usual shape whose instructions state the courses ``courses`` (each plus a plain
    schedule of its own), with ``supply`` as its dispenseRequest."""
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"course-{n}",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{ORDER_PATIENT}"},
        "authoredOn": "2026-11-20",
        "medicationCodeableConcept": {"coding": [dict(CODINGS[0])], "text": "fluconazole 150 mg"},
        "dosageInstruction": [
            {
                "text": "150 mg",
                "timing": {"repeat": {"frequency": 1 + i, "period": 1, "periodUnit": "d", **course}},
                "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg", "code": "mg"}}],
            }
            for i, course in enumerate(courses)
        ],
    }
    if supply is not None:
        res["dispenseRequest"] = supply
    return res


def test_every_course_of_a_usual_order_is_read_alike():
    """Each way an instruction can state its course (count, boundsDuration, boundsPeriod, none), first or
    after one that states none, with and without a dispenseRequest: read alike, all by the usual shape."""
    supplies = [None, {"expectedSupplyDuration": {"value": 30, "unit": "d"}, "numberOfRepeatsAllowed": 2}]
    orders = [
        usual_course_order(n, courses, supply)
        for n, (courses, supply) in enumerate(
            (courses, supply)
            for course in COURSES
            for courses in ([course], [{}, course], [course, {"count": 14}])
            for supply in supplies
        )
    ]
    body = order_chart_with(orders, [])
    own = read_both_ways(order_chart_with([], []), scenario_clock(ORDER_CHART).date())[3]
    assert read_both_ways(body, scenario_clock(ORDER_CHART).date())[3] == own + len(orders)

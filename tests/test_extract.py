"""FHIR → facts, row by row of docs/data-profile.md (the service's input contract)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cards.facts import Measurement, PatientFacts
from cards.knowledge import load_knowledge
from service.hooks.extract import _newest_first, _newest_results_first, build_facts, parse_fhir_datetime
from service.hooks.validation import HookRequest

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
UTC = UTC
WHEN = "2026-11-20T08:00:00Z"
WHEN_DT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

KNOWLEDGE = load_knowledge()


# ---- builders --------------------------------------------------------------------------------------


def cc(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]}
    if text:
        concept["text"] = text
    return concept


def qty(value: Any, unit: str | None = None, code: str | None = None, **extra: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if unit:
        q["unit"] = unit
    if code:
        q.update(system=UCUM, code=code)
    q.update(extra)
    return q


def obs(
    oid: str,
    system: str,
    code: str,
    value: Any = None,
    unit: str | None = None,
    *,
    status: str = "final",
    when: str | None = WHEN,
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": status, "code": cc(system, code)}
    if when is not None:
        res["effectiveDateTime"] = when
    if value is not None:
        res["valueQuantity"] = qty(value, unit, unit)
    res.update(extra)
    return res


def med_request(
    mid: str, medication: dict[str, Any] | None = None, *, status: str = "active", dosage: Any = None, **extra: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }
    if medication is not None:
        res["medicationCodeableConcept"] = medication
    if dosage is not None:
        res["dosageInstruction"] = dosage
    res.update(extra)
    return res


def dosage(
    value: Any,
    unit: str,
    code: str | None = None,
    *,
    frequency: int | None = 1,
    period: float | None = 1,
    period_unit: str | None = "d",
    **extra: Any,
) -> dict[str, Any]:
    repeat: dict[str, Any] = {}
    if frequency is not None:
        repeat["frequency"] = frequency
    if period is not None:
        repeat["period"] = period
    if period_unit is not None:
        repeat["periodUnit"] = period_unit
    d: dict[str, Any] = {
        "timing": {"repeat": repeat},
        "doseAndRate": [{"doseQuantity": qty(value, unit, code or unit)}],
    }
    d.update(extra)
    return d


def service_request(sid: str, code: str = "embryo-transfer", status: str = "active", **extra: Any) -> dict[str, Any]:
    res = {"resourceType": "ServiceRequest", "id": sid, "status": status, "intent": "order", "code": cc(LOCAL, code)}
    res.update(extra)
    return res


def with_repeat(d: dict[str, Any], **repeat: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    d["timing"]["repeat"].update(repeat)
    return d


def request(
    *, drafts: list[dict[str, Any]] = (), selections: tuple[str, ...] = (), hook: str = "order-select"
) -> HookRequest:
    context: dict[str, Any] = {"patientId": "p1", "userId": "Practitioner/u1"}
    if hook in ("order-select", "order-sign"):
        # Real clients send a draftOrders Bundle without type (the CDS Hooks 2.0 order-select context).
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]}
    if hook == "order-select":
        context["selections"] = list(selections)
    return HookRequest(hook=hook, hook_instance="00000000-0000-4000-8000-000000000000", context=context)


def facts(
    *resources: Any,
    drafts: list[dict[str, Any]] = (),
    selections: tuple[str, ...] = (),
    knowledge: dict[str, Any] | None = None,
    hook: str = "order-select",
    today: date | None = None,
) -> PatientFacts:
    return build_facts(
        request(drafts=list(drafts), selections=selections, hook=hook),
        {"someKey": list(resources)},
        knowledge or KNOWLEDGE,
        today=today,
    )


def only(items: tuple[Any, ...]) -> Any:
    assert len(items) == 1, items
    return items[0]


# ---- observations: every code of the profile → its concept ------------------------------------------

# id, (system, code), value, unit, concept, canonical value, extra expectations
OBSERVATION_CODES = [
    ("th1-th2-ratio", (LOCAL, "th1-th2-ratio"), 12.5, "{ratio}", "th1_th2_ratio", 12.5, {}),
    ("th1-pct", (LOCAL, "th1-cd4-ifng-pct"), 25, "%", "th1_pct", 25.0, {}),
    ("th2-pct", (LOCAL, "th2-cd4-il4-pct"), 2, "%", "th2_pct", 2.0, {}),
    ("tacrolimus-trough-77348-1", (LOINC, "77348-1"), 6.5, "ng/mL", "tacrolimus", 6.5, {"timing": "trough"}),
    ("tacrolimus-11253-2-timing-unknown", (LOINC, "11253-2"), 6.5, "ng/mL", "tacrolimus", 6.5, {"timing": "unknown"}),
    ("tacrolimus-74096-9-immunoassay", (LOINC, "74096-9"), 6.5, "ug/L", "tacrolimus", 6.5, {"timing": "unknown"}),
    ("tacrolimus-74097-7-lcmsms", (LOINC, "74097-7"), 6.5, "ng/mL", "tacrolimus", 6.5, {"timing": "unknown"}),
    ("creatinine-2160-0", (LOINC, "2160-0"), 0.8, "mg/dL", "creatinine", 0.8, {}),
    ("creatinine-38483-4-blood", (LOINC, "38483-4"), 0.8, "mg/dL", "creatinine", 0.8, {}),
    ("creatinine-14682-9-umol", (LOINC, "14682-9"), 70.72, "umol/L", "creatinine", 0.8, {}),
    ("glucose-2345-7", (LOINC, "2345-7"), 90, "mg/dL", "glucose", 90.0, {"fasting": False}),
    ("glucose-2339-0-blood", (LOINC, "2339-0"), 90, "mg/dL", "glucose", 90.0, {"fasting": False}),
    ("glucose-14749-6-mmol", (LOINC, "14749-6"), 5.0, "mmol/L", "glucose", 90.0, {"fasting": False}),
    ("glucose-1558-6-fasting", (LOINC, "1558-6"), 95, "mg/dL", "glucose", 95.0, {"fasting": True}),
    ("hba1c-4548-4", (LOINC, "4548-4"), 5.4, "%", "hba1c", 5.4, {}),
    ("potassium-2823-3", (LOINC, "2823-3"), 4.1, "mmol/L", "potassium", 4.1, {}),
    ("potassium-6298-4-meq", (LOINC, "6298-4"), 4.1, "mEq/L", "potassium", 4.1, {}),
    ("hemoglobin-718-7", (LOINC, "718-7"), 12.5, "g/dL", "hemoglobin", 12.5, {}),
    ("wbc-6690-2", (LOINC, "6690-2"), 6.1, "10*3/uL", "wbc", 6.1, {}),
    ("platelets-777-3", (LOINC, "777-3"), 250, "10*3/uL", "platelets", 250.0, {}),
    ("alt-1742-6", (LOINC, "1742-6"), 30, "U/L", "alt", 30.0, {}),
    ("ast-1920-8", (LOINC, "1920-8"), 25, "U/L", "ast", 25.0, {}),
    ("bilirubin-1975-2", (LOINC, "1975-2"), 0.6, "mg/dL", "bilirubin", 0.6, {}),
    ("nk-cells-9728-7", (LOINC, "9728-7"), 200, "/uL", "nk_cells", 200.0, {}),
    ("serum-hcg-21198-7", (LOINC, "21198-7"), 120, "[IU]/L", "hcg", 120.0, {"coded_value": "positive"}),
]


@pytest.mark.parametrize(
    "code,value,unit,concept,expected,extra", [r[1:] for r in OBSERVATION_CODES], ids=[r[0] for r in OBSERVATION_CODES]
)
def test_each_observation_code_files_under_its_concept(code, value, unit, concept, expected, extra):
    f = facts(obs("o1", *code, value, unit))
    m = only(f.results(concept))
    assert m.value == pytest.approx(expected, abs=1e-6)
    assert m.code == f"{code[0]}|{code[1]}"
    assert m.source == "Observation/o1"
    assert m.actionable
    for attr, wanted in extra.items():
        assert getattr(m, attr) == wanted


def test_cbc_panel_is_recorded_without_a_value_and_its_components_are_read():
    panel = obs(
        "cbc",
        LOINC,
        "58410-2",
        component=[
            {"code": cc(LOINC, "718-7"), "valueQuantity": qty(11.9, "g/dL", "g/dL")},
            {"code": cc(LOINC, "777-3"), "valueQuantity": qty(180, "10*3/uL", "10*3/uL")},
        ],
    )
    f = facts(panel)
    cbc = only(f.results("cbc_panel"))
    assert cbc.value is None and cbc.problem is None
    assert only(f.results("hemoglobin")).value == 11.9
    assert only(f.results("platelets")).source == "Observation/cbc#777-3"


def test_observation_with_an_unknown_code_is_not_ours_and_not_unusable():
    f = facts(obs("o1", LOINC, "2093-3", 190, "mg/dL"))
    assert f.labs == {} and f.unusable == ()


@pytest.mark.parametrize(
    "value,unit,problem",
    [
        (8, "mg/L", "unit mg/L cannot be converted to mg/dL"),
        (0.8, None, "no unit given"),
        ("abc", "mg/dL", "valueQuantity has no number"),
    ],
    ids=["unconvertible-unit", "no-unit", "not-a-number"],
)
def test_unusable_values_are_kept_with_the_reason(value, unit, problem):
    o = obs("o1", LOINC, "2160-0", when=WHEN, valueQuantity=qty(value, unit, unit))
    m = only(facts(o).results("creatinine"))
    assert m.value is None and not m.actionable
    assert problem in m.problem


@pytest.mark.parametrize(
    "extra,problem",
    [
        ({"valueQuantity": qty(2.0, "ng/mL", "ng/mL", comparator="<")}, "a limit, not a value"),
        ({"valueString": "haemolysed"}, "value is text"),
        (
            {"dataAbsentReason": cc("http://terminology.hl7.org/CodeSystem/data-absent-reason", "error")},
            "data absent: error",
        ),
        ({}, "no value"),
    ],
    ids=["comparator", "string", "data-absent", "no-value"],
)
def test_values_that_are_not_a_number(extra, problem):
    m = only(facts(obs("o1", LOINC, "77348-1", **extra)).results("tacrolimus"))
    assert m.value is None and problem in m.problem and not m.actionable


def test_reference_range_high_is_converted_to_the_canonical_unit():
    creat = obs(
        "c",
        LOINC,
        "14682-9",
        80,
        "umol/L",
        referenceRange=[{"low": qty(45, "umol/L")}, {"high": qty(88.4, "umol/L", "umol/L")}],
    )
    alt = obs("a", LOINC, "1742-6", 70, "U/L", referenceRange=[{"high": {"value": 35}}])
    f = facts(creat, alt)
    assert f.latest("creatinine").reference_high == pytest.approx(1.0)
    assert f.latest("alt").reference_high == 35.0  # no unit on the range: the value's own unit


# ---- statuses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,present,actionable",
    [
        ("final", True, True),
        ("amended", True, True),
        ("corrected", True, True),
        ("preliminary", True, False),
        ("registered", True, False),
        ("entered-in-error", False, False),
        ("cancelled", False, False),
    ],
)
def test_observation_status(status, present, actionable):
    f = facts(obs("o1", LOINC, "2823-3", 5.6, "mmol/L", status=status))
    assert bool(f.results("potassium")) is present
    assert (f.latest("potassium") is not None) is actionable
    if present:
        assert f.latest("potassium", actionable=False).status == status


# ---- time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,expected",
    [
        (
            {
                "effectiveDateTime": "2026-11-20T08:00:00Z",
                "effectivePeriod": {"end": "2026-11-21T08:00:00Z"},
                "issued": "2026-11-22T08:00:00Z",
            },
            datetime(2026, 11, 20, 8, tzinfo=UTC),
        ),
        (
            {
                "effectivePeriod": {"start": "2026-11-20T07:00:00Z", "end": "2026-11-21T08:00:00Z"},
                "issued": "2026-11-22T08:00:00Z",
            },
            datetime(2026, 11, 21, 8, tzinfo=UTC),
        ),
        (
            # A period with no end yet: the draw began at its start, which dates it better than the report.
            {"effectivePeriod": {"start": "2026-11-20T07:00:00Z"}, "issued": "2026-11-22T08:00:00.123Z"},
            datetime(2026, 11, 20, 7, tzinfo=UTC),
        ),
        (
            {"effectiveTiming": {"event": ["2026-11-20T07:00:00Z", "2026-11-21T07:00:00Z"]}},
            datetime(2026, 11, 21, 7, tzinfo=UTC),
        ),
        (
            {"effectiveInstant": "2026-11-20T07:00:00.5Z", "issued": "2026-11-22T08:00:00Z"},
            datetime(2026, 11, 20, 7, 0, 0, 500000, tzinfo=UTC),
        ),
        ({"issued": "2026-11-22T08:00:00+01:00"}, datetime(2026, 11, 22, 8, tzinfo=timezone(timedelta(hours=1)))),
        ({"effectiveDateTime": "2026-11-20"}, datetime(2026, 11, 20, tzinfo=UTC)),
        ({"effectiveDateTime": "2026-11"}, datetime(2026, 11, 1, tzinfo=UTC)),
        ({"effectiveDateTime": "2026"}, datetime(2026, 1, 1, tzinfo=UTC)),
        ({"effectiveDateTime": "2026-11-20T08:00:00"}, datetime(2026, 11, 20, 8, tzinfo=UTC)),
    ],
    ids=[
        "effectiveDateTime-first",
        "period-end-second",
        "period-start-before-issued",
        "timing-last-event",
        "instant",
        "issued-with-offset",
        "date-only",
        "year-month",
        "year",
        "no-zone-taken-as-utc",
    ],
)
def test_time_of_a_result(fields, expected):
    o = obs("o1", LOINC, "2160-0", 0.8, "mg/dL", when=None, **fields)
    m = only(facts(o).results("creatinine"))
    assert m.when == expected and m.when.tzinfo is not None


def test_result_without_any_time_is_kept_but_not_actionable():
    m = only(facts(obs("o1", LOINC, "2160-0", 0.8, "mg/dL", when=None)).results("creatinine"))
    assert m.when is None and not m.actionable and "no effective time" in m.problem


@pytest.mark.parametrize(
    "fields",
    [{"effectiveDateTime": "20/11/2026"}, {"effectiveDateTime": 20261120}, {"issued": "yesterday"}],
    ids=["dd/mm/yyyy", "number", "word"],
)
def test_unparsable_time_makes_the_observation_unusable(fields):
    f = facts(obs("o1", LOINC, "2160-0", 0.8, "mg/dL", when=None, **fields))
    assert f.results("creatinine") == ()
    assert "is not a FHIR date" in only(f.unusable).reason
    assert only(f.unusable).source == "Observation/o1"


def test_results_are_sorted_newest_first():
    f = facts(
        obs("old", LOINC, "2160-0", 0.7, "mg/dL", when="2026-11-01"),
        obs("new", LOINC, "2160-0", 0.9, "mg/dL", when="2026-11-22T10:00:00+09:00"),
        obs("mid", LOINC, "2160-0", 0.8, "mg/dL", when="2026-11-10"),
        obs("undated", LOINC, "2160-0", 0.8, "mg/dL", when=None),
    )
    assert [m.source for m in f.results("creatinine")] == [
        "Observation/new",
        "Observation/mid",
        "Observation/old",
        "Observation/undated",
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        (None, None),
        ("2026-11-20T23:30:00-05:00", datetime(2026, 11, 21, 4, 30, tzinfo=UTC)),
    ],
)
def test_parse_fhir_datetime_keeps_the_instant(text, expected):
    assert parse_fhir_datetime(text) == expected


# ---- Th1/Th2 ratio ---------------------------------------------------------------------------------


def th(oid: str, which: str, value: float, when: str = WHEN, **extra: Any) -> dict[str, Any]:
    code = "th1-cd4-ifng-pct" if which == "th1" else "th2-cd4-il4-pct"
    return obs(oid, LOCAL, code, value, "%", when=when, **extra)


def test_ratio_observation_with_th1_th2_components():
    ratio = obs(
        "r",
        LOCAL,
        "th1-th2-ratio",
        12.0,
        "{ratio}",
        component=[
            {"code": cc(LOCAL, "th1-cd4-ifng-pct"), "valueQuantity": qty(24.0, "%", "%")},
            {"code": cc(LOCAL, "th2-cd4-il4-pct"), "valueQuantity": qty(2.0, "%", "%")},
        ],
    )
    f = facts(ratio)
    assert only(f.results("th1_th2_ratio")).derived is False
    assert only(f.results("th1_pct")).source == "Observation/r#th1-cd4-ifng-pct"
    assert only(f.results("th2_pct")).value == 2.0


@pytest.mark.parametrize(
    "resources,expected",
    [
        ([th("a", "th1", 25.0, "2026-11-20T08:00:00Z"), th("b", "th2", 2.0, "2026-11-20T15:00:00Z")], 12.5),
        (
            [
                th("a", "th1", 30.0, "2026-11-20", specimen={"reference": "Specimen/s1"}),
                th("b", "th2", 2.5, "2026-11-21", specimen={"reference": "Specimen/s1"}),
            ],
            12.0,
        ),
        ([th("a", "th1", 25.0, "2026-11-20"), th("b", "th2", 2.0, "2026-11-21")], None),
        ([th("a", "th1", 25.0), th("b", "th2", 2.0), obs("r", LOCAL, "th1-th2-ratio", 12.4, "{ratio}")], "reported"),
    ],
    ids=["same-day", "same-specimen", "different-days-no-ratio", "ratio-reported-not-derived"],
)
def test_ratio_is_derived_from_th1_and_th2_when_none_is_reported(resources, expected):
    ratios = facts(*resources).results("th1_th2_ratio")
    if expected is None:
        assert ratios == ()
    elif expected == "reported":
        assert only(ratios).source == "Observation/r" and not only(ratios).derived
    else:
        derived = only(ratios)
        assert derived.value == pytest.approx(expected)
        assert derived.derived and derived.derived_from == ("Observation/a", "Observation/b")
        assert derived.actionable


def test_derived_ratio_from_a_preliminary_result_is_not_actionable():
    derived = only(facts(th("a", "th1", 25.0), th("b", "th2", 2.0, status="preliminary")).results("th1_th2_ratio"))
    assert derived.status == "preliminary" and not derived.actionable


# ---- blood pressure --------------------------------------------------------------------------------


def bp_component(code: str, value: float, unit: str = "mm[Hg]") -> dict[str, Any]:
    return {"code": cc(LOINC, code), "valueQuantity": qty(value, unit, unit if unit == "mm[Hg]" else None)}


def test_blood_pressure_panel_with_components():
    panel = obs("bp", LOINC, "85354-9", component=[bp_component("8480-6", 142), bp_component("8462-4", 91)])
    bp = only(facts(panel).blood_pressure)
    assert (bp.systolic, bp.diastolic, bp.source, bp.actionable) == (142.0, 91.0, "Observation/bp", True)


def test_separate_systolic_and_diastolic_at_the_same_time_are_paired():
    f = facts(
        obs("s", LOINC, "8480-6", 150, "mm[Hg]"),
        obs("d", LOINC, "8462-4", 95, "mmHg"),
        obs("s2", LOINC, "8480-6", 120, "mm[Hg]", when="2026-11-19T08:00:00Z"),
    )
    newest, older = f.blood_pressure
    assert (newest.systolic, newest.diastolic, newest.source) == (150.0, 95.0, "Observation/s,Observation/d")
    assert (older.systolic, older.diastolic) == (120.0, None)


def test_blood_pressure_in_an_unconvertible_unit_is_not_actionable():
    panel = obs(
        "bp", LOINC, "85354-9", component=[bp_component("8480-6", 19, "kPa"), bp_component("8462-4", 12, "kPa")]
    )
    bp = only(facts(panel).blood_pressure)
    assert bp.systolic is None and not bp.actionable and "kPa" in bp.problem


# ---- pregnancy -------------------------------------------------------------------------------------


def condition(
    cid: str,
    system: str,
    code: str,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Condition", "id": cid, "code": cc(system, code, "x")}
    if clinical:
        res["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)
    if verification:
        res["verificationStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
    res.update(extra)
    return res


def urine_hcg(oid: str, result: str, when: str = WHEN, status: str = "final") -> dict[str, Any]:
    code = "10828004" if result == "positive" else "260385009"
    return obs(oid, LOINC, "2106-3", when=when, status=status, valueCodeableConcept=cc(SCT, code))


def serum_hcg(oid: str, value: float, unit: str = "[IU]/L", when: str = WHEN, **q: Any) -> dict[str, Any]:
    return obs(oid, LOINC, "21198-7", when=when, valueQuantity=qty(value, unit, unit, **q))


PREGNANCY = [
    ("condition-snomed", [condition("c", SCT, "77386006")], True, "Condition 77386006"),
    ("condition-icd-z34", [condition("c", ICD, "Z34.01")], True, "Condition Z34.01"),
    ("condition-icd-o09", [condition("c", ICD, "O09.891")], True, "Condition"),
    (
        "condition-wins-over-negative-test",
        [condition("c", SCT, "77386006"), urine_hcg("u", "negative")],
        True,
        "Condition",
    ),
    ("resolved-condition-does-not-count", [condition("c", SCT, "77386006", "resolved")], None, "nothing on record"),
    ("urine-positive", [urine_hcg("u", "positive")], True, "urine hCG positive on 2026-11-20"),
    ("urine-negative", [urine_hcg("u", "negative")], False, "urine hCG negative on 2026-11-20"),
    ("serum-at-cut-off-25", [serum_hcg("s", 25)], True, "serum beta-hCG 25 [IU]/L positive"),
    ("serum-below-cut-off", [serum_hcg("s", 24.9)], False, "negative"),
    ("serum-mIU/mL", [serum_hcg("s", 300, "mIU/mL")], True, "positive"),
    ("serum-below-detection-limit", [serum_hcg("s", 5, comparator="<")], False, "negative"),
    ("newest-test-wins", [urine_hcg("old", "positive", "2026-10-01"), serum_hcg("new", 2)], False, "negative"),
    ("preliminary-test-ignored", [urine_hcg("u", "positive", status="preliminary")], None, "nothing on record"),
    ("nothing", [], None, "nothing on record"),
]


@pytest.mark.parametrize("resources,pregnant,evidence", [p[1:] for p in PREGNANCY], ids=[p[0] for p in PREGNANCY])
def test_pregnancy_status_and_its_evidence(resources, pregnant, evidence):
    status = facts(*resources).pregnancy
    assert status.pregnant is pregnant
    assert evidence in status.evidence


TODAY = date(2026, 11, 25)


def procedure_done(pid: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": "completed",
        "code": cc(LOCAL, "embryo-transfer"),
        "performedDateTime": when,
    }


# Today is 2026-11-25; the window is 60 days (codes.yaml pregnancy_test_max_age_days).
PREGNANCY_TODAY = [
    (
        "positive-from-2024-is-over-after-42-weeks",
        [urine_hcg("u", "positive", "2024-03-01")],
        None,
        "urine hCG positive on 2024-03-01: more than 42 weeks ago, no outcome recorded",
    ),
    (
        "serum-positive-from-2024-is-over-after-42-weeks",
        [serum_hcg("s", 900, when="2024-03-01")],
        None,
        "more than 42 weeks ago",
    ),
    ("positive-5-days-old", [urine_hcg("u", "positive", "2026-11-20")], True, "urine hCG positive"),
    ("positive-60-days-old-still-counts", [urine_hcg("u", "positive", "2026-09-26")], True, "positive"),
    (
        "a-pregnancy-lasts-past-the-negative-test-window",
        [urine_hcg("u", "positive", "2026-09-25")],
        True,
        "positive on 2026-09-25",
    ),
    (
        "negative-61-days-old-says-nothing-now",
        [urine_hcg("u", "negative", "2026-09-25")],
        None,
        "more than 60 days old",
    ),
    (
        "newer-negative-outranks-older-positive",
        [urine_hcg("old", "positive", "2026-10-20"), urine_hcg("new", "negative", "2026-11-20")],
        False,
        "negative on 2026-11-20",
    ),
    (
        "old-positive-ignored-newer-negative-decides",
        [urine_hcg("old", "positive", "2024-01-01"), serum_hcg("new", 3, when="2026-11-01")],
        False,
        "negative",
    ),
    (
        "positive-before-latest-past-transfer",
        [urine_hcg("u", "positive", "2026-10-20"), service_request("t", occurrenceDateTime="2026-11-10")],
        None,
        "no pregnancy test after the embryo transfer on 2026-11-10",
    ),
    (
        "positive-before-completed-transfer",
        [urine_hcg("u", "positive", "2026-10-20"), procedure_done("p", "2026-11-10")],
        None,
        "no pregnancy test after the embryo transfer on 2026-11-10",
    ),
    (
        "positive-on-the-transfer-day",
        [urine_hcg("u", "positive", "2026-11-10T07:00:00Z"), procedure_done("p", "2026-11-10")],
        None,
        "no pregnancy test after the embryo transfer",
    ),
    (
        "positive-after-the-transfer",
        [procedure_done("p", "2026-11-10"), urine_hcg("u", "positive", "2026-11-22")],
        True,
        "urine hCG positive on 2026-11-22",
    ),
    (
        "latest-past-transfer-is-the-anchor",
        [
            procedure_done("p1", "2026-10-01"),
            urine_hcg("u", "positive", "2026-10-15"),
            procedure_done("p2", "2026-11-10"),
        ],
        None,
        "transfer on 2026-11-10",
    ),
    (
        "a-planned-future-transfer-is-no-anchor",
        [urine_hcg("u", "positive", "2026-11-20"), service_request("t", occurrenceDateTime="2026-12-01")],
        True,
        "positive",
    ),
    (
        "condition-stays-authoritative",
        [condition("c", SCT, "77386006"), urine_hcg("u", "negative", "2024-03-01")],
        True,
        "Condition 77386006",
    ),
]


@pytest.mark.parametrize(
    "resources,pregnant,evidence", [p[1:] for p in PREGNANCY_TODAY], ids=[p[0] for p in PREGNANCY_TODAY]
)
def test_pregnancy_test_must_be_current(resources, pregnant, evidence):
    status = facts(*resources, today=TODAY).pregnancy
    assert status.pregnant is pregnant
    assert evidence in status.evidence


def test_without_today_the_age_of_a_pregnancy_test_is_not_checked():
    assert facts(urine_hcg("u", "positive", "2024-03-01")).pregnancy.pregnant is True


def test_pregnancy_test_window_is_configurable():
    knowledge = copy.deepcopy(KNOWLEDGE)
    knowledge["codes"]["pregnancy_test_max_age_days"]["value"] = 10
    old = urine_hcg("u", "negative", "2026-11-10")
    assert facts(old, today=TODAY).pregnancy.pregnant is False
    assert facts(old, today=TODAY, knowledge=knowledge).pregnancy.pregnant is None


def test_pregnancy_test_window_is_marked_a_site_default():
    entry = KNOWLEDGE["codes"]["pregnancy_test_max_age_days"]
    assert (entry["value"], entry["site_default"], entry["source"]) == (60, True, "site default")


def test_serum_hcg_cut_off_is_configurable():
    knowledge = copy.deepcopy(KNOWLEDGE)
    knowledge["codes"]["hcg_positive_iu_per_l"] = 5
    assert facts(serum_hcg("s", 10), knowledge=knowledge).pregnancy.pregnant is True


def test_urine_test_with_an_unknown_coded_value_is_not_actionable():
    o = obs("u", LOINC, "2106-3", valueCodeableConcept=cc(SCT, "82334004", "Indeterminate"))
    m = only(facts(o).results("pregnancy_test"))
    assert m.coded_value is None and not m.actionable and "Indeterminate" in m.problem


# ---- conditions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "clinical,verification,counted",
    [
        ("active", "confirmed", True),
        ("recurrence", "confirmed", True),
        ("relapse", "confirmed", True),
        ("active", "provisional", True),
        ("active", "unconfirmed", True),
        ("active", None, True),
        ("inactive", "confirmed", False),
        ("remission", "confirmed", False),
        ("resolved", "confirmed", False),
        ("active", "refuted", False),
        ("active", "entered-in-error", False),
    ],
)
def test_condition_clinical_and_verification_status(clinical, verification, counted):
    f = facts(condition("c", SCT, "102878001", clinical, verification))
    assert f.has_condition("recurrent_pregnancy_loss") is counted


@pytest.mark.parametrize(
    "system,code,concept",
    [
        (LOCAL, "recurrent-implantation-failure", "recurrent_implantation_failure"),
        (SCT, "102878001", "recurrent_pregnancy_loss"),
        (ICD, "N96", "recurrent_pregnancy_loss"),
        (ICD, "O26.21", "recurrent_pregnancy_loss"),
        (ICD, "O2623", "recurrent_pregnancy_loss"),
        (SCT, "77386006", "pregnancy"),
        (ICD, "Z33.1", "pregnancy"),
        (SCT, "85828009", "autoimmune_disease"),
    ],
    ids=[
        "rif-local",
        "rpl-snomed",
        "rpl-icd-n96",
        "rpl-icd-o26.2x",
        "rpl-icd-without-dot",
        "pregnancy-snomed",
        "pregnancy-icd-z33.1",
        "autoimmune-snomed",
    ],
)
def test_condition_codes(system, code, concept):
    fact = only(facts(condition("c", system, code)).conditions)
    assert fact.concept == concept and fact.source == "Condition/c"


def test_condition_status_as_a_bare_string_is_read_leniently():
    f = facts(condition("c", SCT, "85828009", None, None, clinicalStatus="active"))
    assert f.has_condition("autoimmune_disease")


def test_condition_without_clinical_status_is_reported_unusable():
    f = facts(condition("c", SCT, "102878001", None))
    assert f.conditions == () and "clinicalStatus" in only(f.unusable).reason


def test_unrelated_condition_is_ignored():
    f = facts(condition("c", SCT, "38341003"))
    assert f.conditions == () and f.unusable == ()


# ---- embryo transfer -------------------------------------------------------------------------------

TRANSFERS = [
    (
        "service-request-occurrenceDateTime",
        service_request("t", occurrenceDateTime="2026-11-27T10:00:00Z"),
        "ServiceRequest/t",
        datetime(2026, 11, 27, 10, tzinfo=UTC),
        False,
    ),
    (
        "service-request-occurrencePeriod",
        service_request("t", occurrencePeriod={"start": "2026-11-28"}),
        "ServiceRequest/t",
        datetime(2026, 11, 28, tzinfo=UTC),
        False,
    ),
    (
        "service-request-draft",
        service_request("t", status="draft", occurrenceDateTime="2026-11-28"),
        "ServiceRequest/t",
        datetime(2026, 11, 28, tzinfo=UTC),
        False,
    ),
    (
        "service-request-euploid",
        service_request("t", "euploid-blastocyst-transfer", occurrenceDateTime="2026-11-28"),
        "ServiceRequest/t",
        datetime(2026, 11, 28, tzinfo=UTC),
        True,
    ),
    (
        "procedure-preparation",
        {
            "resourceType": "Procedure",
            "id": "p",
            "status": "preparation",
            "code": cc(LOCAL, "embryo-transfer"),
            "performedDateTime": "2026-11-29",
        },
        "Procedure/p",
        datetime(2026, 11, 29, tzinfo=UTC),
        False,
    ),
    (
        "procedure-in-progress",
        {
            "resourceType": "Procedure",
            "id": "p",
            "status": "in-progress",
            "code": cc(LOCAL, "euploid-blastocyst-transfer"),
            "performedDateTime": "2026-11-25T08:00:00Z",
        },
        "Procedure/p",
        datetime(2026, 11, 25, 8, tzinfo=UTC),
        True,
    ),
    (
        "appointment-serviceType-list",
        {
            "resourceType": "Appointment",
            "id": "a",
            "status": "booked",
            "serviceType": [cc(LOCAL, "embryo-transfer")],
            "start": "2026-11-30T09:00:00+09:00",
        },
        "Appointment/a",
        datetime(2026, 11, 30, tzinfo=UTC),
        False,
    ),
    (
        "appointment-serviceType-object",
        {
            "resourceType": "Appointment",
            "id": "a",
            "status": "booked",
            "serviceType": cc(LOCAL, "euploid-blastocyst-transfer"),
            "start": "2026-12-01T00:00:00Z",
        },
        "Appointment/a",
        datetime(2026, 12, 1, tzinfo=UTC),
        True,
    ),
]


@pytest.mark.parametrize("resource,source,when,euploid", [t[1:] for t in TRANSFERS], ids=[t[0] for t in TRANSFERS])
def test_transfer_plan_from_each_resource_type(resource, source, when, euploid):
    plan = only(facts(resource).transfers)
    assert (plan.source, plan.when, plan.euploid, plan.from_draft_orders) == (source, when, euploid, False)


def test_transfer_plan_from_draft_orders():
    draft = service_request("t", status="draft", occurrenceDateTime="2026-11-28")
    plan = only(facts(drafts=[draft]).transfers)
    assert plan.from_draft_orders and plan.status == "draft"


@pytest.mark.parametrize(
    "resource",
    [
        service_request("t", status="completed", occurrenceDateTime="2026-11-28"),
        service_request("t", status="revoked", occurrenceDateTime="2026-11-28"),
        {
            "resourceType": "Procedure",
            "id": "p",
            "status": "completed",
            "code": cc(LOCAL, "embryo-transfer"),
            "performedDateTime": "2026-11-01",
        },
        {
            "resourceType": "Appointment",
            "id": "a",
            "status": "cancelled",
            "serviceType": [cc(LOCAL, "embryo-transfer")],
            "start": "2026-11-30",
        },
        service_request("t", "blood-test", occurrenceDateTime="2026-11-28"),
    ],
    ids=["request-completed", "request-revoked", "procedure-completed", "appointment-cancelled", "other-code"],
)
def test_transfers_that_do_not_count(resource):
    assert facts(resource).transfers == ()


def test_all_transfers_are_kept_newest_first():
    f = facts(
        service_request("a", occurrenceDateTime="2026-11-28"),
        service_request("b", occurrenceDateTime="2026-12-20"),
        service_request("c", occurrenceDateTime="2026-11-10"),
    )
    assert [t.source for t in f.transfers] == ["ServiceRequest/b", "ServiceRequest/a", "ServiceRequest/c"]


def test_transfer_with_an_unparsable_date_is_unusable():
    f = facts(service_request("t", occurrenceDateTime="next Tuesday"))
    assert f.transfers == () and "occurrenceDateTime" in only(f.unusable).reason


# ---- medications: recognition ----------------------------------------------------------------------


def rx(code: str, display: str | None = None) -> dict[str, Any]:
    return cc(RX, code, display)


RECOGNITION = [
    ("rxnorm-ingredient", rx("42316", "tacrolimus"), ("tacrolimus",), "rxnorm-ingredient", "RxNorm 42316"),
    ("rxnorm-ingredient-fluconazole", rx("4450"), ("fluconazole",), "rxnorm-ingredient", "RxNorm 4450"),
    ("rxnorm-product-198377", rx("198377"), ("tacrolimus",), "rxnorm-product", "RxNorm 198377"),
    ("rxnorm-product-extended-release", rx("1431971"), ("tacrolimus",), "rxnorm-product", "RxNorm 1431971"),
    ("text", {"text": "Tacrolimus 1 mg capsule"}, ("tacrolimus",), "text", "text: tacrolimus"),
    (
        "coding-display",
        cc("http://example.org/local-formulary", "X1", "FLUCONAZOLE 150MG CAP"),
        ("fluconazole",),
        "text",
        "text: fluconazole",
    ),
    ("brand-name", {"text": "Prograf 0.5mg"}, ("tacrolimus",), "text", "text: prograf"),
    ("whole-word-only", {"text": "Protacrolimusol cream"}, (), None, None),
    (
        "co-trimoxazole-text",
        {"text": "Co-trimoxazole 960 mg tablet"},
        ("sulfamethoxazole", "trimethoprim"),
        "text",
        "text: co-trimoxazole",
    ),
    (
        "combination-rxnorm-text",
        {"text": "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"},
        ("sulfamethoxazole", "trimethoprim"),
        "text",
        None,
    ),
    (
        "combination-ingredient-codes",
        {"coding": [{"system": RX, "code": "10180"}, {"system": RX, "code": "10829"}]},
        ("sulfamethoxazole", "trimethoprim"),
        "rxnorm-ingredient",
        "RxNorm 10180, 10829",
    ),
    ("longest-name-wins", {"text": "Mycophenolate mofetil 500 mg"}, ("mycophenolate_mofetil",), "text", None),
    ("mycophenolate-sodium", {"text": "mycophenolate sodium 360 mg"}, ("mycophenolic_acid",), "text", None),
    ("st-johns-wort-curly-apostrophe", {"text": "St John\u2019s Wort extract"}, ("st_johns_wort",), "text", None),
    ("unrecognised", {"text": "Folic acid 5 mg"}, (), None, None),
]


@pytest.mark.parametrize(
    "medication,ingredients,by,matched", [r[1:] for r in RECOGNITION], ids=[r[0] for r in RECOGNITION]
)
def test_medication_recognition(medication, ingredients, by, matched):
    m = only(facts(med_request("m", medication)).medications)
    assert m.ingredients == ingredients
    assert m.recognised_by == by
    if matched:
        assert m.matched == matched


def test_ingredient_code_is_tried_before_product_and_product_still_gives_strength():
    m = only(
        facts(
            med_request("m", {"coding": [{"system": RX, "code": "198377"}, {"system": RX, "code": "42316"}]})
        ).medications
    )
    assert (m.recognised_by, m.strength_mg, m.release) == ("rxnorm-ingredient", 1.0, "immediate")


@pytest.mark.parametrize(
    "code,strength,release",
    [
        ("198377", 1.0, "immediate"),
        ("313190", 0.5, "immediate"),
        ("198378", 5.0, "immediate"),
        ("108513", 1.0, "immediate"),  # Tacrolimus 1 MG Oral Capsule [Prograf], as the public sandbox sends it
        ("261134", 0.5, "immediate"),
        ("108514", 5.0, "immediate"),
        ("1235243", 1.0, "immediate"),  # Hecoria
        ("1431971", 0.5, "extended"),
        ("1431980", 1.0, "extended"),
        ("1431985", 5.0, "extended"),
        ("1431977", 0.5, "extended"),  # Astagraf XL
        ("1431982", 1.0, "extended"),
        ("1431987", 5.0, "extended"),
        ("1664456", 0.75, "extended"),  # Envarsus XR tablets
        ("1664463", 1.0, "extended"),
        ("1664440", 4.0, "extended"),
    ],
)
def test_tacrolimus_product_table(code, strength, release):
    m = only(facts(med_request("m", rx(code))).medications)
    assert (m.ingredients, m.strength_mg, m.release) == (("tacrolimus",), strength, release)


# Text names of other interacting drugs map to the codes.yaml key the interaction table uses.
CLASS_NAMES = [  # (id, medication text, drug key)
    ("lisinopril-is-an-ace-inhibitor", "lisinopril 10 mg tablet", "ace_inhibitor"),
    ("losartan-is-an-arb", "Losartan potassium 50 mg tablet", "angiotensin_receptor_blocker"),
    ("gentamicin-is-an-aminoglycoside", "gentamicin 80 mg/2 mL injection", "aminoglycoside"),
    ("diclofenac-is-an-nsaid", "Diclofenac sodium 50 mg tablet", "other_nsaid"),
    ("eplerenone", "eplerenone 25 mg tablet", "eplerenone"),
    ("darunavir-is-a-protease-inhibitor", "darunavir 800 mg tablet", "other_protease_inhibitor"),
    ("dapsone", "Dapsone 100 mg tablet", "dapsone"),
    ("atovaquone", "atovaquone 750 mg/5 mL suspension", "atovaquone"),
    ("pentamidine", "pentamidine 300 mg inhalation", "pentamidine"),
]


@pytest.mark.parametrize("text,key", [r[1:] for r in CLASS_NAMES], ids=[r[0] for r in CLASS_NAMES])
def test_interacting_drug_names_map_to_their_codes_yaml_key(text, key):
    m = only(facts(med_request("m", {"text": text})).medications)
    assert (m.ingredients, m.recognised_by) == ((key,), "text")


# An order without a product code still says its release when it names an extended-release brand.
RELEASE_BY_NAME = [  # (id, medicationCodeableConcept, expected release)
    ("envarsus-xr-text-extended", {"text": "Envarsus XR 1 mg tablet"}, "extended"),
    ("astagraf-xl-text-extended", {"text": "Astagraf XL 0.5 mg capsule"}, "extended"),
    ("advagraf-text-extended", {"text": "ADVAGRAF 1mg prolonged-release capsule"}, "extended"),
    ("ingredient-code-with-envarsus-text-extended", cc(RX, "42316", "tacrolimus", text="Envarsus XR 4 mg"), "extended"),
    ("local-code-with-envarsus-display-extended", cc("urn:site:formulary", "T9", "ENVARSUS XR 0.75MG TAB"), "extended"),
    ("plain-tacrolimus-text-unknown", {"text": "tacrolimus 1 mg capsule"}, None),
    ("prograf-text-not-claimed", {"text": "Prograf 1 mg capsule"}, None),
    ("immediate-product-code-wins-over-brand-text", cc(RX, "198377", text="Envarsus XR"), "immediate"),
]


@pytest.mark.parametrize("medication,release", [r[1:] for r in RELEASE_BY_NAME], ids=[r[0] for r in RELEASE_BY_NAME])
def test_tacrolimus_release_from_brand_name(medication, release):
    m = only(facts(med_request("m", medication)).medications)
    assert m.ingredients == ("tacrolimus",)
    assert m.release == release


def test_release_name_only_applies_to_its_ingredient():
    """A brand word in the text of another drug says nothing about that drug's release."""
    knowledge = copy.deepcopy(KNOWLEDGE)
    knowledge["codes"]["release_names"].append(
        {"ingredient": "tacrolimus", "release": "extended", "names": ["retard"], "source": "test"}
    )
    m = only(facts(med_request("m", {"text": "nifedipine retard 20 mg"}), knowledge=knowledge).medications)
    assert (m.ingredients, m.release) == (("nifedipine",), None)


def test_combination_product_code_yields_every_ingredient():
    knowledge = copy.deepcopy(KNOWLEDGE)
    knowledge["codes"]["products"].append(
        {
            "rxnorm": "999001",
            "ingredients": ["sulfamethoxazole", "trimethoprim"],
            "display": "test combination product",
            "source": "test",
        }
    )
    m = only(facts(med_request("m", rx("999001")), knowledge=knowledge).medications)
    assert m.ingredients == ("sulfamethoxazole", "trimethoprim") and m.recognised_by == "rxnorm-product"


def medication(mid: str, code: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Medication", "id": mid, "code": code}


def test_medication_reference_to_a_contained_medication():
    order = med_request("m", contained=[medication("med1", rx("198377"))], medicationReference={"reference": "#med1"})
    m = only(facts(order).medications)
    assert (m.ingredients, m.recognised_by, m.strength_mg) == (("tacrolimus",), "rxnorm-product", 1.0)


@pytest.mark.parametrize("reference", ["Medication/med9", "https://ehr.example.org/fhir/Medication/med9"])
def test_medication_reference_to_a_medication_in_the_data(reference):
    order = med_request("m", medicationReference={"reference": reference})
    f = build_facts(
        request(),
        {"medicationRequests": [order], "medications": [medication("med9", {"text": "Voriconazole 200 mg tablet"})]},
        KNOWLEDGE,
    )
    m = only(f.medications)
    assert (m.ingredients, m.recognised_by, m.display) == (("voriconazole",), "text", "Voriconazole 200 mg tablet")


def test_medication_ingredients_listed_on_the_medication_resource_are_recognised():
    med = {
        "resourceType": "Medication",
        "id": "c",
        "code": {"text": "Compounded capsule"},
        "ingredient": [{"itemCodeableConcept": rx("42316")}],
    }
    order = med_request("m", contained=[med], medicationReference={"reference": "#c"})
    assert only(facts(order).medications).ingredients == ("tacrolimus",)


def test_unresolved_reference_falls_back_to_its_display_text():
    order = med_request("m", medicationReference={"reference": "Medication/gone", "display": "Clarithromycin 500 mg"})
    m = only(facts(order).medications)
    assert (m.ingredients, m.recognised_by) == (("clarithromycin",), "text")


@pytest.mark.parametrize(
    "order,reason",
    [
        (med_request("m", medicationReference={"reference": "Medication/gone"}), "could not be resolved"),
        (med_request("m"), "no medication stated"),
    ],
    ids=["unresolved-reference", "no-medication"],
)
def test_medication_that_cannot_be_named_is_unusable(order, reason):
    f = facts(order)
    assert f.medications == () and reason in only(f.unusable).reason


# ---- medications: status, drafts, selections -------------------------------------------------------


@pytest.mark.parametrize(
    "resource_type,status,from_drafts,counted",
    [
        ("MedicationRequest", "active", False, True),
        ("MedicationRequest", "on-hold", False, True),
        ("MedicationRequest", "draft", False, False),
        ("MedicationRequest", "completed", False, False),
        ("MedicationRequest", "stopped", False, False),
        ("MedicationRequest", "cancelled", False, False),
        ("MedicationRequest", "draft", True, True),
        ("MedicationRequest", "active", True, True),
        ("MedicationRequest", "cancelled", True, False),
        ("MedicationStatement", "active", False, True),
        ("MedicationStatement", "completed", False, False),
        ("MedicationStatement", "intended", False, False),
    ],
)
def test_medication_status(resource_type, status, from_drafts, counted):
    res = med_request("m", rx("42316"), status=status)
    res["resourceType"] = resource_type
    f = facts(drafts=[res]) if from_drafts else facts(res)
    assert len(f.medications) == int(counted)
    if counted:
        assert f.medications[0].is_draft is from_drafts


def test_selections_mark_the_selected_draft_and_drafts_win_over_stored_copies():
    d1 = med_request("d1", rx("4450"), status="draft")
    d2 = med_request("d2", rx("42316"), status="draft")
    stored = med_request("d1", rx("21212"), status="active")
    f = facts(stored, drafts=[d1, d2], selections=("MedicationRequest/d1",))
    by_source = {m.source: m for m in f.medications}
    assert by_source["MedicationRequest/d1"].is_selected and by_source["MedicationRequest/d1"].has("fluconazole")
    assert not by_source["MedicationRequest/d2"].is_selected and by_source["MedicationRequest/d2"].is_draft
    assert len(f.medications) == 2
    assert f.selections == ("MedicationRequest/d1",)


def test_draft_without_status_from_the_sandbox_is_a_draft():
    d = med_request("d", {"text": "tacrolimus"})
    del d["status"]
    m = only(facts(drafts=[d]).medications)
    assert m.status == "draft" and m.daily_dose_mg is None and m.dose_problem == "no dosage instruction"


# ---- medications: daily dose -----------------------------------------------------------------------

TAC_1MG = rx("198377")
TAC_05MG = rx("313190")
DAILY_DOSE = [
    ("mg-once-daily", TAC_1MG, [dosage(2, "mg")], 2.0, 1.0),
    ("mg-twice-daily", rx("42316"), [dosage(1.5, "mg", frequency=2)], 3.0, 2.0),
    ("pill-times-strength", TAC_1MG, [dosage(2, "{pill}")], 2.0, 1.0),
    ("capsule-0.5mg-twice-daily", TAC_05MG, [dosage(1, "capsule", "{capsule}", frequency=2)], 1.0, 2.0),
    ("count-unit-1-5mg", rx("198378"), [dosage(1, "1")], 5.0, 1.0),
    ("tbl", TAC_1MG, [dosage(1, "{tbl}")], 1.0, 1.0),
    ("micrograms", rx("42316"), [dosage(500, "ug")], 0.5, 1.0),
    ("every-12-hours", rx("42316"), [dosage(1, "mg", frequency=1, period=12, period_unit="h")], 2.0, 2.0),
    ("weekly", rx("4450"), [dosage(150, "mg", frequency=1, period=1, period_unit="wk")], 150 / 7, 1 / 7),
    ("period-without-frequency", rx("42316"), [dosage(3, "mg", frequency=None)], 3.0, 1.0),
    (
        "timing-code-BID",
        rx("42316"),
        [{"timing": {"code": {"coding": [{"code": "BID"}]}}, "doseAndRate": [{"doseQuantity": qty(1, "mg", "mg")}]}],
        2.0,
        2.0,
    ),
    (
        "time-of-day",
        rx("42316"),
        [
            {
                "timing": {"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}},
                "doseAndRate": [{"doseQuantity": qty(1, "mg", "mg")}],
            }
        ],
        2.0,
        2.0,
    ),
    (
        "doseAndRate-as-object",
        TAC_1MG,
        [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": {"doseQuantity": qty(3, "{pill}", "{pill}")},
            }
        ],
        3.0,
        1.0,
    ),
    ("code-and-unit-agree-in-other-spellings", rx("42316"), [dosage(1, "milligram", "mg")], 1.0, 1.0),
    ("count-code-and-count-unit", TAC_05MG, [dosage(2, "tablet", "{tbl}")], 1.0, 1.0),
    (
        "two-instructions-same-boundsPeriod-summed",
        rx("42316"),
        [
            with_repeat(dosage(1, "mg"), boundsPeriod={"start": "2026-11-23", "end": "2026-12-08"}),
            with_repeat(dosage(0.5, "mg"), boundsPeriod={"start": "2026-11-23", "end": "2026-12-08"}),
        ],
        1.5,
        2.0,
    ),
    ("tacrolimus-ceiling-not-applied-to-fluconazole", rx("4450"), [dosage(400, "mg")], 400.0, 1.0),
    ("tacrolimus-at-the-50-mg-plausibility-limit", rx("42316"), [dosage(25, "mg", frequency=2)], 50.0, 2.0),
    (
        "two-instructions-summed",
        rx("42316"),
        [
            {"timing": {"repeat": {"when": ["MORN"]}}, "doseAndRate": [{"doseQuantity": qty(1, "mg", "mg")}]},
            {"timing": {"repeat": {"when": ["EVE"]}}, "doseAndRate": [{"doseQuantity": qty(0.5, "mg", "mg")}]},
        ],
        1.5,
        2.0,
    ),
]


@pytest.mark.parametrize("drug,dosages,daily,per_day", [d[1:] for d in DAILY_DOSE], ids=[d[0] for d in DAILY_DOSE])
def test_daily_dose(drug, dosages, daily, per_day):
    m = only(facts(med_request("m", drug, dosage=dosages)).medications)
    assert m.dose_problem is None
    assert m.daily_dose_mg == pytest.approx(daily)
    assert m.doses_per_day == pytest.approx(per_day)


TAPER = [
    with_repeat(dosage(4, "mg"), boundsPeriod={"start": "2026-11-23", "end": "2026-11-29"}),
    with_repeat(dosage(2, "mg"), boundsPeriod={"start": "2026-11-30", "end": "2026-12-06"}),
]

UNKNOWN_DOSE = [
    ("no-dosage", TAC_1MG, None, "no dosage instruction"),
    (
        "pill-strength-unknown-text",
        {"text": "tacrolimus capsules"},
        [dosage(1, "{pill}")],
        "strength per unit is not known for the order",
    ),
    (
        "pill-strength-open-product",
        rx("240741"),  # clarithromycin oral suspension: a product whose strength per unit is not a mass
        [dosage(1, "{capsule}")],
        "strength per unit is not known for RxNorm 240741",
    ),
    ("no-timing", TAC_1MG, [{"doseAndRate": [{"doseQuantity": qty(1, "mg", "mg")}]}], "no timing"),
    (
        "frequency-without-period",
        TAC_1MG,
        [dosage(1, "mg", frequency=2, period=None, period_unit=None)],
        "frequency without a period",
    ),
    ("monthly", TAC_1MG, [dosage(1, "mg", period_unit="mo")], "no fixed number of doses per day"),
    ("invalid-frequency", TAC_1MG, [dosage(1, "mg", frequency="twice")], "timing.repeat.frequency is not valid FHIR"),
    ("volume-unit", TAC_1MG, [dosage(1, "mL")], "neither a mass nor a count"),
    (
        "no-dose-unit",
        TAC_1MG,
        [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1}}],
            }
        ],
        "dose has no unit",
    ),
    (
        "dose-range",
        TAC_1MG,
        [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseRange": {"low": qty(1, "mg"), "high": qty(2, "mg")}}],
            }
        ],
        "dose given as a range",
    ),
    ("text-only", TAC_1MG, [{"text": "1 mg after dinner"}], "dose given only as text"),
    ("as-needed", TAC_1MG, [dict(dosage(1, "mg"), asNeededBoolean=True)], "taken as needed"),
    (
        "sequential-instructions",
        TAC_1MG,
        [dict(dosage(2, "mg"), sequence=1), dict(dosage(1, "mg"), sequence=2)],
        "in sequence",
    ),
    (
        "one-of-two-unknown",
        TAC_1MG,
        [dosage(1, "mg"), {"text": "extra when needed"}],
        "dosage instruction 2: dose given only as text",
    ),
    (
        "frequencyMax-1-to-2-a-day",
        TAC_1MG,
        [with_repeat(dosage(1, "mg"), frequencyMax=2)],
        "timing gives a range (frequencyMax)",
    ),
    (
        "periodMax-every-8-to-12-hours",
        TAC_1MG,
        [with_repeat(dosage(1, "mg", period=8, period_unit="h"), periodMax=12)],
        "timing gives a range (periodMax)",
    ),
    ("code-mg-but-unit-tablet", rx("198378"), [dosage(0.5, "tablet", "mg")], "dose unit ambiguous"),
    ("code-count-but-unit-mg", rx("198378"), [dosage(1, "mg", "{tbl}")], "dose unit ambiguous"),
    ("code-mg-but-unit-g", TAC_1MG, [dosage(1, "g", "mg")], "dose unit ambiguous"),
    ("back-to-back-periods-are-a-taper", TAC_1MG, TAPER, "cover different periods (a taper"),
    (
        "bounds-on-one-instruction-only",
        TAC_1MG,
        [with_repeat(dosage(1, "mg"), boundsPeriod={"start": "2026-11-23"}), dosage(1, "mg")],
        "cover different periods",
    ),
    ("tacrolimus-above-50-mg-a-day", TAC_1MG, [dosage(51, "mg")], "implausible dose (51 mg/day is above 50"),
    ("tacrolimus-negative-dose", TAC_1MG, [dosage(-2, "mg")], "not a positive amount"),
    ("tacrolimus-pills-above-50-mg-a-day", rx("198378"), [dosage(30, "{pill}")], "implausible dose (150 mg/day"),
    ("total-not-finite", rx("198378"), [dosage(1e308, "{pill}", frequency=10)], "implausible dose (the total is not"),
    (
        "non-finite-for-any-drug",
        rx("4450"),
        [dosage(1e308, "mg", frequency=2, period=1, period_unit="h")],
        "implausible dose",
    ),
]


@pytest.mark.parametrize("drug,dosages,problem", [u[1:] for u in UNKNOWN_DOSE], ids=[u[0] for u in UNKNOWN_DOSE])
def test_unknown_daily_dose_says_why(drug, dosages, problem):
    m = only(facts(med_request("m", drug, dosage=dosages)).medications)
    assert m.daily_dose_mg is None
    assert problem in m.dose_problem


# ---- medications: start, end, duration -------------------------------------------------------------


def bounded(start: str | None = None, end: str | None = None, **repeat: Any) -> list[dict[str, Any]]:
    d = dosage(1, "mg")
    if start or end:
        d["timing"]["repeat"]["boundsPeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    d["timing"]["repeat"].update(repeat)
    return [d]


@pytest.mark.parametrize(
    "order,start,start_from,end,duration",
    [
        (
            med_request("m", TAC_1MG, dosage=bounded("2026-11-23", "2026-12-08"), authoredOn="2026-11-20"),
            date(2026, 11, 23),
            "boundsPeriod",
            date(2026, 12, 8),
            None,
        ),
        (
            med_request("m", TAC_1MG, dosage=bounded(), authoredOn="2026-11-20T15:00:00+09:00"),
            date(2026, 11, 20),
            "authoredOn",
            None,
            None,
        ),
        (
            med_request("m", TAC_1MG, dosage=bounded(boundsDuration={"value": 16, "unit": "days", "code": "d"})),
            None,
            None,
            None,
            16,
        ),
        (
            med_request(
                "m", TAC_1MG, dosage=bounded(), dispenseRequest={"expectedSupplyDuration": {"value": 2, "unit": "wk"}}
            ),
            None,
            None,
            None,
            14,
        ),
    ],
    ids=["boundsPeriod-before-authoredOn", "authoredOn", "boundsDuration", "expectedSupplyDuration"],
)
def test_start_end_and_duration(order, start, start_from, end, duration):
    m = only(facts(order).medications)
    assert (m.start, m.start_from, m.end, m.duration_days) == (start, start_from, end, duration)


@pytest.mark.parametrize(
    "repeat,label",
    [
        ({"boundsDuration": {"value": 3651, "unit": "days", "code": "d"}}, "boundsDuration"),
        ({"boundsDuration": {"value": 1e308, "unit": "wk", "code": "wk"}}, "boundsDuration"),
        ({"boundsDuration": {"value": -3, "unit": "days", "code": "d"}}, "boundsDuration"),
    ],
    ids=["3651-days", "1e308-weeks-would-overflow", "negative"],
)
def test_an_unusable_duration_is_reported_and_the_medication_still_counts(repeat, label):
    f = facts(med_request("m", TAC_1MG, dosage=bounded(**repeat), authoredOn="2026-11-20"))
    m = only(f.medications)
    assert (m.duration_days, m.daily_dose_mg) == (None, 1.0)
    assert only(f.unusable).reason.startswith(label) and "duration ignored" in only(f.unusable).reason


def test_an_overlong_supply_duration_is_reported():
    f = facts(
        med_request(
            "m", TAC_1MG, dosage=bounded(), dispenseRequest={"expectedSupplyDuration": {"value": 600, "unit": "wk"}}
        )
    )
    assert only(f.medications).duration_days is None
    assert "expectedSupplyDuration" in only(f.unusable).reason


def test_a_duration_of_exactly_ten_years_is_kept():
    f = facts(med_request("m", TAC_1MG, dosage=bounded(boundsDuration={"value": 3650, "code": "d"})))
    assert (only(f.medications).duration_days, f.unusable) == (3650, ())


@pytest.mark.parametrize("text", ["9999-12-31", "9001-01-01T00:00:00Z", "0001-01-01", "0999-12-31"])
def test_placeholder_dates_are_not_dates(text):
    with pytest.raises(ValueError, match="outside the years"):
        parse_fhir_datetime(text)


def test_year_9000_is_still_a_date():
    assert parse_fhir_datetime("9000-12-31") == datetime(9000, 12, 31, tzinfo=UTC)


PLACEHOLDER_DATES = [
    ("transfer-9999", service_request("t", occurrenceDateTime="9999-12-31"), "occurrenceDateTime"),
    (
        "observation-9999",
        obs("o", LOINC, "2160-0", 0.8, "mg/dL", when="9999-12-31T23:59:59-05:00"),
        "effectiveDateTime",
    ),
    ("medication-start-9999", med_request("m", TAC_1MG, dosage=bounded("9999-12-31")), "boundsPeriod.start"),
    ("medication-end-9999", med_request("m", TAC_1MG, dosage=bounded("2026-11-23", "9999-12-31")), "boundsPeriod.end"),
]


@pytest.mark.parametrize("resource,label", [p[1:] for p in PLACEHOLDER_DATES], ids=[p[0] for p in PLACEHOLDER_DATES])
def test_a_date_beyond_year_9000_is_reported_unusable(resource, label):
    f = facts(resource)
    reason = only(f.unusable).reason
    assert reason.startswith(label) and "outside the years" in reason
    assert f.transfers == () and f.results("creatinine") == ()
    assert all(m.start is None or m.start.year < 9000 for m in f.medications)
    assert all(m.end is None for m in f.medications)


def test_placeholder_dates_and_durations_do_not_break_the_rules():
    """A draft starting 9999-12-31 for 10^308 weeks, with a transfer on 9999-12-31: cards, no OverflowError."""
    from cards.evaluate import evaluate

    draft = med_request(
        "d",
        TAC_1MG,
        status="draft",
        dosage=bounded("9999-12-31", boundsDuration={"value": 1e308, "unit": "wk", "code": "wk"}),
    )
    f = facts(
        service_request("t", occurrenceDateTime="9999-12-31"),
        urine_hcg("u", "positive", "9999-12-31"),
        drafts=[draft],
        selections=("MedicationRequest/d",),
        today=TODAY,
    )
    assert len(f.unusable) == 4
    assert isinstance(evaluate(f, TODAY, KNOWLEDGE), list)


def test_medication_statement_start_from_its_effective_period():
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s",
        "status": "active",
        "medicationCodeableConcept": rx("4450"),
        "effectivePeriod": {"start": "2026-11-18"},
        "dosage": [dosage(150, "mg")],
    }
    m = only(facts(statement).medications)
    assert (m.start, m.start_from, m.daily_dose_mg) == (date(2026, 11, 18), "effective", 150.0)


def test_bad_start_date_is_reported_and_the_medication_still_counts():
    order = med_request("m", rx("4450"), dosage=bounded("soon"), authoredOn="2026-11-20")
    f = facts(order)
    m = only(f.medications)
    assert (m.start, m.start_from) == (date(2026, 11, 20), "authoredOn")
    assert "boundsPeriod.start" in only(f.unusable).reason


# ---- lenient parsing, robustness -------------------------------------------------------------------


def test_category_as_an_object_and_other_lenient_shapes():
    o = obs("o1", LOINC, "2823-3", 4.0, "mmol/L", category={"coding": [{"code": "laboratory"}]})
    order = med_request("m", TAC_1MG, dosage=dosage(1, "mg"), category={"coding": [{"code": "outpatient"}]})
    f = facts(o, order)
    assert f.latest("potassium").value == 4.0
    assert only(f.medications).daily_dose_mg == 1.0  # dosageInstruction as an object, not an array


def test_the_same_resource_under_two_keys_is_read_once():
    o = obs("o1", LOINC, "2823-3", 4.0, "mmol/L")
    f = build_facts(request(), {"chemistry": [o], "other": [copy.deepcopy(o)]}, KNOWLEDGE)
    assert len(f.results("potassium")) == 1


def test_a_bundle_left_in_the_data_is_read_through():
    o = obs("o1", LOINC, "2823-3", 4.0, "mmol/L")
    bundle = {"resourceType": "Bundle", "entry": [{"resource": o}, {"resource": {"resourceType": "OperationOutcome"}}]}
    f = build_facts(request(), {"chemistry": [bundle]}, KNOWLEDGE)
    assert f.latest("potassium").value == 4.0 and f.unusable == ()


def test_extraction_does_not_depend_on_key_names():
    o = obs("o1", LOINC, "77348-1", 7.0, "ng/mL")
    assert build_facts(request(), {"anything": [o]}, KNOWLEDGE).latest("tacrolimus").value == 7.0


@pytest.mark.parametrize(
    "resource,reason",
    [
        ({"resourceType": "Observation", "id": "x", "status": "final"}, "without a code"),
        ({"resourceType": "Condition", "id": "x", "clinicalStatus": "active"}, "without a code"),
        ({"id": "x"}, "no resourceType"),
        ("not an object", "no resourceType"),
    ],
    ids=["observation-no-code", "condition-no-code", "no-resourceType", "not-an-object"],
)
def test_odd_fhir_is_reported_unusable(resource, reason):
    assert reason in only(facts(resource).unusable).reason


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Observation", "id": "a", "code": "2160-0", "status": "final"},
        {
            "resourceType": "Observation",
            "id": "b",
            "code": cc(LOINC, "2160-0"),
            "status": ["final"],
            "effectiveDateTime": WHEN,
            "valueQuantity": "0.8 mg/dL",
            "referenceRange": 5,
        },
        {
            "resourceType": "Observation",
            "id": "c",
            "code": cc(LOINC, "85354-9"),
            "status": "final",
            "effectiveDateTime": WHEN,
            "component": ["120/80", {"code": None}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": "d",
            "status": "active",
            "medicationCodeableConcept": "tacrolimus",
            "dosageInstruction": "1 mg daily",
        },
        {
            "resourceType": "MedicationRequest",
            "id": "e",
            "status": "active",
            "medicationCodeableConcept": rx("42316"),
            "dosageInstruction": [{"timing": "daily", "doseAndRate": [None, {"doseQuantity": {"value": True}}]}],
        },
        {"resourceType": "Appointment", "id": "f", "serviceType": "embryo-transfer", "start": 5},
        {"resourceType": "Condition", "id": "g", "code": {"coding": [{"system": SCT}]}},
    ],
    ids=[
        "code-as-string",
        "wrong-types",
        "bp-odd-components",
        "strings-everywhere",
        "nulls-in-arrays",
        "appointment-odd",
        "coding-without-code",
    ],
)
def test_odd_fhir_never_crashes(resource):
    f = facts(resource)
    assert isinstance(f, PatientFacts)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "code",
                    "coding",
                    "system",
                    "value",
                    "valueQuantity",
                    "status",
                    "effectiveDateTime",
                    "component",
                    "timing",
                    "repeat",
                    "frequency",
                    "period",
                    "periodUnit",
                    "doseAndRate",
                    "doseQuantity",
                    "unit",
                    "reference",
                    "clinicalStatus",
                    "start",
                    "serviceType",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rtype=st.sampled_from(
        [
            "Observation",
            "Condition",
            "ServiceRequest",
            "Procedure",
            "Appointment",
            "MedicationRequest",
            "MedicationStatement",
        ]
    ),
    body=st.dictionaries(
        st.sampled_from(
            [
                "code",
                "status",
                "effectiveDateTime",
                "valueQuantity",
                "component",
                "dosageInstruction",
                "medicationCodeableConcept",
                "medicationReference",
                "clinicalStatus",
                "occurrenceDateTime",
                "serviceType",
                "start",
                "referenceRange",
                "valueCodeableConcept",
            ]
        ),
        _json,
        max_size=6,
    ),
)
def test_arbitrary_json_in_known_resource_types_never_crashes(rtype, body):
    resource = dict(body, resourceType=rtype, id="fuzz")
    assert isinstance(facts(resource, drafts=[dict(resource, id="fuzz-draft")]), PatientFacts)


VALID_TEMPLATES = [
    obs(
        "t1",
        LOINC,
        "14682-9",
        80,
        "umol/L",
        referenceRange=[{"high": qty(90, "umol/L", "umol/L")}],
        specimen={"reference": "Specimen/s"},
    ),
    obs(
        "t2",
        LOCAL,
        "th1-th2-ratio",
        12.0,
        "{ratio}",
        component=[{"code": cc(LOCAL, "th1-cd4-ifng-pct"), "valueQuantity": qty(24.0, "%", "%")}],
    ),
    obs("t3", LOINC, "85354-9", component=[bp_component("8480-6", 142), bp_component("8462-4", 91)]),
    serum_hcg("t4", 30),
    urine_hcg("t5", "positive"),
    condition("t6", ICD, "O26.21"),
    service_request("t7", occurrencePeriod={"start": "2026-11-28"}),
    {
        "resourceType": "Appointment",
        "id": "t8",
        "status": "booked",
        "serviceType": [cc(LOCAL, "embryo-transfer")],
        "start": "2026-11-30T09:00:00Z",
    },
    med_request(
        "t9",
        contained=[
            {
                "resourceType": "Medication",
                "id": "c",
                "code": rx("198377"),
                "ingredient": [{"itemCodeableConcept": rx("42316")}],
            }
        ],
        medicationReference={"reference": "#c"},
        authoredOn="2026-11-20",
        dosageInstruction=[dict(bounded("2026-11-23", "2026-12-08")[0], sequence=1)],
        dispenseRequest={"expectedSupplyDuration": {"value": 16, "unit": "d"}},
    ),
    {
        "resourceType": "MedicationStatement",
        "id": "t10",
        "status": "active",
        "medicationCodeableConcept": {"text": "co-trimoxazole"},
        "effectivePeriod": {"start": "2026-11-18"},
        "dosage": [dosage(2, "{tbl}")],
    },
]


def _mutated(data: Any, node: Any) -> Any:
    if data.draw(st.integers(0, 7)) == 0:
        return data.draw(_json)
    if isinstance(node, dict):
        return {
            k: _mutated(data, v)
            for k, v in node.items()
            if k in ("resourceType", "id") or data.draw(st.integers(0, 9)) > 0
        }
    if isinstance(node, list):
        return [_mutated(data, v) for v in node]
    return node


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
@given(data=st.data())
def test_valid_resources_with_random_damage_never_crash_or_hit_the_safety_net(data):
    """Odd FHIR is reported (UnusableResource, problem, dose_problem), never an exception."""
    template = data.draw(st.sampled_from(VALID_TEMPLATES))
    damaged = _mutated(data, template)
    f = facts(damaged, drafts=[damaged] if isinstance(damaged, dict) else [])
    assert isinstance(f, PatientFacts)
    assert not [u for u in f.unusable if u.reason.startswith("unexpected structure")]


# ---- the knowledge table itself --------------------------------------------------------------------


def test_every_product_ingredient_is_a_known_drug():
    codes = KNOWLEDGE["codes"]
    for product in codes["products"]:
        assert set(product["ingredients"]) <= set(codes["drugs"]), product["rxnorm"]


def test_every_drug_of_clinical_reference_section_2_has_its_rxnorm_code():
    """docs/clinical-basis.md lists these RxNorm ingredient codes."""
    listed = {
        "tacrolimus": "42316",
        "fluconazole": "4450",
        "voriconazole": "121243",
        "itraconazole": "28031",
        "posaconazole": "282446",
        "ketoconazole": "6135",
        "clarithromycin": "21212",
        "erythromycin": "4053",
        "azithromycin": "18631",
        "mycophenolic_acid": "7145",
        "mycophenolate_mofetil": "68149",
        "sulfamethoxazole": "10180",
        "trimethoprim": "10829",
        "rifampin": "9384",
        "rifabutin": "55672",
        "carbamazepine": "2002",
        "phenytoin": "8183",
        "phenobarbital": "8134",
        "diltiazem": "3443",
        "verapamil": "11170",
        "nifedipine": "7417",
        "nicardipine": "7396",
        "ritonavir": "85762",
        "cobicistat": "1306284",
        "nelfinavir": "134527",
        "amiodarone": "703",
        "cyclosporine": "3008",
        "sirolimus": "35302",
        "spironolactone": "9997",
        "ibuprofen": "5640",
        "naproxen": "7258",
    }
    drugs = KNOWLEDGE["codes"]["drugs"]
    for key, code in listed.items():
        assert code in drugs[key]["rxnorm"], key
        assert drugs[key]["source"]


def test_a_site_file_adds_its_own_lab_code(tmp_path):
    """Code lists are data: a site maps its lab's code onto a concept without touching Python."""
    site = tmp_path / "site.yaml"
    site.write_text(
        "codes:\n"
        "  observations:\n"
        "    creatinine:\n"
        "      codes:\n"
        "        - {system: 'http://loinc.org', code: '2160-0'}\n"
        "        - {system: 'urn:site:lab', code: 'CREA'}\n",
        encoding="utf-8",
    )
    knowledge = load_knowledge(site)
    f = facts(obs("o1", "urn:site:lab", "CREA", 97.24, "umol/L"), knowledge=knowledge)
    assert f.latest("creatinine").value == pytest.approx(1.1)
    assert knowledge["codes"]["observations"]["creatinine"]["canonical_unit"] == "mg/dL"  # merged, not lost


@pytest.mark.parametrize(
    "override,entry",
    [
        (
            "products: [{rxnorm: '1', ingredients: [tacrolimus], release: slow, display: x, source: y}]",
            r"products/\d+ \(rxnorm 1\)/release",
        ),
        ("drugs: {fluconazole: {rxnorm: [abc]}}", "drugs/fluconazole/rxnorm/0"),
        (
            "observations: {tacrolimus: {codes: [{system: s, code: c, timing: sometimes}]}}",
            r"observations/tacrolimus/codes/\d+ \(system \+ code s\|c\)",
        ),
        ("hcg_positive_iu_per_l: -1", "hcg_positive_iu_per_l"),
    ],
    ids=["bad-release", "non-numeric-rxnorm", "bad-timing-flag", "negative-cut-off"],
)
def test_an_invalid_site_file_is_refused_naming_the_entry(tmp_path, override, entry):
    from cards.knowledge import KnowledgeError

    site = tmp_path / "site.yaml"
    site.write_text("codes:\n  " + override + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=entry):
        load_knowledge(site)


# Every drug key a table names must be one codes.yaml defines: else the rule would silently never fire.
UNKNOWN_KEYS = [  # (id, site file text, the entry the error names)
    (
        "interaction-lists-an-undefined-drug",
        "interactions:\n  entries:\n    - {id: x, drugs: [gentamicin], class: nephrotoxic, effect_direction: nephrotoxic,"
        " severity: warning, summary: s, effect: e, handling: h, sources: [s]}\n",
        r"interactions \(with site file .*\): entry entries/\d+ \(id x\)/drugs: drug key\(s\) gentamicin",
    ),
    (
        "drug-display-for-an-undefined-drug",
        "interactions:\n  entries:\n    - {id: x, drugs: [ibuprofen], drug_display: {motrin: Motrin}, class: nephrotoxic,"
        " effect_direction: nephrotoxic, severity: warning, summary: s, effect: e, handling: h, sources: [s]}\n",
        r"entries/\d+ \(id x\)/drug_display: drug key\(s\) motrin",
    ),
    (
        "care-unless-taking-an-undefined-drug",
        "care:\n  cards:\n    - {id: pjp, kind: 'care:pjp', indicator: info, hooks: [order-sign], summary: s,"
        " when: {tacrolimus: started, unless_taking: [dapsone, inhaled_pentamidine]},"
        " points: [{text: t}], sources: [s]}\n",
        r"care \(with site file .*\): entry cards/\d+ \(id pjp\)/when/unless_taking: drug key\(s\) inhaled_pentamidine",
    ),
    (
        "product-of-an-undefined-ingredient",
        "codes:\n  products: [{rxnorm: '1', ingredients: [everolimus], display: x, source: y}]\n",
        r"codes \(with site file .*\): entry products/\d+ \(rxnorm 1\)/ingredients: drug key\(s\) everolimus",
    ),
    (
        "release-name-of-an-undefined-ingredient",
        "codes:\n  release_names: [{ingredient: envarsus, release: extended, names: [envarsus], source: y}]\n",
        r"entry release_names/\d+/ingredient: drug key\(s\) envarsus",
    ),
]


@pytest.mark.parametrize("text,message", [u[1:] for u in UNKNOWN_KEYS], ids=[u[0] for u in UNKNOWN_KEYS])
def test_a_site_file_naming_an_unknown_drug_key_is_refused(tmp_path, text, message):
    from cards.knowledge import KnowledgeError

    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeError, match=message):
        load_knowledge(site)


def test_a_site_file_adding_the_drug_it_references_is_accepted(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "codes:\n  drugs:\n    everolimus: {rxnorm: [], names: [everolimus], source: site formulary}\n"
        "interactions:\n  entries:\n    - {id: x, drugs: [everolimus], class: nephrotoxic,"
        " effect_direction: nephrotoxic,"
        " severity: warning, summary: s, effect: e, handling: h, sources: [s]}\n",
        encoding="utf-8",
    )
    assert load_knowledge(site)["interactions"]["entries"][-1]["drugs"] == ["everolimus"]


def test_the_default_knowledge_names_only_defined_drug_keys():
    """The shipped tables pass the same check the loader runs (load_knowledge() above did not raise)."""
    from cards.knowledge import check_drug_keys

    check_drug_keys(KNOWLEDGE)
    assert {
        "ace_inhibitor",
        "angiotensin_receptor_blocker",
        "aminoglycoside",
        "other_nsaid",
        "eplerenone",
        "other_protease_inhibitor",
    } <= {d for e in KNOWLEDGE["interactions"]["entries"] for d in e["drugs"]}


# ---- facts for real charts: who the patient is, where a drug goes, what replaces what ----------------

CVX = "http://hl7.org/fhir/sid/cvx"
ROUTE_ORAL = cc(SCT, "26643006")


def patient(pid: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, **fields}


@pytest.mark.parametrize(
    "resources, sex, birth",
    [
        ([patient(gender="female", birthDate="1990-04-02")], "female", date(1990, 4, 2)),
        ([patient(gender="male", birthDate="1985")], "male", date(1985, 1, 1)),
        ([patient(gender="Femme")], None, None),  # not a FHIR administrative gender: unknown, never guessed
        ([patient("someone-else", gender="male")], None, None),  # another patient's resource is not hers
        ([], None, None),
    ],
    ids=["female", "male-partial-birth-date", "bad-gender-code", "other-patient", "no-patient"],
)
def test_patient_sex_and_birth_date(resources, sex, birth):
    f = facts(*resources)
    assert (f.sex, f.birth_date) == (sex, birth)


def test_an_unreadable_birth_date_is_reported_not_a_failure():
    f = facts(patient(gender="female", birthDate="02/04/1990"))
    assert f.sex == "female" and f.birth_date is None
    assert "birthDate" in only(f.unusable).reason


CONDITIONS = [
    ("kidney-transplant", condition("c", ICD, "Z94.0"), "transplant_status", None, None),
    ("liver-transplant-no-dot", condition("c", ICD, "Z944"), "transplant_status", None, None),
    (
        "miscarriage-resolved-still-an-outcome",
        condition("c", ICD, "O03.9", "resolved", onsetDateTime="2026-08-01"),
        "pregnancy_outcome",
        datetime(2026, 8, 1, tzinfo=UTC),
        None,
    ),
    ("delivery-z37", condition("c", ICD, "Z37.0", None, recordedDate="2026-05-01"), "pregnancy_outcome", None, None),
    (
        "ectopic",
        condition("c", ICD, "O00.1", onsetDateTime="2026-09-10"),
        "pregnancy_outcome",
        datetime(2026, 9, 10, tzinfo=UTC),
        None,
    ),
    (
        "closed-pregnancy-is-an-outcome",
        condition("c", SCT, "77386006", "resolved", onsetDateTime="2026-01-10", abatementDateTime="2026-03-02"),
        "pregnancy_outcome",
        datetime(2026, 1, 10, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    ),
    (
        "active-pregnancy-with-onset",
        condition("c", SCT, "77386006", onsetDateTime="2026-10-01"),
        "pregnancy",
        datetime(2026, 10, 1, tzinfo=UTC),
        None,
    ),
]


@pytest.mark.parametrize(
    "resource, concept, onset, abated", [c[1:] for c in CONDITIONS], ids=[c[0] for c in CONDITIONS]
)
def test_other_indications_and_pregnancy_outcomes_are_read(resource, concept, onset, abated):
    c = only(facts(resource).conditions)
    assert (c.concept, c.onset, c.abated) == (concept, onset, abated)


def test_a_closed_pregnancy_without_any_date_says_nothing():
    assert facts(condition("c", SCT, "77386006", "resolved")).conditions == ()


TAC = cc(RX, "42316", "tacrolimus")
ROUTES = [
    ("dosage-route-oral", med_request("m", TAC, dosage=[dosage(1, "mg", route=ROUTE_ORAL)]), "oral"),
    (
        "dosage-route-topical-beats-text",
        med_request(
            "m", cc(RX, "42316", text="tacrolimus 1 mg capsule"), dosage=[dosage(1, "mg", route=cc(SCT, "6064005"))]
        ),
        "topical",
    ),
    ("product-dose-form", med_request("m", cc(RX, "198377")), "oral"),
    ("tacrolimus-ointment-by-text", med_request("m", {"text": "Tacrolimus 0.1% ointment"}), "topical"),
    ("vaginal-clotrimazole", med_request("m", {"text": "Clotrimazole 2% vaginal cream"}), "vaginal"),
    ("erythromycin-eye-ointment", med_request("m", {"text": "Erythromycin 0.5% ophthalmic ointment"}), "ophthalmic"),
    (
        "eye-in-sig-text",
        med_request("m", {"text": "erythromycin"}, dosageInstruction=[{"text": "apply to both eyes at night"}]),
        "ophthalmic",
    ),
    (
        "vaginal-route-code",
        med_request("m", {"text": "clotrimazole 500 mg"}, dosageInstruction=[{"route": cc(SCT, "16857009")}]),
        "vaginal",
    ),
    (
        "ophthalmic-route-code",
        med_request("m", {"text": "erythromycin"}, dosageInstruction=[{"route": cc(SCT, "54485002")}]),
        "ophthalmic",
    ),
    ("nothing-says", med_request("m", {"text": "fluconazole 150"}), None),
]


@pytest.mark.parametrize("resource, route", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_route_from_dosage_route_then_dose_form_then_text(resource, route):
    m = only(facts(resource).medications)
    assert m.route == route
    assert m.systemic is (route not in ("topical", "vaginal", "ophthalmic"))


@pytest.mark.parametrize(
    "prior, expected",
    [
        ({"reference": "MedicationRequest/act-1"}, "MedicationRequest/act-1"),
        ({"reference": "https://ehr.example/fhir/MedicationRequest/act-1/_history/3"}, "MedicationRequest/act-1"),
        ({"display": "the old order"}, None),
        ("MedicationRequest/act-1", None),
    ],
)
def test_prior_prescription_names_the_replaced_order(prior, expected):
    m = only(facts(drafts=[med_request("d", TAC, status="draft", priorPrescription=prior)]).medications)
    assert m.prior_prescription == expected


def test_indications_keep_codes_and_texts_lower_cased():
    m = only(
        facts(
            med_request(
                "m",
                cc(RX, "21212", "clarithromycin"),
                reasonCode=[cc(SCT, "80323005", "Helicobacter pylori infection"), {"text": "Eradication of H. PYLORI"}],
            )
        ).medications
    )
    assert m.indications == (f"{SCT}|80323005", "helicobacter pylori infection", "eradication of h. pylori")


@pytest.mark.parametrize("code", ["03", "94", "21", "121", "37", "19", "25", "111", "149"])
def test_live_vaccines_in_cvx_are_recognised(code):
    m = only(facts(drafts=[med_request("v", cc(CVX, code), status="draft")]).medications)
    assert m.ingredients == ("live_attenuated_vaccine",)
    assert m.recognised_by == "cvx" and m.matched == f"CVX {code}"


def test_an_inactivated_vaccine_in_cvx_is_not_a_live_one():
    m = only(facts(drafts=[med_request("v", cc(CVX, "140"), status="draft")]).medications)  # influenza, injectable
    assert m.ingredients == ()


# ---- same-time results: neither wins by its place in the Bundle ---------------------------------------


def potassium(oid: str, value: float, when: str = WHEN) -> dict[str, Any]:
    return obs(oid, LOINC, "2823-3", value, "mmol/L", when=when)


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")], ids=["bundle-order", "reversed"])
def test_conflicting_results_at_one_time_keep_both_and_name_each_other(order):
    res = {"a": potassium("a", 4.3), "b": potassium("b", 6.4)}
    f = facts(*(res[k] for k in order))
    results = {m.source: m for m in f.results("potassium")}
    assert results["Observation/a"].conflicts_with == ("Observation/b",)
    assert results["Observation/b"].conflicts_with == ("Observation/a",)
    from cards.derive import worse

    assert worse(f, f.latest("potassium")).value == 6.4


@pytest.mark.parametrize(
    "resources",
    [
        [potassium("a", 4.3), potassium("b", 4.3)],  # same value twice: a duplicate, not a conflict
        [potassium("a", 4.3), potassium("b", 6.4, when="2026-11-20T09:00:00Z")],  # different times
    ],
    ids=["same-value", "different-time"],
)
def test_no_conflict_without_two_values_at_one_time(resources):
    assert all(m.conflicts_with == () for m in facts(*resources).results("potassium"))


def test_conflicting_ratios_are_flagged():
    ratios = [obs(i, LOCAL, "th1-th2-ratio", v, "{ratio}") for i, v in (("r1", 9.8), ("r2", 12.1))]
    assert sorted(m.conflicts_with for m in facts(*ratios).results("th1_th2_ratio")) == [
        ("Observation/r1",),
        ("Observation/r2",),
    ]


# ---- plausibility: a value no patient can have is a data error --------------------------------------

PLAUSIBILITY = [
    ("ratio-124", obs("r", LOCAL, "th1-th2-ratio", 124, "{ratio}"), "th1_th2_ratio", "expected 0.1 to 100"),
    ("ratio-negative", obs("r", LOCAL, "th1-th2-ratio", -3, "{ratio}"), "th1_th2_ratio", "-3"),
    ("potassium-64", obs("k", LOINC, "2823-3", 64, "mmol/L"), "potassium", "64 mmol/L is not a plausible result"),
    ("trough-2000", obs("t", LOINC, "77348-1", 2000, "ng/mL"), "tacrolimus", "expected 0 to 200 ng/mL"),
    ("creatinine-0", obs("c", LOINC, "2160-0", 0, "mg/dL"), "creatinine", "not a plausible result"),
]


@pytest.mark.parametrize("resource, concept, problem", [p[1:] for p in PLAUSIBILITY], ids=[p[0] for p in PLAUSIBILITY])
def test_implausible_values_are_unusable_and_shown_as_recorded(resource, concept, problem):
    m = only(facts(resource).results(concept))
    assert m.value is None and not m.actionable
    assert problem in m.problem
    assert m.shown.split()[0] == str(resource["valueQuantity"]["value"])


def test_a_derived_ratio_is_checked_for_plausibility_too():
    th1 = obs("a", LOCAL, "th1-cd4-ifng-pct", 30, "%")
    th2 = obs("b", LOCAL, "th2-cd4-il4-pct", 0.2, "%")
    m = only(facts(th1, th2).results("th1_th2_ratio"))
    assert m.value is None and "150" in m.problem and m.derived


def test_plausibility_limits_are_site_configurable():
    knowledge = copy.deepcopy(KNOWLEDGE)
    knowledge["codes"]["plausibility"]["observations"]["potassium"] = {"low": 1.5, "high": 6.0}
    m = only(facts(potassium("k", 6.4), knowledge=knowledge).results("potassium"))
    assert m.value is None
    assert only(facts(potassium("k", 6.4)).results("potassium")).value == 6.4


@pytest.mark.parametrize(
    "value_fields, shown, problem",
    [
        ({"valueQuantity": qty(1.0, "ng/mL", "ng/mL", comparator="<")}, "<1.0 ng/mL", "a limit, not a value"),
        ({"valueString": "<1.0"}, "<1.0", "text"),
        ({"valueQuantity": qty(12.4, "nmol/L", "nmol/L")}, "12.4 nmol/L", "nmol/L"),
    ],
    ids=["comparator", "value-string", "unconvertible-unit"],
)
def test_a_trough_that_cannot_be_compared_keeps_what_the_lab_reported(value_fields, shown, problem):
    m = only(facts(obs("t", LOINC, "77348-1", **value_fields)).results("tacrolimus"))
    assert m.value is None and m.shown == shown and problem in m.problem


def test_same_time_results_are_ordered_the_same_whatever_the_bundle_order():
    a, b = potassium("a", 4.3), potassium("b", 6.4)
    assert [m.source for m in facts(a, b).results("potassium")] == [m.source for m in facts(b, a).results("potassium")]


# Pregnancy from FHIR as a clinic records it (today 2026-11-25): a transfer, then a positive hCG, no Condition.
PREGNANCY_CHARTS = [
    (
        "positive-134-days-ago-is-not-forgotten",
        [procedure_done("p", "2026-07-01"), urine_hcg("u", "positive", "2026-07-14")],
        True,
        147 + 19,
    ),
    (
        "miscarriage-coded-after-the-positive",
        [
            procedure_done("p", "2026-07-01"),
            urine_hcg("u", "positive", "2026-07-14"),
            condition("m", ICD, "O03.9", "resolved", onsetDateTime="2026-08-20"),
        ],
        None,
        None,
    ),
    (
        "delivery-coded-after-the-positive",
        [
            procedure_done("p", "2026-01-10"),
            serum_hcg("s", 800, when="2026-01-24"),
            condition("d", ICD, "Z37.0", "resolved", recordedDate="2026-09-30"),
        ],
        None,
        None,
    ),
    (
        "closed-pregnancy-condition",
        [
            procedure_done("p", "2026-07-01"),
            urine_hcg("u", "positive", "2026-07-14"),
            condition("c", SCT, "77386006", "resolved", onsetDateTime="2026-07-14", abatementDateTime="2026-09-01"),
        ],
        None,
        None,
    ),
    (
        "later-negative-after-the-transfer",
        [
            procedure_done("p", "2026-10-20"),
            urine_hcg("u", "positive", "2026-11-01"),
            urine_hcg("n", "negative", "2026-11-15"),
        ],
        False,
        None,
    ),
]


@pytest.mark.parametrize(
    "resources, pregnant, ga", [c[1:] for c in PREGNANCY_CHARTS], ids=[c[0] for c in PREGNANCY_CHARTS]
)
def test_pregnancy_lasts_until_an_outcome_a_negative_test_or_42_weeks(resources, pregnant, ga):
    status = facts(*resources, today=TODAY).pregnancy
    assert status.pregnant is pregnant
    assert status.gestational_age_days == ga
    if pregnant:
        assert status.since == date(2026, 7, 1)


def test_float_noise_is_not_printed_but_the_value_is_kept():
    """Generated data carry values like 5.179565090425196 mmol/L: shown as 5.18, compared unrounded."""
    m = only(facts(obs("o1", LOINC, "2823-3", 5.179565090425196, "mmol/L")).results("potassium"))
    assert m.shown == "5.18 mmol/L" and m.value == pytest.approx(5.179565090425196)


def test_three_decimals_are_shown_as_reported():
    m = only(facts(obs("o1", LOINC, "2160-0", 0.825, "mg/dL")).results("creatinine"))
    assert m.shown == "0.825 mg/dL"


def test_timed_results_are_ordered_as_the_general_key_orders_them():
    """``_newest_results_first`` sorts a concept whose results all carry a time by (time, source); that
    is the order of the general key (``_newest_first`` of the time, then the source), ties and the
    same instant in another zone included, and equal keys keep their place."""
    rng = random.Random(22)
    zones = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
    for _ in range(300):
        results = [
            Measurement(
                "creatinine",
                f"Observation/{rng.randrange(4)}",
                "http://loinc.org|2160-0",
                "final",
                (WHEN_DT + timedelta(hours=rng.randrange(3))).astimezone(rng.choice(zones)),
                rng.choice([0.8, 0.9]),
                "mg/dL",
                "0.9 mg/dL",
            )
            for _ in range(rng.randrange(9))
        ]
        general = sorted(results, key=lambda m: (_newest_first(m.when), m.source), reverse=True)
        assert [id(m) for m in _newest_results_first(results)] == [id(m) for m in general]
    undated = [Measurement("creatinine", "Observation/x", "c", "final", None, None, "mg/dL", "")]
    assert _newest_results_first(undated + results) == tuple(
        sorted(undated + results, key=lambda m: (_newest_first(m.when), m.source), reverse=True)
    )

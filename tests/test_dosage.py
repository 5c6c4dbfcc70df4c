"""Daily-dose arithmetic (service.hooks.extract.dosage): a dose is computed from the order, or said to be unknown with
the reason; capsules counted when read are the capsules written back in a suggested order."""

import pytest
from rules_support import order_fields, resource_of

from cards.dosage import COUNT_UNITS, is_count_unit
from cards.facts import MedicationFact
from cards.orders import with_daily_dose
from service.hooks.extract.dosage import daily_dose, doses_per_day, duration_days
from service.hooks.extract.medications import order_shape


def dosage(value, unit, *, frequency=1, period=1, period_unit="d", **extra):
    return {
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}],
        "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
        **extra,
    }


@pytest.mark.parametrize(
    "dosages, strength, expected",
    [
        ([dosage(1, "mg", frequency=2)], None, (2.0, 2.0, None)),
        ([dosage(3, "{capsule}")], 1.0, (3.0, 1.0, None)),
        ([dosage(2, "Tablets", frequency=2)], 0.5, (2.0, 2.0, None)),
        ([dosage(1, "mg"), dosage(0.5, "mg")], None, (1.5, 2.0, None)),
        ([dosage(500, "ug", frequency=2)], None, (1.0, 2.0, None)),
        ([dosage(1, "mg", period=12, period_unit="h")], None, (2.0, 2.0, None)),
    ],
)
def test_daily_dose_is_computed(dosages, strength, expected):
    assert daily_dose(dosages, strength, None, 50.0) == expected


@pytest.mark.parametrize(
    "dosages, strength, ceiling, why",
    [
        ([dosage(-2, "mg")], None, 50.0, "not a positive amount"),
        ([dosage(0, "mg")], None, 50.0, "not a positive amount"),
        ([dosage(30, "mg", frequency=2)], None, 50.0, "60 mg/day is above 50 mg/day"),
        ([dosage(2, "{capsule}")], None, 50.0, "strength per unit is not known"),
        ([dosage(1, "mg", sequence=1), dosage(2, "mg", sequence=2)], None, 50.0, "in sequence"),
        (
            [
                {
                    "doseAndRate": [{"doseQuantity": {"value": 0.5, "code": "mg", "unit": "tablet"}}],
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                }
            ],
            5.0,
            50.0,
            "ambiguous",
        ),
        ([{"text": "3 mg once daily"}], None, 50.0, "only as text"),
        ([], None, 50.0, "no dosage instruction"),
        ([dosage(1, "mg", period=1, period_unit="mo")], None, 50.0, "no fixed number of doses per day"),
    ],
)
def test_unknown_or_implausible_daily_dose_says_why(dosages, strength, ceiling, why):
    daily, per_day, problem = daily_dose(dosages, strength, None, ceiling)
    assert (daily, per_day) == (None, None)
    assert why in problem


@pytest.mark.parametrize(
    "timing, expected",
    [
        ({"code": {"coding": [{"code": "BID"}]}}, (2.0, None)),
        ({"repeat": {"when": ["MORN", "EVE"]}}, (2.0, None)),
        (
            {"repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}},
            (None, "timing gives a range (frequencyMax)"),
        ),
        (None, (None, "no timing")),
    ],
)
def test_doses_per_day(timing, expected):
    assert doses_per_day(timing) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"value": 16, "unit": "days"}, (16, None)),
        ({"value": 2, "code": "wk"}, (14, None)),
        ({"value": 0, "unit": "d"}, (None, "0 d is not a positive duration; duration ignored")),
        ({"value": 1, "unit": "mo"}, (None, None)),
    ],
)
def test_duration_days(raw, expected):
    assert duration_days(raw) == expected


@pytest.mark.parametrize("unit", ["{pill}", "{tbl}", "{tab}", "{capsule}", "tablets", "Capsules", "1"])
def test_a_dose_read_in_a_count_unit_can_be_rewritten_in_that_unit(unit):
    assert is_count_unit(unit)
    order = {
        "resourceType": "MedicationRequest",
        "id": "d1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "tacrolimus 1 mg"},
        "dosageInstruction": [dosage(3, unit.lower() if unit != "Capsules" else "capsules")],
    }
    daily, per_day, problem = daily_dose(order["dosageInstruction"], 1.0, None, 50.0)
    assert (daily, per_day, problem) == (3.0, 1.0, None)
    fact = MedicationFact(
        source="MedicationRequest/d1",
        resource_type="MedicationRequest",
        status="draft",
        display="tacrolimus 1 mg",
        ingredients=("tacrolimus",),
        recognised_by="text",
        matched="tacrolimus",
        strength_mg=1.0,
        daily_dose_mg=daily,
        doses_per_day=per_day,
        is_draft=True,
        **order_fields(order),
    )
    change = with_daily_dose(fact, 2.0)
    assert change is not None
    updated = resource_of(change)
    assert updated["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2


def test_count_units_are_one_shared_definition():
    import cards.orders

    assert cards.orders.COUNT_UNITS is COUNT_UNITS


REPEATS = [
    {"frequency": 2, "period": 1, "periodUnit": "d"},
    {"frequency": 1, "period": 0.5, "periodUnit": "wk"},
    {"period": 12, "periodUnit": "h"},
    {"period": 1e300, "periodUnit": "mo"},
    {"period": 10**30, "periodUnit": "a"},
    {"frequency": 2_147_483_647},
    {"frequency": 2_147_483_648},
    {"frequency": 0},
    {"frequency": True},
    {"frequency": 1.0},
    {"frequency": "2"},
    {"period": True},
    {"period": "1"},
    {"period": -1},
    {"periodUnit": "x"},
    {"periodUnit": ""},
    {"periodUnit": ["d"]},
    {"periodUnit": 1},
    {"when": ["MORN", "EVE"]},
    {"when": "MORN"},
    {"when": [""]},
    {"when": ["xx y"]},
    {"when": [None]},
    {"timeOfDay": ["08:00:00", "20:00:00"]},
    {"timeOfDay": ["25:00:00"]},
    {"timeOfDay": ["8am"]},
    {"timeOfDay": "08:00:00"},
    {"timeOfDay": []},
    {"frequency": None, "period": None, "periodUnit": None},
]


@pytest.mark.parametrize("repeat", REPEATS, ids=[repr(r) for r in REPEATS])
def test_plain_reading_of_timing_repeat_agrees_with_the_fhir_model(repeat):
    """Timing.repeat is read without the FHIR model when its values are plainly valid; whatever is
    read that way must be what the model gives, and anything the model refuses must go to it."""
    from fhir.resources.R4B.timing import TimingRepeat
    from pydantic import ValidationError

    from service.hooks.extract.dosage import _plain_repeat

    plain = _plain_repeat(repeat)
    try:
        model = TimingRepeat.model_validate(repeat)
    except ValidationError:
        assert plain is None
        return
    if plain is not None:
        period = float(model.period) if model.period is not None else None
        assert plain == (model.frequency, period, model.periodUnit)


@pytest.mark.parametrize(
    "repeat, problem",
    [
        (
            {"frequency": 0, "period": 1, "periodUnit": "d"},
            "timing.repeat.frequency is not valid FHIR (Input should be greater than or equal to 1)",
        ),
        ({"frequency": 1, "period": 1, "periodUnit": " d"}, "timing.repeat.periodUnit is not valid FHIR"),
        ({"when": ["MORN", ""]}, "timing.repeat.when.1 is not valid FHIR"),
    ],
)
def test_invalid_timing_is_named(repeat, problem):
    per_day, why = doses_per_day({"repeat": repeat})
    assert per_day is None and why is not None and why.startswith(problem)


def test_numeric_string_frequency_is_read_as_fhir_reads_it():
    assert doses_per_day({"repeat": {"frequency": "2", "period": 1, "periodUnit": "d"}}) == (2.0, None)


def test_what_the_rules_read_of_an_order_is_extracted_as_typed_values():
    """The rules never see the MedicationRequest: its id, reasons, coding, course and dose times are
    read into the fact by extraction."""
    from cards.dosage import evening_dose
    from cards.facts import DosageTiming

    order = {
        "resourceType": "MedicationRequest",
        "id": "flu1",
        "medicationCodeableConcept": {"coding": [{"system": "x", "code": "4450"}], "text": "fluconazole"},
        "reasonReference": [{"reference": "Condition/c1", "display": " Vaginal Candidiasis "}, {"reference": "x"}],
        "dosageInstruction": [
            {"text": "150 mg stat", "timing": {"repeat": {"count": 1, "when": ["HS"]}}},
            {"patientInstruction": "take at night", "timing": {"repeat": {"timeOfDay": "21:00:00"}}},
        ],
    }
    shape = order_shape(order)
    assert shape["reference"] == "MedicationRequest/flu1"
    assert shape["reason_references"] == ("vaginal candidiasis",)
    assert shape["has_dosage_instruction"] and shape["coded"]
    assert (shape["course_days"], shape["single_dose"]) == (1, True)
    assert shape["dosage_timings"] == (
        DosageTiming(when=("HS",), text="150 mg stat", when_listed=True),
        DosageTiming(time_of_day=("21:00:00",), patient_instruction="take at night"),
    )
    assert evening_dose(shape["dosage_timings"]) is True
    assert evening_dose(shape["dosage_timings"], from_hour=22) is False
    unnamed = order_shape({"resourceType": "MedicationRequest", "medicationCodeableConcept": {"text": "fluconazole"}})
    assert (unnamed["reference"], unnamed["coded"], unnamed["has_dosage_instruction"]) == (None, False, False)
    assert evening_dose(unnamed["dosage_timings"]) is False

"""Patient-safety findings from a clinical review of real-shaped charts, as tables a clinician can read.

Each row is a chart and the decision the service must make: the card's kind, indicator and verdict
(never its English). Sources: tacrolimus labels (levels rise 2-5-fold on azoles; live vaccines avoided);
the RIF studies (start 2 days before the transfer, 16 days to the pregnancy test, at most 4 mg/day);
hCG is conclusive about 9-11 days after a blastocyst transfer; mycophenolate's boxed warning
(pregnancy loss and malformations); UK Kidney Association 2020 (potassium 5.5-5.9 mild).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from rules_support import (
    KB,
    TODAY,
    assert_card_rules,
    day,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    order_fields,
    order_of,
    pregnancy,
    transfer,
)
from test_rules_interactions import facts as interaction_facts
from test_rules_interactions import med

from cards.evaluate import evaluate
from cards.facts import PREGNANCY, ConditionFact, MedicationFact, PatientFacts, PregnancyStatus
from cards.knowledge_model import typed
from cards.model import Card
from cards.recognise import DrugRecogniser
from cards.rules.dose import evaluate_dose
from cards.rules.interactions import evaluate_interactions
from cards.rules.timing import evaluate_timing
from service.hooks.extract.medications import order_shape


def decisions(cards: list[Card]) -> set[tuple[str, str, str]]:
    return {(c.kind, c.indicator, c.verdict) for c in cards}


def with_sig(order: MedicationFact, sig: str, **repeat: Any) -> MedicationFact:
    """The order with a free-text sig and, optionally, structured timing in ``timing.repeat``."""
    instruction = order_of(order)["dosageInstruction"][0]
    instruction["text"] = sig
    instruction["patientInstruction"] = sig
    instruction["timing"]["repeat"].update(repeat)
    return replace(order, **order_shape(order_of(order)))  # the facts read from the changed order


# --- 1. structured timing decides a course's length; free text a single dose only in explicit words ----


def fluconazole(sig: str, started: int = 0, state: str = "selected", **repeat: Any) -> MedicationFact:
    return with_sig(med("fluconazole", state, daily_mg=200, start=day(started)), sig, **repeat)


def spironolactone(sig: str, started: int, **repeat: Any) -> MedicationFact:
    return with_sig(med("spironolactone", "active", daily_mg=25, start=day(started)), sig, **repeat)


TAC_ACTIVE = med("tacrolimus", "active", daily_mg=2, start=day(-20))
TAC_DRAFT = med("tacrolimus", "selected", daily_mg=2, start=day(0))
K_58 = lab("potassium", 5.8, 1)

STRUCTURED_TIMING = [
    pytest.param(
        fluconazole(
            "200 mg by mouth daily x 1 week", boundsPeriod={"start": day(0).isoformat(), "end": day(6).isoformat()}
        ),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "dose-cut"),
        id="fluconazole daily x 1 week with a 7-day boundsPeriod is a course: cut the dose",
    ),
    pytest.param(
        fluconazole("200 mg by mouth daily x 1 week", boundsDuration={"value": 7, "code": "d"}),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "dose-cut"),
        id="fluconazole x 1 week with a 7-day boundsDuration is a course",
    ),
    pytest.param(
        fluconazole("200 mg daily, single dose", count=7),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "dose-cut"),
        id="repeat.count 7 outweighs the words single dose",
    ),
    pytest.param(
        fluconazole("150 mg by mouth, single dose"),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "single-dose"),
        id="single dose in words and no structured course: a single dose",
    ),
    pytest.param(
        fluconazole("150 mg by mouth stat"),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "single-dose"),
        id="stat and no structured course: a single dose",
    ),
    pytest.param(
        fluconazole("150 mg by mouth", count=1),
        "order-select",
        (),
        ("interaction:fluconazole", "warning", "single-dose"),
        id="repeat.count 1: a single dose",
    ),
    pytest.param(
        spironolactone("25 mg by mouth daily x 1 month", -10),
        "patient-view",
        (K_58,),
        ("interaction:spironolactone", "critical", "potassium-mild"),
        id="spironolactone daily x 1 month started 10 days ago still counts: potassium 5.8 stops it",
    ),
]


@pytest.mark.parametrize("order,hook,labs,expected", STRUCTURED_TIMING)
def test_structured_timing_decides_a_course(
    order: MedicationFact, hook: str, labs: tuple[Any, ...], expected: tuple[str, str, str]
) -> None:
    tac = TAC_ACTIVE if hook == "patient-view" else TAC_DRAFT
    cards = evaluate_interactions(interaction_facts(hook, tac, order, labs=labs), TODAY, KB)
    assert expected in decisions(cards)


def test_single_dose_of_a_drug_without_a_dose_change_says_nothing_about_the_tacrolimus_dose() -> None:
    """Azithromycin has no dose change: a single dose of it never claims "keep the tacrolimus dose"."""
    order = with_sig(med("azithromycin", "selected", daily_mg=500, start=day(0)), "500 mg once only")
    [card] = evaluate_interactions(interaction_facts("order-select", TAC_DRAFT, order), TODAY, KB)
    assert card.verdict == "single-dose"
    assert "tacrolimus dose" not in card.detail


# --- 2. a negative hCG ends the course only from the protocol's test day ------------------------------

NEGATIVE_TESTS = [
    pytest.param(-5, 1, "negative-too-early", "info", id="negative 4 days after the transfer: too early"),
    pytest.param(-12, 1, "negative-too-early", "info", id="negative 11 days after the transfer: before course day 16"),
    pytest.param(-14, 1, "course-complete", "warning", id="negative on course day 16: the course is complete"),
    pytest.param(-16, 0, "course-complete", "warning", id="negative 16 days after the transfer: complete"),
]


@pytest.mark.parametrize("transfer_day,tested_days_ago,verdict,indicator", NEGATIVE_TESTS)
def test_negative_hcg_before_the_test_day_is_too_early(
    transfer_day: int, tested_days_ago: int, verdict: str, indicator: str
) -> None:
    facts = make_facts(
        "patient-view",
        meds=[on_tacrolimus(-transfer_day + 2)],
        transfers=[transfer(transfer_day)],
        pregnancy_status=pregnancy(False, tested_days_ago),
    )
    [card] = evaluate_timing(facts, TODAY, KB)
    assert (card.kind, card.indicator, card.verdict) == ("timing", indicator, verdict)
    assert not card.suggestions if verdict == "negative-too-early" else True
    assert_card_rules(card)


# --- 3. live vaccines ordered by brand ------------------------------------------------------------------

RECOGNISER = DrugRecogniser.from_codes(typed(KB).codes)
BRANDS = ["Varivax", "M-M-R II", "ProQuad", "Priorix", "Zostavax", "YF-Vax", "Stamaril", "Vivotif", "FluMist", "BCG"]


def named_order(text: str, state: str = "selected") -> MedicationFact:
    """An order known only by its name, recognised as extraction recognises it."""
    found = RECOGNISER.recognise([], [text])
    order = med("vaccine", state, display=text, recognised_by="text")
    return MedicationFact(**{**order.__dict__, "ingredients": found.ingredients, "matched": found.matched})


@pytest.mark.parametrize("brand", BRANDS, ids=[f"{b} on tacrolimus: avoid" for b in BRANDS])
def test_live_vaccines_by_brand_are_avoided(brand: str) -> None:
    cards = evaluate_interactions(interaction_facts("order-select", TAC_ACTIVE, named_order(brand)), TODAY, KB)
    assert ("interaction:live_attenuated_vaccine", "warning") in {(c.kind, c.indicator) for c in cards}


# --- 4. recorded pregnancy, hCG or transfer outweigh Patient.gender -------------------------------------

PREGNANT_MALE_GENDER = [
    pytest.param(dict(pregnant_weeks=8), "interaction", id="pregnancy on record, gender male: mycophenolate critical"),
    pytest.param(dict(transfer_in_days=5), "interaction", id="transfer planned, gender male: mycophenolate critical"),
]


@pytest.mark.parametrize("chart,verdict", PREGNANT_MALE_GENDER)
def test_pregnancy_evidence_outweighs_administrative_gender(chart: dict[str, Any], verdict: str) -> None:
    mmf = med("mycophenolate_mofetil", "selected", daily_mg=2000)
    cards = evaluate_interactions(
        interaction_facts("order-select", TAC_ACTIVE, mmf, sex="male", rif=False, **chart), TODAY, KB
    )
    assert ("interaction:mycophenolate_mofetil", "critical", verdict) in decisions(cards)


def test_a_man_with_no_pregnancy_on_record_gets_no_mycophenolate_card() -> None:
    mmf = med("mycophenolate_mofetil", "selected", daily_mg=2000)
    cards = evaluate_interactions(interaction_facts("order-select", TAC_ACTIVE, mmf, sex="male", rif=False), TODAY, KB)
    assert not [c for c in cards if c.kind == "interaction:mycophenolate_mofetil"]


def test_pregnancy_condition_outweighs_gender_on_the_whole_evaluation() -> None:
    facts = make_facts(
        "order-select",
        meds=[on_tacrolimus(20)],
        sex="male",
        rif=False,
        conditions=[ConditionFact(PREGNANCY, "Condition/p", "sct|77386006", "Pregnancy")],
        pregnancy_status=PregnancyStatus(True, "Condition 77386006", "Condition/p"),
    )
    mmf = med("mycophenolate_mofetil", "selected", daily_mg=2000)
    facts = PatientFacts(**{**facts.__dict__, "medications": (*facts.medications, mmf), "selections": (mmf.source,)})
    assert ("interaction:mycophenolate_mofetil", "critical", "interaction") in decisions(evaluate(facts, TODAY, KB))


# --- 5. scope by the order's own indication -------------------------------------------------------------

LUPUS = ("http://hl7.org/fhir/sid/icd-10-cm|m32.14", "lupus nephritis")
TRANSPLANT = ("kidney transplant",)
RIF_REASON = ("recurrent implantation failure",)


def tacrolimus_for(indications: tuple[str, ...], daily_mg: float = 6, frequency: int = 2) -> MedicationFact:
    order = draft(daily_mg, frequency=frequency, start=day(8))
    return MedicationFact(**{**order.__dict__, "indications": indications})


def tacrolimus_referring_to(display: str) -> MedicationFact:
    """An order whose indication is a reasonReference to a Condition, named by its display."""
    order = draft(6, frequency=2, start=day(8))
    resource = {**order_of(order), "reasonReference": [{"reference": "Condition/ln", "display": display}]}
    return MedicationFact(**{**order.__dict__, **order_fields(resource)})


INDICATION_SCOPE = [
    pytest.param(
        LUPUS,
        "order-select",
        {("dose", "info", "protocol-not-applied")},
        id="3 mg twice daily for lupus nephritis, RIF on the list: protocol not applied, no maximum",
    ),
    pytest.param(
        TRANSPLANT,
        "order-select",
        {("dose", "info", "protocol-not-applied")},
        id="tacrolimus for a kidney transplant named in words: protocol not applied",
    ),
    pytest.param(LUPUS, "order-sign", set(), id="at signing: no second card"),
    pytest.param(
        RIF_REASON,
        "order-select",
        {("dose", "critical", "above-maximum")},
        id="6 mg/day for RIF: above the 4 mg/day maximum",
    ),
    pytest.param(
        (),
        "order-select",
        {("dose", "critical", "above-maximum")},
        id="no indication on the order, RIF on record: the protocol applies",
    ),
]


@pytest.mark.parametrize(
    "display,expected",
    [
        pytest.param(
            "Lupus nephritis", {("dose", "info", "protocol-not-applied")}, id="reasonReference lupus nephritis"
        ),
        pytest.param(
            "Recurrent implantation failure", {("dose", "critical", "above-maximum")}, id="reasonReference RIF"
        ),
    ],
)
def test_scope_by_the_orders_reason_reference(display: str, expected: set[tuple[str, str, str]]) -> None:
    facts = make_facts("order-select", meds=[tacrolimus_referring_to(display)], transfers=[transfer(10)])
    assert decisions(evaluate_dose(facts, TODAY, KB)) == expected


@pytest.mark.parametrize("indications,hook,expected", INDICATION_SCOPE)
def test_scope_by_the_orders_indication(
    indications: tuple[str, ...], hook: str, expected: set[tuple[str, str, str]]
) -> None:
    facts = make_facts(hook, meds=[tacrolimus_for(indications)], transfers=[transfer(10)])
    cards = evaluate_dose(facts, TODAY, KB)
    assert decisions(cards) == expected
    for card in cards:
        assert_card_rules(card)


def test_an_order_for_another_indication_gets_no_protocol_card_at_all() -> None:
    facts = make_facts("order-select", meds=[tacrolimus_for(LUPUS)], transfers=[transfer(10)])
    kinds = {c.kind for c in evaluate(facts, TODAY, KB)}
    assert not kinds & {"eligibility", "timing", "care:administration"}


# --- 6. age outside the site's range: say so, and still warn above the studies' maximum ------------------

AGE_SCOPE = [
    pytest.param(
        date(1970, 6, 1),
        5,
        "order-select",
        {("dose", "warning", "above-study-maximum")},
        id="56 years, 5 mg/day: protocol not applied, above the studies' 4 mg/day",
    ),
    pytest.param(
        date(1970, 6, 1),
        5,
        "order-sign",
        {("dose", "warning", "above-study-maximum")},
        id="56 years, 5 mg/day at signing: still warned",
    ),
    pytest.param(
        date(1970, 6, 1),
        2,
        "order-select",
        {("dose", "info", "protocol-not-applied")},
        id="56 years, 2 mg/day: the protocol was not applied, and why",
    ),
    pytest.param(
        date(1971, 6, 1),
        5,
        "order-select",
        {("dose", "critical", "above-maximum")},
        id="55 years, 5 mg/day: in the protocol, critical",
    ),
]


@pytest.mark.parametrize("born,daily_mg,hook,expected", AGE_SCOPE)
def test_age_outside_the_site_range(
    born: date, daily_mg: float, hook: str, expected: set[tuple[str, str, str]]
) -> None:
    facts = make_facts(hook, meds=[draft(daily_mg, start=day(8))], transfers=[transfer(10)], birth_date=born)
    cards = evaluate_dose(facts, TODAY, KB)
    assert decisions(cards) == expected
    for card in cards:
        assert_card_rules(card)

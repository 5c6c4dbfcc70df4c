"""What the cards suggest ordering: new lab tests, a drug to prescribe, a changed medication order.

Pure functions deciding typed proposals (``cards.model``) from facts; the render step
(``service.hooks.orders``) writes the FHIR resources.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from .dosage import COUNT_UNITS
from .facts import DosageTiming, MedicationFact
from .knowledge_model import typed
from .knowledge_model.codes import Product
from .model import Action, Coding, MedicationProposal, OrderChange, ServiceRequestProposal
from .rules.vocab import EPSILON

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def lab_order(
    patient_id: str, code: str, display: str, reason: str, *, system: str = LOINC, priority: str | None = None
) -> ServiceRequestProposal:
    """A draft ServiceRequest for one lab test (LOINC unless ``system`` says otherwise)."""
    return ServiceRequestProposal(patient_id, system, code, display, reason, priority=priority)


def procedure_order(
    patient_id: str, system: str, code: str, display: str, reason: str, *, priority: str | None = None
) -> ServiceRequestProposal:
    """A draft ServiceRequest for a diagnostic procedure (e.g. an ECG)."""
    return ServiceRequestProposal(patient_id, system, code, display, reason, procedure=True, priority=priority)


STEP_MG = 0.5  # the smallest capsule: a per-dose amount is a whole number of these steps
_TIMES = {1: "once daily", 2: "twice daily", 3: "three times daily", 4: "four times daily"}

# When in the day a dose is taken, kept when a sig is rewritten: FHIR EventTiming codes in words, and
# the words of a sig that say the same (the protocol doses once daily after dinner).
WHEN_WORDS = {
    "PCV": "after dinner",
    "ACV": "before dinner",
    "CV": "with dinner",
    "PCM": "after breakfast",
    "ACM": "before breakfast",
    "CM": "with breakfast",
    "PCD": "after lunch",
    "ACD": "before lunch",
    "HS": "at bedtime",
    "MORN": "in the morning",
    "EVE": "in the evening",
    "NIGHT": "at night",
    "WAKE": "on waking",
    "C": "with a meal",
    "AC": "before meals",
    "PC": "after meals",
}
_TIMING_WORDS = re.compile(
    r"\b(after dinner|before dinner|with dinner|after breakfast|before breakfast|with breakfast|after lunch|"
    r"before lunch|at bedtime|at night|in the morning|in the evening|on waking|with food|without food|"
    r"on an empty stomach|with a meal|after meals|before meals|every \d+ hours)\b",
    re.IGNORECASE,
)
# The form a product's RxNorm dose form names, in the words of a sig.
_FORMS = (("granule", "granules"), ("tablet", "tablet"), ("capsule", "capsule"), ("suspension", "suspension"))
_COUNT_FORMS = {
    "{tbl}": "tablet",
    "{tab}": "tablet",
    "{tablet}": "tablet",
    "{tablets}": "tablet",
    "tablet": "tablet",
    "tablets": "tablet",
    "tab": "tablet",
    "tabs": "tablet",
    "{capsule}": "capsule",
    "{capsules}": "capsule",
    "{cap}": "capsule",
    "{caps}": "capsule",
    "capsule": "capsule",
    "capsules": "capsule",
    "cap": "capsule",
    "caps": "capsule",
}


def per_dose_step_below(daily_mg: float, doses_per_day: float) -> float:
    """The largest per-dose amount in 0.5 mg steps giving at most ``daily_mg`` a day (0 when none)."""
    return math.floor(daily_mg / doses_per_day / STEP_MG + EPSILON) * STEP_MG


def form_of(product: Product | None, unit: str | None = None, text: str = "") -> str | None:
    """ "capsule", "tablet", "granules" ...: from the product's dose form, else the dose unit, else words."""
    words = f"{product.dose_form or ''} {product.display}" if product else ""
    for source in (words, text):
        lowered = source.lower()
        for word, form in _FORMS:
            if word in lowered:
                return form
    return _COUNT_FORMS.get((unit or "").strip().lower())


def timing_words(timing: DosageTiming, once_daily: bool = True) -> str:
    """When in the day the doses are taken ("after dinner", "at 20:00"), from the structured timing (as
    arrays, as FHIR states it), else (for a once-daily order, where the words cannot contradict the
    frequency) from the words of the old sig; "" when neither says."""
    found: list[str] = []
    for code in timing.when if timing.when_listed else ():
        if code in WHEN_WORDS and WHEN_WORDS[code] not in found:
            found.append(WHEN_WORDS[code])
    for t in timing.time_of_day if timing.time_of_day_listed else ():
        if len(t) >= 5:
            found.append(f"at {t[:5]}")
    if not found and once_daily:
        old = " ".join((timing.text, timing.patient_instruction))
        for match in _TIMING_WORDS.finditer(old):
            words = match.group(0).lower()
            if words not in found:
                found.append(words)
    return " ".join(found)


def sig_text(
    per_dose_mg: float,
    doses_per_day: float,
    count: int | None = None,
    *,
    form: str | None = None,
    when: str = "",
    strength_mg: float | None = None,
) -> str:
    """ "2 capsules of 0.5 mg (1 mg) by mouth once daily after dinner (1 mg/day)": the dose, the product's
    form and the timing words, to replace an order's old text."""
    n = int(round(doses_per_day))
    times = _TIMES.get(n, f"{fmt(doses_per_day)} times daily")
    amount = f"{fmt(per_dose_mg)} mg"
    if form and form != "granules":
        units = count if count is not None else (round(per_dose_mg / strength_mg) if strength_mg else None)
        if units is not None:
            of = f" of {fmt(strength_mg)} mg" if strength_mg and units != 1 else ""
            amount = f"{units} {form}{'s' if units != 1 else ''}{of} ({amount})"
        else:
            amount = f"{amount} {form}s" if form != "suspension" else f"{amount} oral suspension"
    elif form == "granules":
        amount = f"{amount} granules"
    timing = f" {when}" if when else ""
    return f"{amount} by mouth {times}{timing} ({fmt(per_dose_mg * doses_per_day)} mg/day)"


@dataclass(frozen=True)
class OrderContext:
    """What every suggested order is built against: the clinic's date and the product table."""

    today: date | None
    products: Sequence[Product] = ()


def products_of(kb: Mapping[str, Any]) -> Sequence[Product]:
    """The product table of the knowledge base (RxNorm SCD/SBD codes with strength, form, release)."""
    return typed(kb).codes.products


@dataclass(frozen=True)
class BuiltOrder:
    """A suggested change of a MedicationRequest, or why none can be written (for the card to say)."""

    change: OrderChange | None
    problem: str | None = None
    product: Product | None = None  # the product switched to, when the strength needed it


def _whole(value: float) -> bool:
    return abs(value - round(value)) <= 1e-6 and round(value) >= 1


def _product_of(med: MedicationFact, products: Sequence[Product]) -> Product | None:
    matched = (med.matched or "").removeprefix("RxNorm ").strip()
    return next((p for p in products if p.rxnorm == matched), None)


def _form_words(product: Product) -> str:
    return (product.dose_form or "").lower()


def _strength(product: Product) -> float:
    return product.strength_mg or 0.0


def _smaller_product(
    med: MedicationFact, current: Product | None, per_dose_mg: float, products: Sequence[Product]
) -> Product | None:
    """The product of the same ingredient, dose form and release with the largest strength that gives
    ``per_dose_mg`` in whole units (the 0.5 mg capsule for 1.5 mg of a 1 mg capsule order)."""
    if current is None or not current.dose_form:
        return None
    ingredients, release, form = set(med.ingredients), current.release, _form_words(current)
    # The cheapest tests first: most of the table differs in release or strength.
    fits = [
        p
        for p in products
        if p.release == release
        and p.strength_mg is not None
        and _form_words(p) == form
        and set(p.ingredients) == ingredients
        and _whole(per_dose_mg / p.strength_mg)
    ]
    brand = _brand(current)
    # The largest strength that fits; of equal strengths the same brand ([Prograf] stays Prograf), then a generic.
    return max(fits, key=lambda p: (_strength(p), _brand(p) == brand, _brand(p) == "")) if fits else None


def _brand(product: Product) -> str:
    """ "Prograf" for "tacrolimus 1 MG Oral Capsule [Prograf]"; "" for a generic product."""
    found = re.search(r"\[([^\]]+)\]", product.display)
    return found.group(1) if found else ""


def build_order(
    med: MedicationFact,
    today: date | None,
    *,
    daily_mg: float | None = None,
    start: date | None = None,
    end: date | None = None,
    products: Sequence[Product] = (),
) -> BuiltOrder:
    """The one decision of a suggested MedicationRequest change; the render step (``service.hooks.orders``)
    applies it to the order. Whatever the change, the result:

    - is a fresh draft when it replaces an order she takes (no id, business identifier, order date or
      narrative copied; ``priorPrescription`` names the order it replaces); a draft of this session is
      updated in place;
    - starts today or later (a ``boundsPeriod.start`` in the past moves to ``today``);
    - gives a dose per administration the product can give: a whole number of 0.5 mg steps and of the
      product's units; when the product cannot (0.5 mg of a 1 mg capsule) it is switched to the product
      of the same form and release that can, or no order is written and ``problem`` says to change the
      product by hand;
    - carries a sig text naming the dose and the product's form and keeping the timing words
      ("after dinner"), so the order never holds the old dose in words beside the new one in numbers.
    """
    if not med.key:
        return BuiltOrder(None, "the order's content is not available")
    if not med.instructions_rewritable:
        return BuiltOrder(None, "the order has no dosage instruction to rewrite")
    product = _product_of(med, products)
    switched: Product | None = None
    dose: int | float | None = None
    sigs: tuple[str, ...] = ()
    if daily_mg is not None:
        if med.doses_per_day is None or med.doses_per_day <= 0:
            return BuiltOrder(None, "the order does not say how often it is taken")
        if med.dose_quantities != 1:
            return BuiltOrder(None, "the order has more than one dose")
        per_dose = daily_mg / med.doses_per_day
        if not _whole(per_dose / STEP_MG):
            return BuiltOrder(None, f"{fmt(per_dose)} mg per dose is not a whole number of 0.5 mg capsules")
        strength = med.strength_mg
        concept_text = med.concept_text
        if strength and not _whole(per_dose / strength):
            switched = _smaller_product(med, product, per_dose, products)
            if switched is None or med.by_reference:
                return BuiltOrder(
                    None,
                    f"the {fmt(strength)} mg product cannot give {fmt(per_dose)} mg per dose: "
                    "change the product by hand",
                )
            strength = _strength(switched)
            concept_text = switched.display
            product = switched
        unit = med.dose_unit
        count: int | None = None
        if unit.lower() == "mg":
            dose = _tidy(per_dose)
        elif unit in COUNT_UNITS and strength:
            count = int(round(per_dose / strength))
            dose = count
        else:
            return BuiltOrder(None, "the dose unit cannot be rewritten")
        form = form_of(product, unit, concept_text)
        sigs = tuple(
            sig_text(
                per_dose,
                med.doses_per_day,
                count,
                form=form,
                when=timing_words(timing, med.doses_per_day == 1),
                strength_mg=strength if form else None,
            )
            for timing in med.dosage_timings
        )
    if not med.timing_rewritable:
        return BuiltOrder(None, "the order's timing cannot be rewritten")
    change = OrderChange(
        order=med.key,
        today=today,
        dose=dose,
        sigs=sigs,
        product=Coding(RXNORM, switched.rxnorm, switched.display) if switched else None,
        start=start,
        end=end if start is not None else None,
        replaces=None if med.is_draft or med.status == "draft" else med.source,
        reference=med.reference,
    )
    return BuiltOrder(change, None, switched)


def with_daily_dose(
    med: MedicationFact, daily_mg: float, *, today: date | None = None, products: Sequence[Product] = ()
) -> OrderChange | None:
    """The order at ``daily_mg`` a day (see ``build_order``); None when it cannot be written."""
    return build_order(med, today, daily_mg=daily_mg, products=products).change


def dose_change(
    med: MedicationFact,
    daily_mg: float,
    description: str,
    *,
    today: date | None = None,
    products: Sequence[Product] = (),
) -> Action | None:
    """The action that changes a tacrolimus order to ``daily_mg`` a day.

    A draft is updated. An active order is not: many EHRs accept updates only to drafts, so a new
    draft replacing it is created (``priorPrescription`` = the active order). None when the dose
    cannot be written (see ``build_order``).
    """
    built = build_order(med, today, daily_mg=daily_mg, products=products)
    if built.change is None:
        return None
    if built.product is not None:
        description += f" with {built.product.display}"
    if med.is_draft or med.status == "draft":
        return Action(type="update", description=description, resource=built.change)
    return Action(
        type="create", description=f"{description} (new order replacing the active one)", resource=built.change
    )


def fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def with_timing(med: MedicationFact, start: str, end: str | None) -> OrderChange | None:
    """The order with only ``timing.repeat.boundsPeriod`` changed (``build_order``)."""
    return build_order(med, None, start=date.fromisoformat(start), end=date.fromisoformat(end) if end else None).change


def with_repeat(order: ServiceRequestProposal, every_days: tuple[float, float], count: int) -> ServiceRequestProposal:
    """The lab order repeated ``count`` times, one draw every ``every_days`` (min, max) days."""
    return replace(order, repeat_count=count, every_days=every_days)


def draft_medication_request(patient_id: str, rxnorm: str, display: str) -> MedicationProposal:
    """A draft MedicationRequest naming only the drug (RxNorm), for the prescriber to complete."""
    return MedicationProposal(patient_id, rxnorm, display)

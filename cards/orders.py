"""FHIR resources the cards suggest: new lab orders and a changed medication order.

Pure functions: they build resource dicts for suggestion actions and never change their input.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from .dosage import COUNT_UNITS
from .facts import MedicationFact
from .model import Action, MedicationProposal, ServiceRequestProposal
from .rules.vocab import EPSILON

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MG_UCUM = {"system": "http://unitsofmeasure.org", "code": "mg", "unit": "mg"}


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


# MedicationRequest elements that FHIR R4 defines as arrays; real clients send some as single objects.
_ARRAY_ELEMENTS = (
    "identifier",
    "category",
    "dosageInstruction",
    "reasonCode",
    "reasonReference",
    "note",
    "basedOn",
    "insurance",
    "supportingInformation",
    "detectedIssue",
    "eventHistory",
)
_DOSAGE_ARRAY_ELEMENTS = ("doseAndRate", "additionalInstruction")


def _as_valid_arrays(resource: dict[str, Any]) -> dict[str, Any]:
    """Wrap array elements sent as single objects, so a suggested update is valid FHIR R4.

    The clinical content is unchanged; only the JSON shape a lenient reader accepted is repaired.
    """
    for name in _ARRAY_ELEMENTS:
        if isinstance(resource.get(name), dict):
            resource[name] = [resource[name]]
    for instruction in _instructions(resource):
        if isinstance(instruction, dict):
            for name in _DOSAGE_ARRAY_ELEMENTS:
                if isinstance(instruction.get(name), dict):
                    instruction[name] = [instruction[name]]
    return resource


def _instructions(resource: Mapping[str, Any]) -> list[Any]:
    """``dosageInstruction`` as a list; anything else a client sent there (a number, true) is none."""
    value = resource.get("dosageInstruction")
    return value if isinstance(value, list) else []


def _dose_quantities(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every doseQuantity object of the order, tolerating doseAndRate as an object."""
    found: list[dict[str, Any]] = []
    for instruction in _instructions(resource):
        if not isinstance(instruction, dict):
            continue
        dose_and_rate = instruction.get("doseAndRate")
        items = dose_and_rate if isinstance(dose_and_rate, list) else [dose_and_rate]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("doseQuantity"), dict):
                found.append(item["doseQuantity"])
    return found


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


def form_of(product: Mapping[str, Any] | None, unit: str | None = None, text: str = "") -> str | None:
    """ "capsule", "tablet", "granules" ...: from the product's dose form, else the dose unit, else words."""
    words = " ".join(str(product.get(k) or "") for k in ("dose_form", "display")) if product else ""
    for source in (words, text):
        lowered = source.lower()
        for word, form in _FORMS:
            if word in lowered:
                return form
    return _COUNT_FORMS.get((unit or "").strip().lower())


def timing_words(instruction: Mapping[str, Any], once_daily: bool = True) -> str:
    """When in the day the doses are taken ("after dinner", "at 20:00"), from the structured timing,
    else (for a once-daily order, where the words cannot contradict the frequency) from the words of the
    old sig; "" when neither says."""
    repeat = instruction.get("timing", {}).get("repeat", {}) if isinstance(instruction.get("timing"), dict) else {}
    repeat = repeat if isinstance(repeat, dict) else {}
    found: list[str] = []
    whens = repeat.get("when")
    for code in whens if isinstance(whens, list) else []:
        if isinstance(code, str) and code in WHEN_WORDS and WHEN_WORDS[code] not in found:
            found.append(WHEN_WORDS[code])
    times = repeat.get("timeOfDay")
    for t in times if isinstance(times, list) else []:
        if isinstance(t, str) and len(t) >= 5:
            found.append(f"at {t[:5]}")
    if not found and once_daily:
        old = " ".join(str(instruction.get(k) or "") for k in ("text", "patientInstruction"))
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
    products: Sequence[Mapping[str, Any]] = ()


def products_of(kb: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The product table of the knowledge base (RxNorm SCD/SBD codes with strength, form, release)."""
    codes = kb.get("codes") or {}
    products = codes.get("products") if isinstance(codes, Mapping) else None
    return tuple(products) if isinstance(products, list) else ()


@dataclass(frozen=True)
class BuiltOrder:
    """A suggested MedicationRequest, or why none can be written (for the card to say)."""

    resource: dict[str, Any] | None
    problem: str | None = None
    product: Mapping[str, Any] | None = None  # the product switched to, when the strength needed it


def _whole(value: float) -> bool:
    return abs(value - round(value)) <= 1e-6 and round(value) >= 1


def _product_of(med: MedicationFact, products: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    matched = (med.matched or "").removeprefix("RxNorm ").strip()
    return next((p for p in products if str(p.get("rxnorm")) == matched), None)


def _form_words(product: Mapping[str, Any] | None) -> str:
    return str((product or {}).get("dose_form") or "").lower()


def _smaller_product(
    med: MedicationFact, current: Mapping[str, Any] | None, per_dose_mg: float, products: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The product of the same ingredient, dose form and release with the largest strength that gives
    ``per_dose_mg`` in whole units (the 0.5 mg capsule for 1.5 mg of a 1 mg capsule order)."""
    if current is None or not current.get("dose_form"):
        return None
    fits = [
        p
        for p in products
        if set(p.get("ingredients") or ()) == set(med.ingredients)
        and p.get("release") == current.get("release")
        and _form_words(p) == _form_words(current)
        and isinstance(p.get("strength_mg"), (int, float))
        and _whole(per_dose_mg / float(p["strength_mg"]))
    ]
    brand = _brand(current)
    # The largest strength that fits; of equal strengths the same brand ([Prograf] stays Prograf), then a generic.
    return max(fits, key=lambda p: (float(p["strength_mg"]), _brand(p) == brand, _brand(p) == "")) if fits else None


def _brand(product: Mapping[str, Any]) -> str:
    """ "Prograf" for "tacrolimus 1 MG Oral Capsule [Prograf]"; "" for a generic product."""
    found = re.search(r"\[([^\]]+)\]", str(product.get("display") or ""))
    return found.group(1) if found else ""


def build_order(
    med: MedicationFact,
    today: date | None,
    *,
    daily_mg: float | None = None,
    start: date | None = None,
    end: date | None = None,
    products: Sequence[Mapping[str, Any]] = (),
) -> BuiltOrder:
    """The one builder of suggested MedicationRequests. Whatever the change, the result:

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
    if not med.resource:
        return BuiltOrder(None, "the order's content is not available")
    resource = _as_valid_arrays(copy.deepcopy(dict(med.resource)))
    instructions = resource.get("dosageInstruction")
    if not isinstance(instructions, list) or not instructions or not all(isinstance(i, dict) for i in instructions):
        return BuiltOrder(None, "the order has no dosage instruction to rewrite")
    product = _product_of(med, products)
    switched: Mapping[str, Any] | None = None
    if daily_mg is not None:
        if med.doses_per_day is None or med.doses_per_day <= 0:
            return BuiltOrder(None, "the order does not say how often it is taken")
        quantities = _dose_quantities(resource)
        if len(quantities) != 1:
            return BuiltOrder(None, "the order has more than one dose")
        per_dose = daily_mg / med.doses_per_day
        if not _whole(per_dose / STEP_MG):
            return BuiltOrder(None, f"{fmt(per_dose)} mg per dose is not a whole number of 0.5 mg capsules")
        strength = med.strength_mg
        if strength and not _whole(per_dose / strength):
            switched = _smaller_product(med, product, per_dose, products)
            if switched is None or isinstance(resource.get("medicationReference"), dict):
                return BuiltOrder(
                    None,
                    f"the {fmt(strength)} mg product cannot give {fmt(per_dose)} mg per dose: "
                    "change the product by hand",
                )
            strength = float(switched["strength_mg"])
            display = str(switched["display"])
            resource["medicationCodeableConcept"] = {
                "coding": [{"system": RXNORM, "code": str(switched["rxnorm"]), "display": display}],
                "text": display,
            }
            product = switched
        quantity = quantities[0]
        unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
        count: int | None = None
        if unit.lower() == "mg":
            quantity["value"] = _tidy(per_dose)
        elif unit in COUNT_UNITS and strength:
            count = int(round(per_dose / strength))
            quantity["value"] = count
        else:
            return BuiltOrder(None, "the dose unit cannot be rewritten")
        form = form_of(
            product,
            unit,
            str(resource.get("medicationCodeableConcept", {}).get("text") or "")
            if isinstance(resource.get("medicationCodeableConcept"), dict)
            else "",
        )
        for instruction in instructions:
            text = sig_text(
                per_dose,
                med.doses_per_day,
                count,
                form=form,
                when=timing_words(instruction, med.doses_per_day == 1),
                strength_mg=strength if form else None,
            )
            instruction["text"] = text
            if "patientInstruction" in instruction:
                instruction["patientInstruction"] = "Take " + text
    for instruction in instructions:
        timing = instruction.setdefault("timing", {})
        repeat = timing.setdefault("repeat", {}) if isinstance(timing, dict) else None
        if not isinstance(repeat, dict):
            return BuiltOrder(None, "the order's timing cannot be rewritten")
        bounds = repeat.get("boundsPeriod") if isinstance(repeat.get("boundsPeriod"), dict) else None
        if start is not None:
            repeat.pop("boundsDuration", None)
            repeat["boundsPeriod"] = {"start": start.isoformat(), **({"end": end.isoformat()} if end else {})}
        elif bounds is not None and today is not None and str(bounds.get("start") or "9999")[:10] < today.isoformat():
            bounds["start"] = today.isoformat()  # a suggested order never starts in the past
            if str(bounds.get("end") or "9999")[:10] < today.isoformat():
                bounds.pop("end", None)
    if not (med.is_draft or med.status == "draft"):
        for element in ("id", "meta", "identifier", "authoredOn", "text"):
            resource.pop(element, None)
        resource["status"] = "draft"
        resource["priorPrescription"] = {"reference": med.source}
    return BuiltOrder(resource, None, switched)


def with_daily_dose(
    med: MedicationFact, daily_mg: float, *, today: date | None = None, products: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any] | None:
    """The order at ``daily_mg`` a day (see ``build_order``); None when it cannot be written."""
    return build_order(med, today, daily_mg=daily_mg, products=products).resource


def dose_change(
    med: MedicationFact,
    daily_mg: float,
    description: str,
    *,
    today: date | None = None,
    products: Sequence[Mapping[str, Any]] = (),
) -> Action | None:
    """The action that changes a tacrolimus order to ``daily_mg`` a day.

    A draft is updated. An active order is not: many EHRs accept updates only to drafts, so a new
    draft replacing it is created (``priorPrescription`` = the active order). None when the dose
    cannot be written (see ``build_order``).
    """
    built = build_order(med, today, daily_mg=daily_mg, products=products)
    if built.resource is None:
        return None
    if built.product is not None:
        description += f" with {built.product['display']}"
    if med.is_draft or med.status == "draft":
        return Action(type="update", description=description, resource=built.resource)
    return Action(
        type="create", description=f"{description} (new order replacing the active one)", resource=built.resource
    )


def replacement(create: Action, delete_id: str, description: str) -> tuple[Action, Action]:
    """Replace one order by another: the ``create`` first, then the ``delete`` (a client that stops
    at the first delete still gets the new order)."""
    return create, Action(type="delete", description=description, resource_id=delete_id)


def fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def with_timing(med: MedicationFact, start: str, end: str | None) -> dict[str, Any] | None:
    """The whole MedicationRequest with only ``timing.repeat.boundsPeriod`` changed (``build_order``)."""
    return build_order(
        med, None, start=date.fromisoformat(start), end=date.fromisoformat(end) if end else None
    ).resource


def reference_of(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if rid else None


def with_repeat(order: ServiceRequestProposal, every_days: tuple[float, float], count: int) -> ServiceRequestProposal:
    """The lab order repeated ``count`` times, one draw every ``every_days`` (min, max) days."""
    return replace(order, repeat_count=count, every_days=every_days)


def draft_medication_request(patient_id: str, rxnorm: str, display: str) -> MedicationProposal:
    """A draft MedicationRequest naming only the drug (RxNorm), for the prescriber to complete."""
    return MedicationProposal(patient_id, rxnorm, display)

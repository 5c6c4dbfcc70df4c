"""MedicationRequests of the usual shape, read without the lenient accessors.

Nearly every order arrives as one shape: a string status, a medicationCodeableConcept of clean codings
(or a medicationReference), dosageInstructions that are objects each with one plain doseQuantity and a
plain Timing.repeat. For that shape the lenient reading (``medications.MedicationReader``) spends most
of its time in its accessors; this reader reads the drug's codings and texts and each dose's number,
unit, frequency and period directly, then calls the same stages the lenient path calls
(``medication_status``, ``_identify``, ``dose_mg``, ``repeat_per_day``, ``not_one_schedule``,
``daily_total``, ``_record``: drug recognition, dose arithmetic, plausibility, course dates and
length, route), so the lenient path stays the one definition of what an order means. Anything else it
declines before it has changed anything, and the lenient path reads the order.
tests/test_extract_typed.py runs every fixture and a generated set of shapes through both and requires
identical facts and cards.
"""

from __future__ import annotations

import functools
import math
from datetime import date
from typing import Any, Literal

from cards.facts import DosageTiming
from service.hooks.extract.common import _blank_medication, _codings, _ref_of, _texts, _Unusable
from service.hooks.extract.dosage import (
    Reading,
    _iso_day,
    _obj,
    _plain_repeat,
    _says_single_dose,
    daily_total,
    dose_mg,
    doses_per_day,
    duration_days,
    not_one_schedule,
    number,
    repeat_per_day,
)
from service.hooks.extract.medications import MedicationReader, _Period, medication_status, order_references

# A dose read plainly: (amount, code, unit, (doses per day, why unknown)).
_Dose = tuple[float, str | None, str | None, tuple[float | None, str | None]]

# Larger integers are declined: ``float`` of a huge JSON integer raises where the lenient path words it.
_LARGEST_PLAIN_INT = 2**53


def _usual_concept(mcc: Any) -> tuple[list[dict[str, Any]], list[str], str] | None:
    """(codings, texts, display) of a medicationCodeableConcept whose codings all carry a string system
    and a non-empty string code (a string display or none) and whose text is a string or absent, as
    ``_drug_of``, ``_codings`` and ``_texts`` read it; None for any other shape."""
    if type(mcc) is not dict:
        return None
    text = mcc.get("text")
    if text is not None and type(text) is not str:
        return None
    codings = mcc.get("coding")
    if codings is None:
        codings = []
    elif type(codings) is not list:
        return None
    if not codings and not text:
        return None  # the lenient path looks for a medicationReference, or words the missing drug
    texts = [text] if text is not None else []
    for coding in codings:
        if type(coding) is not dict:
            return None
        system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
        if type(system) is not str or type(code) is not str or not code:
            return None
        if display is not None:
            if type(display) is not str:
                return None
            texts.append(display)
    return codings, texts, texts[0] if texts else ""


def _usual_dose(dosage: Any) -> _Dose | None:
    """The plain dose of one dosageInstruction: an object not taken as needed, whose first doseQuantity
    (among doseAndRate objects) has a finite number and a string code or unit or neither, and whose
    Timing has a repeat with no range and plainly valid frequency, period and periodUnit
    (``_plain_repeat``) that says how often (``repeat_per_day``); None for any other shape."""
    if type(dosage) is not dict or "asNeededBoolean" in dosage or "asNeededCodeableConcept" in dosage:
        return None
    timing = dosage.get("timing")
    if type(timing) is not dict:
        return None
    repeat = timing.get("repeat")
    if type(repeat) is not dict or "frequencyMax" in repeat or "periodMax" in repeat:
        return None
    plain = _plain_repeat(repeat)
    if plain is None:
        return None
    try:
        per_day = repeat_per_day(*plain, repeat)
    except ArithmeticError:
        return None  # a period so small its days underflow: the lenient path reports it
    if per_day is None:
        return None  # the repeat does not say how often (a Timing.code may): the lenient path reads it
    entries = dosage.get("doseAndRate")
    if type(entries) is not list:
        return None
    quantity = None
    for entry in entries:
        if type(entry) is not dict:
            return None
        if quantity is None and type(entry.get("doseQuantity")) is dict:
            quantity = entry["doseQuantity"]
    if quantity is None:
        return None
    value, code, unit = quantity.get("value"), quantity.get("code"), quantity.get("unit")
    if type(value) is int:
        if abs(value) > _LARGEST_PLAIN_INT:
            return None
    elif type(value) is not float or not math.isfinite(value):
        return None
    if (code is not None and type(code) is not str) or (unit is not None and type(unit) is not str):
        return None
    return float(value), code, unit, per_day


@functools.lru_cache(maxsize=4096)
def _dosage_timing(
    times: tuple[str, ...] | None, whens: tuple[str, ...] | None, text: str, patient_instruction: str
) -> DosageTiming:
    """The ``DosageTiming`` of an instruction's timeOfDay and when (lists of strings, or None when
    absent) and its sig: worked out once per spelling, as a patient's orders come back call after call
    with the same sigs (the frozen value is shared, never changed)."""
    return DosageTiming(
        time_of_day=() if times is None else times,
        when=() if whens is None else whens,
        text=text,
        patient_instruction=patient_instruction,
        time_of_day_listed=times is not None,
        when_listed=whens is not None,
    )


def _usual_shape(res: dict[str, Any], instructions: list[dict[str, Any]]) -> dict[str, Any]:
    """``order_shape`` of an order taken by ``_usual_medication``, in one pass over its instructions:
    each is an object whose timing and repeat are objects (timeOfDay and when absent or lists of
    strings) and whose doseAndRate is a list of objects, at least one with a doseQuantity object, so
    the checks the lenient reading makes of each of these are already answered."""
    days: int | None = None
    course_found = False
    quantities = 0
    dose_unit = ""
    timings: list[DosageTiming] = []
    for dosage in instructions:
        timing = dosage["timing"]
        repeat = timing["repeat"]
        if not course_found:
            # ``structured_course_days``: the first instruction that says how long the course runs.
            bounds = repeat.get("boundsPeriod")
            start = end = None
            if isinstance(bounds, dict):
                start, end = _iso_day(bounds.get("start")), _iso_day(bounds.get("end"))
            if start is not None and end is not None and end >= start:
                days, course_found = (end - start).days + 1, True
            else:
                duration, count = repeat.get("boundsDuration"), repeat.get("count")
                days = None if duration is None else duration_days(duration)[0]
                course_found = days is not None
                count = None if course_found or count is None else number(count)
                if count is not None and count >= 1:
                    per_day, _ = doses_per_day(timing)
                    if count == 1:
                        days, course_found = 1, True
                    elif per_day:
                        days, course_found = max(1, math.ceil(count / per_day)), True
        for entry in dosage["doseAndRate"]:
            quantity = entry.get("doseQuantity")
            if isinstance(quantity, dict):
                if not quantities:
                    dose_unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
                quantities += 1
        times, whens = repeat.get("timeOfDay"), repeat.get("when")
        timings.append(
            _dosage_timing(
                None if times is None else tuple(times),
                None if whens is None else tuple(whens),
                str(dosage.get("text") or ""),
                str(dosage.get("patientInstruction") or ""),
            )
        )
    if not course_found:
        days, _ = duration_days(_obj(res.get("dispenseRequest")).get("expectedSupplyDuration"))
    concept = res.get("medicationCodeableConcept")
    return {
        **order_references(res),
        "has_dosage_instruction": True,
        # Every coding of a concept taken carries a non-empty code.
        "coded": isinstance(concept, dict) and bool(concept.get("coding")),
        "course_days": days,
        "single_dose": _usual_single_dose(res, instructions, days),
        "dosage_timings": tuple(timings),
        "instructions_rewritable": True,
        "dose_quantities": quantities,
        "dose_unit": dose_unit,
        "by_reference": isinstance(res.get("medicationReference"), dict),
        "concept_text": str(concept.get("text") or "") if isinstance(concept, dict) else "",
        "timing_rewritable": True,
    }


def _usual_single_dose(res: dict[str, Any], instructions: list[dict[str, Any]], days: int | None) -> bool:
    """``single_dose`` of an order taken by ``_usual_medication`` (its instructions all objects)."""
    if days is not None:
        return days <= 1
    repeats = number(_obj(res.get("dispenseRequest")).get("numberOfRepeatsAllowed"))
    if repeats is not None and repeats > 0:
        return False
    for dosage in instructions:
        if _says_single_dose(str(dosage.get("text") or "")) or _says_single_dose(
            str(dosage.get("patientInstruction") or "")
        ):
            return True
    return False


class UsualMedicationReader(MedicationReader):
    """The lenient medication reader, with MedicationRequests of the usual shape taken first."""

    # Take the usual shape by ``_usual_medication`` (False: every order by the lenient path, as the
    # differential test compares them).
    typed_medications = True

    def _medication(self, res: dict[str, Any], draft: bool) -> None:
        if self.typed_medications and self._usual_medication(res, draft):
            return
        super()._medication(res, draft)

    def _usual_medication(self, res: dict[str, Any], draft: bool) -> bool:
        """Read a MedicationRequest of the usual shape; False (nothing read) for the lenient path."""
        if res.get("resourceType") != "MedicationRequest":
            return False
        status = res.get("status")
        if type(status) is not str or not status:
            return False
        decided = medication_status(res, "MedicationRequest", draft)
        if decided is None:
            return True  # a status this service does not read: skipped, as the lenient path skips it
        if "doNotPerform" in res or (draft and _blank_medication(res)):
            return False
        drug = self._usual_drug(res)
        if drug is None:
            return False
        codings, texts, display = drug
        instructions = res.get("dosageInstruction")
        if type(instructions) is not list or not instructions:
            return False
        doses = []
        for dosage in instructions:
            dose = _usual_dose(dosage)
            if dose is None:
                return False
            doses.append(dose)
        # Nothing read so far; from here on the order is read, by the lenient path's own stages.
        source = _ref_of(res)
        recognised, display, strength, release = self._identify(res, draft, source, codings, texts, display)
        product_code = recognised.product_code
        problem = not_one_schedule(instructions)
        if problem:
            daily: tuple[float | None, float | None, str | None] = (None, None, problem)
        else:
            # Read at once, not lazily as the lenient path does: each reading is pure and cannot fail
            # for the shapes taken, so the first one with a problem still decides.
            readings: list[Reading] = [
                (dose_mg(amount, code, unit, strength, product_code), per_day) for amount, code, unit, per_day in doses
            ]
            daily = daily_total(readings, len(instructions), self._dose_ceiling(recognised))
        self._record(
            res, "MedicationRequest", draft, decided, source, recognised, display, strength, release, daily,
            instructions, texts, _usual_shape(res, instructions), self._usual_period(res, instructions, source),
        )  # fmt: skip
        return True

    def _usual_period(self, res: dict[str, Any], instructions: list[dict[str, Any]], source: str) -> _Period:
        """``_period`` of an order taken by ``_usual_medication`` (each instruction an object whose
        timing and repeat are objects); an absent duration is none, with nothing to report."""
        start: date | None = None
        end: date | None = None
        duration: int | None = None
        for dosage in instructions:
            repeat = dosage["timing"]["repeat"]
            bounds = repeat.get("boundsPeriod")
            if isinstance(bounds, dict) and start is None and end is None:
                # The first instruction with bounds gives the course (a later one continues it).
                start = self._date(bounds.get("start"), source, "boundsPeriod.start")
                end = self._date(bounds.get("end"), source, "boundsPeriod.end")
            if duration is None and repeat.get("boundsDuration") is not None:
                duration = self._duration(repeat["boundsDuration"], source, "boundsDuration")
        if start is not None:
            start_from: Literal["boundsPeriod", "authoredOn"] | None = "boundsPeriod"
        else:
            start = self._date(res.get("authoredOn"), source, "authoredOn")
            start_from = "authoredOn" if start else None
        if duration is None and isinstance(res.get("dispenseRequest"), dict):
            duration = self._duration(
                res["dispenseRequest"].get("expectedSupplyDuration"), source, "dispenseRequest.expectedSupplyDuration"
            )
        return start, start_from, end, duration

    def _usual_drug(self, res: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], str] | None:
        """(codings, texts, display) of the drug: a clean medicationCodeableConcept read directly; a
        medicationReference alone by the lenient path's own ``_drug_of``; None to decline."""
        if "medicationCodeableConcept" in res:
            if "medicationReference" in res:
                return None
            return _usual_concept(res["medicationCodeableConcept"])
        if type(res.get("medicationReference")) is not dict:
            return None
        try:
            concepts, display, fallback_texts = self._drug_of(res)
        except _Unusable:
            return None  # the lenient path words it
        return _codings(concepts), _texts(concepts) + fallback_texts, display

"""Reading FHIR Dosage and Timing elements: how many mg a day an order gives (or why that cannot be
told), how long its course runs, whether it is one dose, and when in the day each dose is taken. JSON in,
typed values out, for ``MedicationFact``; the rules never see the Dosage itself. The count units come
from ``cards.dosage``, so a dose read in capsules can also be rewritten in capsules.

A dose the arithmetic cannot compute is reported unknown with the reason, never guessed.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from fhir.resources.R4B.timing import TimingRepeat
from pydantic import ValidationError

from cards.dosage import TIME_OF_DAY, is_count_unit
from cards.facts import DosageTiming
from cards.units import normalise_unit, to_canonical

# Longest course a duration may state: ten years. Anything longer is a data error, and adding it to a
# date could overflow in the rules.
MAX_DURATION_DAYS = 3650
# Days per period unit. Only h, d and wk: a monthly or yearly schedule has no honest mg/day.
PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0}
DURATION_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}
# HL7 v3 GTSAbbreviation timing codes (Timing.code) whose doses per day are fixed by definition.
TIMING_CODES_PER_DAY = {
    "QD": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "AM": 1.0,
    "PM": 1.0,
    "QOD": 0.5,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "Q12H": 2.0,
    "Q24H": 1.0,
}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _as_list(value) if isinstance(v, dict)]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric string; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def fmt(value: float) -> str:
    return f"{value:g}"


def duration_days(value: Any) -> tuple[int | None, str | None]:
    """(days, why unusable) of a Duration; (None, None) when absent or not in days/weeks."""
    if not isinstance(value, dict):
        return None, None
    amount = number(value.get("value"))
    unit = value.get("code") or value.get("unit")
    factor = DURATION_DAYS.get(str(unit).strip().lower()) if unit else None
    if amount is None or factor is None:
        return None, None
    days = amount * factor
    if not math.isfinite(days) or days > MAX_DURATION_DAYS:
        return None, f"{fmt(amount)} {unit} is longer than {MAX_DURATION_DAYS} days; duration ignored"
    if days <= 0:
        return None, f"{fmt(amount)} {unit} is not a positive duration; duration ignored"
    return int(round(days)), None


# The values of Timing.repeat that are valid FHIR beyond doubt, read without building the FHIR model.
# Anything else (a numeric string, a boolean, an unusual code) goes through the model, which decides
# whether it is valid and says why not.
_MAX_POSITIVE_INT = 2_147_483_647
_UNITS_OF_TIME = frozenset({"s", "min", "h", "d", "wk", "mo", "a"})
_WHEN = re.compile(r"[A-Za-z0-9.-]+")


def _plain_repeat(repeat: Mapping[str, Any]) -> tuple[int | None, float | None, str | None] | None:
    """(frequency, period, periodUnit) of a Timing.repeat whose values are plainly valid FHIR, with
    what the FHIR model would give for them; None when the model must judge."""
    frequency = repeat.get("frequency")
    if frequency is not None and not (type(frequency) is int and 1 <= frequency <= _MAX_POSITIVE_INT):
        return None
    period = repeat.get("period")
    if period is not None and not (type(period) in (int, float) and math.isfinite(period)):
        return None
    unit = repeat.get("periodUnit")
    if unit is not None and not (type(unit) is str and unit in _UNITS_OF_TIME):
        return None
    for key, pattern in (("timeOfDay", TIME_OF_DAY), ("when", _WHEN)):
        values = repeat.get(key)
        if values is not None and not (
            type(values) is list and all(type(v) is str and pattern.fullmatch(v) for v in values)
        ):
            return None
    return frequency, (float(period) if period is not None else None), unit


def doses_per_day(timing: Any) -> tuple[float | None, str | None]:
    """Doses per day from Timing.repeat (frequency per period periodUnit), else a Timing.code."""
    if not isinstance(timing, dict):
        return None, "no timing"
    repeat = timing.get("repeat")
    if isinstance(repeat, dict):
        ranged = [k for k in ("frequencyMax", "periodMax") if repeat.get(k) is not None]
        if ranged:
            # "1-2 times a day" or "every 8-12 hours": the lower end is not the dose taken.
            return None, f"timing gives a range ({', '.join(ranged)})"
        relied_on = {k: repeat[k] for k in ("frequency", "period", "periodUnit", "timeOfDay", "when") if k in repeat}
        plain = _plain_repeat(relied_on)
        if plain is not None:
            frequency, period, unit = plain
        else:
            try:
                checked = TimingRepeat.model_validate(relied_on)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                return None, f"timing.repeat.{where} is not valid FHIR ({first['msg']})"
            frequency, unit = checked.frequency, checked.periodUnit
            period = float(checked.period) if checked.period is not None else None
        said = repeat_per_day(frequency, period, unit, repeat)
        if said is not None:
            return said
    for cc in _dicts(timing.get("code")):
        for coding in _dicts(cc.get("coding")):
            per_day = TIMING_CODES_PER_DAY.get(str(coding.get("code")).upper())
            if per_day is not None:
                return per_day, None
    return None, "timing does not say how often"


def repeat_per_day(
    frequency: int | None, period: float | None, unit: str | None, repeat: Mapping[str, Any]
) -> tuple[float | None, str | None] | None:
    """``doses_per_day`` of a Timing.repeat without a range, from its valid frequency, period and
    periodUnit; None when the repeat does not say how often (a Timing.code may)."""
    if period is not None or unit is not None:
        if period is None or unit is None:
            return None, "timing gives a period without its unit (or a unit without a period)"
        if unit not in PERIOD_DAYS:
            return None, f"timing period unit {unit!r} has no fixed number of doses per day"
        if float(period) <= 0:
            return None, "timing period is not positive"
        # A period without a frequency means once per period (FHIR: frequency defaults to 1).
        return (frequency or 1) / (float(period) * PERIOD_DAYS[str(unit)]), None
    if frequency is not None:
        return None, "timing gives a frequency without a period"
    times = _as_list(repeat.get("timeOfDay")) or _as_list(repeat.get("when"))
    if times:
        return float(len(times)), None  # each named time of day is one daily dose
    return None


def _dose_unit_meaning(spelling: str) -> str | None:
    """ "count", the UCUM mass code ("mg", "ug", "g"), or None for a spelling this service does not read."""
    if is_count_unit(spelling):
        return "count"
    ucum = normalise_unit(spelling)
    return ucum if ucum in ("mg", "g", "ug") else None


def one_dose_mg(
    dosage: Mapping[str, Any], strength: float | None, product_code: str | None
) -> tuple[float | None, str | None]:
    """(mg in one dose, why unknown) of one Dosage."""
    entries = _dicts(dosage.get("doseAndRate"))
    quantity = next((e["doseQuantity"] for e in entries if isinstance(e.get("doseQuantity"), dict)), None)
    if quantity is None:
        if any("doseRange" in e for e in entries):
            return None, "dose given as a range"
        if isinstance(dosage.get("text"), str):
            return None, f"dose given only as text ({dosage['text']!r})"
        return None, "no dose quantity"
    amount = number(quantity.get("value"))
    code = quantity.get("code") if isinstance(quantity.get("code"), str) else None
    unit = quantity.get("unit") if isinstance(quantity.get("unit"), str) else None
    if amount is None:
        return None, f"dose has no number ({quantity.get('value')!r})"
    return dose_mg(amount, code, unit, strength, product_code)


@functools.lru_cache(maxsize=4096)
def _dose_units(code: str | None, unit: str | None) -> Literal["none", "ambiguous", "count", "other"]:
    """What a dose quantity's code and unit say together: no unit, units that disagree, a count of
    units, or anything else (a mass, or a spelling not read); worked out once per spelling, as a
    patient's orders come back call after call with the same units."""
    spellings = [s.strip().lower() for s in (code, unit) if s]
    if not spellings:
        return "none"
    meanings = {m for m in (_dose_unit_meaning(s) for s in spellings) if m is not None}
    if len(meanings) > 1:
        return "ambiguous"
    return "count" if "count" in meanings else "other"


def dose_mg(
    amount: float, code: str | None, unit: str | None, strength: float | None, product_code: str | None
) -> tuple[float | None, str | None]:
    """(mg in one dose, why unknown) of a dose quantity's number and its code and unit (strings or None)."""
    units = _dose_units(code, unit)
    if units == "none":
        return None, "dose has no unit"
    if units == "ambiguous":
        # {value 0.5, code "mg", unit "tablet"}: 0.5 mg or half a 5 mg tablet? Neither is safe to assume.
        return None, f"dose unit ambiguous (code {code!r} and unit {unit!r} disagree)"
    if units == "count":  # a count unit among the spellings (``_dose_unit_meaning``)
        if strength is None:
            where = f"RxNorm {product_code}" if product_code else "the order"
            return None, f"dose in {unit or code} but the strength per unit is not known for {where}"
        return amount * strength, None
    conv = to_canonical("dose", amount, code, unit)
    if conv.value is None:
        return None, f"dose unit {unit or code or '(none)'} is neither a mass nor a count of units"
    return conv.value, None


def _bounds(dosage: Mapping[str, Any]) -> str:
    """The bounds[x] of an instruction's timing, as a comparable key ("" when it has none)."""
    repeat = _obj(_obj(dosage.get("timing")).get("repeat"))
    bounds = {k: repeat[k] for k in ("boundsPeriod", "boundsDuration", "boundsRange") if k in repeat}
    return repr(sorted(bounds.items())) if bounds else ""


def daily_dose(
    dosages: Any, strength: float | None, product_code: str | None, max_daily_mg: float | None = None
) -> tuple[float | None, float | None, str | None]:
    """(mg per day, doses per day, why unknown).

    Several dosageInstructions are summed (1 mg morning + 0.5 mg evening) only when every one is
    computable, none is sequenced after another and all share the same bounds (or none has any):
    back-to-back periods are a taper, not doses taken together. A total that is not a positive finite
    number, or above ``max_daily_mg`` (the plausibility limit), is reported implausible. Otherwise the
    daily dose is unknown, never guessed.
    """
    instructions = _dicts(dosages)
    problem = not_one_schedule(instructions)
    if problem:
        return None, None, problem
    return daily_total(
        (
            ((None, "taken as needed"), (None, None))
            if dosage.get("asNeededBoolean") is True or "asNeededCodeableConcept" in dosage
            else (one_dose_mg(dosage, strength, product_code), doses_per_day(dosage.get("timing")))
            for dosage in instructions
        ),
        len(instructions),
        max_daily_mg,
    )


def not_one_schedule(instructions: list[dict[str, Any]]) -> str | None:
    """Why these dosage instructions are not one daily dose taken together, or None when they are."""
    if not instructions:
        return "no dosage instruction"
    if len(instructions) == 1:
        return None  # one instruction is one schedule
    sequences = {repr(d.get("sequence")) for d in instructions if d.get("sequence") is not None}
    if len(sequences) > 1:
        return "dosage instructions follow one another in sequence (a changing schedule)"
    if len({_bounds(d) for d in instructions}) > 1:
        return "dosage instructions cover different periods (a taper or a change), so they are not one daily dose"
    return None


Reading = tuple[tuple[float | None, str | None], tuple[float | None, str | None]]


def daily_total(
    readings: Iterable[Reading], count: int, max_daily_mg: float | None
) -> tuple[float | None, float | None, str | None]:
    """``daily_dose`` of instructions that are one schedule, from each one's ((mg per dose, why unknown),
    (doses per day, why unknown)) in order (``one_dose_mg``, ``doses_per_day``; taken as needed:
    ((None, "taken as needed"), (None, None))); read lazily, the first instruction with a problem ends it."""
    total = 0.0
    doses = 0.0
    for i, ((per_dose, problem), (per_day, timing_problem)) in enumerate(readings):
        problem = problem or timing_problem
        if problem:
            prefix = f"dosage instruction {i + 1}: " if count > 1 else ""
            return None, None, prefix + problem
        assert per_dose is not None and per_day is not None
        if per_dose <= 0:
            return None, None, f"implausible dose ({fmt(round(per_dose, 6))} mg per dose is not a positive amount)"
        total += per_dose * per_day
        doses += per_day
    if not math.isfinite(total) or not math.isfinite(doses):
        return None, None, "implausible dose (the total is not a finite number)"
    if max_daily_mg is not None and total > max_daily_mg:
        return (
            None,
            None,
            (
                f"implausible dose ({fmt(round(total, 6))} mg/day is above "
                f"{fmt(max_daily_mg)} mg/day; a data error, not used)"
            ),
        )
    return round(total, 6), round(doses, 6), None


# Words of a sig that mean one dose only. Only explicit words count: "x 1 week" or "x1 month" is a course.
SINGLE_DOSE_WORDS = re.compile(
    r"\b(single[- ]dose|one[- ]dose( only)?|once only|one[- ]time dose|stat)\b", re.IGNORECASE
)


def _iso_day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def structured_course_days(resource: Mapping[str, Any]) -> int | None:
    """How many days an order runs by its structured timing, or None when the timing does not say.

    Read in this order: ``boundsPeriod`` (start and end), ``boundsDuration``, ``repeat.count`` divided
    by the doses per day, then ``dispenseRequest.expectedSupplyDuration``. Structured timing decides a
    course's length; the free-text sig never overrides it.
    """
    for dosage in _dicts(resource.get("dosageInstruction")):
        timing = _obj(dosage.get("timing"))
        repeat = _obj(timing.get("repeat"))
        bounds = _obj(repeat.get("boundsPeriod"))
        start, end = _iso_day(bounds.get("start")), _iso_day(bounds.get("end"))
        if start is not None and end is not None and end >= start:
            return (end - start).days + 1
        days, _ = duration_days(repeat.get("boundsDuration"))
        if days is not None:
            return days
        count = number(repeat.get("count"))
        if count is not None and count >= 1:
            per_day, _ = doses_per_day(timing)
            if count == 1:
                return 1
            if per_day:
                return max(1, math.ceil(count / per_day))
    days, _ = duration_days(_obj(resource.get("dispenseRequest")).get("expectedSupplyDuration"))
    return days


def is_single_dose(resource: Mapping[str, Any]) -> bool:
    """One dose only: structured timing of one day (or ``repeat.count`` 1); without any structured
    course, a sig that says so in explicit words ("single dose", "once only", "stat", "one dose").
    Repeats allowed on the prescription make it a course."""
    return single_dose(resource, structured_course_days(resource))


def single_dose(resource: Mapping[str, Any], days: int | None) -> bool:
    """``is_single_dose`` of an order whose ``structured_course_days`` are ``days`` (worked out once)."""
    if days is not None:
        return days <= 1
    repeats = number(_obj(resource.get("dispenseRequest")).get("numberOfRepeatsAllowed"))
    if repeats is not None and repeats > 0:
        return False
    instructions = _dicts(resource.get("dosageInstruction"))
    texts = [str(d.get(k) or "") for d in instructions for k in ("text", "patientInstruction")]
    return any(_says_single_dose(t) for t in texts)


@functools.lru_cache(maxsize=4096)
def _says_single_dose(text: str) -> bool:
    """Whether a sig says one dose only in ``SINGLE_DOSE_WORDS``; remembered, as a patient's orders come
    back call after call with the same sigs (the search is the costliest step of reading an order)."""
    return SINGLE_DOSE_WORDS.search(text) is not None


def dosage_timings(resource: Mapping[str, Any]) -> tuple[DosageTiming, ...]:
    """When in the day each of the order's dosage instructions is taken: its ``timing.repeat.timeOfDay``
    and ``when`` codes and the words of its sig, one ``DosageTiming`` per instruction."""
    found: list[DosageTiming] = []
    for dosage in _dicts(resource.get("dosageInstruction")):
        repeat = _obj(_obj(dosage.get("timing")).get("repeat"))
        times, whens = repeat.get("timeOfDay"), repeat.get("when")
        found.append(
            DosageTiming(
                time_of_day=() if times is None else tuple(t for t in _as_list(times) if isinstance(t, str)),
                when=() if whens is None else tuple(w for w in _as_list(whens) if isinstance(w, str)),
                text=str(dosage.get("text") or ""),
                patient_instruction=str(dosage.get("patientInstruction") or ""),
                time_of_day_listed=isinstance(times, list),
                when_listed=isinstance(whens, list),
            )
        )
    return tuple(found)

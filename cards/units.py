"""Unit conversion to each concept's canonical unit, keyed on UCUM codes.

Pure and table-driven. A unit is first normalised from its common spellings (``mg/dl``, ``µmol/L``,
``mEq/L``, ``mcg/L``, ``mmHg`` ...) to one UCUM code; each concept then lists the UCUM codes it can
convert and how. Anything else is "unusable" with the reason kept, so a card can say why a value was
not compared with a threshold (docs/data-profile.md, "Observations"; docs/clinical-basis.md, "Units").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

# Canonical UCUM unit per concept key of cards.facts (codes.yaml repeats them for reviewers; a test
# keeps the two in step).
CANONICAL: dict[str, str] = {
    "th1_th2_ratio": "{ratio}",
    "th1_pct": "%",
    "th2_pct": "%",
    "tacrolimus": "ng/mL",
    "creatinine": "mg/dL",
    "glucose": "mg/dL",
    "hba1c": "%",
    "potassium": "mmol/L",
    "hemoglobin": "g/dL",
    "wbc": "10*3/uL",
    "platelets": "10*3/uL",
    "alt": "U/L",
    "ast": "U/L",
    "bilirubin": "mg/dL",
    "nk_cells": "/uL",
    "hcg": "[IU]/L",
    "blood_pressure": "mm[Hg]",
    "dose": "mg",
}

# Spellings seen in real results, lower-cased with micro signs folded to "u", mapped to UCUM.
_SPELLINGS: dict[str, str] = {
    "mg/dl": "mg/dL",
    "umol/l": "umol/L",
    "mmol/l": "mmol/L",
    "meq/l": "meq/L",
    "mval/l": "meq/L",
    "ng/ml": "ng/mL",
    "ug/l": "ug/L",
    "mcg/l": "ug/L",
    "%": "%",
    "percent": "%",
    "{ratio}": "{ratio}",
    "ratio": "{ratio}",
    "1": "1",
    "{ratio}/1": "{ratio}",
    "u/l": "U/L",
    "iu/l": "U/L",
    "[iu]/l": "[IU]/L",
    "ukat/l": "ukat/L",
    "mm[hg]": "mm[Hg]",
    "mmhg": "mm[Hg]",
    "mm hg": "mm[Hg]",
    "/ul": "/uL",
    "{cells}/ul": "/uL",
    "cells/ul": "/uL",
    "/mm3": "/uL",
    "10*3/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "x10^3/ul": "10*3/uL",
    "k/ul": "10*3/uL",
    "10*9/l": "10*9/L",
    "10^9/l": "10*9/L",
    "x10^9/l": "10*9/L",
    "g/dl": "g/dL",
    "g/l": "g/L",
    "mmol/mol": "mmol/mol",
    "miu/ml": "m[IU]/mL",
    "m[iu]/ml": "m[IU]/mL",
    "mg": "mg",
    "g": "g",
    "ug": "ug",
    "mcg": "ug",
    "milligram": "mg",
    "milligrams": "mg",
}

Conversion = Callable[[float], float]


def _times(factor: float) -> Conversion:
    return lambda v: v * factor


_SAME: Conversion = _times(1.0)

# IFCC-NGSP master equation: NGSP (%) = 0.09148 × IFCC (mmol/mol) + 2.152.
_HBA1C_IFCC_TO_NGSP: Conversion = lambda v: 0.09148 * v + 2.152  # noqa: E731

# concept -> {UCUM code of the value -> conversion to the canonical unit}
_CONVERSIONS: dict[str, dict[str, Conversion]] = {
    "th1_th2_ratio": {"{ratio}": _SAME, "1": _SAME},
    "th1_pct": {"%": _SAME},
    "th2_pct": {"%": _SAME},
    "tacrolimus": {"ng/mL": _SAME, "ug/L": _SAME},
    "creatinine": {"mg/dL": _SAME, "umol/L": _times(1 / 88.4), "mmol/L": _times(1000 / 88.4)},
    "glucose": {"mg/dL": _SAME, "mmol/L": _times(18.016)},
    "hba1c": {"%": _SAME, "mmol/mol": _HBA1C_IFCC_TO_NGSP},
    "potassium": {"mmol/L": _SAME, "meq/L": _SAME},
    "hemoglobin": {"g/dL": _SAME, "g/L": _times(0.1)},
    "wbc": {"10*3/uL": _SAME, "10*9/L": _SAME, "/uL": _times(0.001)},
    "platelets": {"10*3/uL": _SAME, "10*9/L": _SAME, "/uL": _times(0.001)},
    # 1 U = 1 µmol/min, 1 kat = 1 mol/s, so 1 µkat/L = 60 U/L.
    "alt": {"U/L": _SAME, "ukat/L": _times(60.0)},
    "ast": {"U/L": _SAME, "ukat/L": _times(60.0)},
    # bilirubin: molar mass 584.66 g/mol, so 1 mg/dL = 17.1 µmol/L.
    "bilirubin": {"mg/dL": _SAME, "umol/L": _times(1 / 17.1)},
    "nk_cells": {"/uL": _SAME, "10*3/uL": _times(1000.0), "10*9/L": _times(1000.0)},
    "hcg": {"[IU]/L": _SAME, "U/L": _SAME, "m[IU]/mL": _SAME},
    "blood_pressure": {"mm[Hg]": _SAME},
    "dose": {"mg": _SAME, "g": _times(1000.0), "ug": _times(0.001)},
}

# A converted value is rounded to the precision labs report in the canonical unit, so that a result
# sent in SI units meets the threshold its conventional twin meets: 5.1 mmol/L glucose is 92 mg/dL
# (not 91.88) and 11.1 mmol/L is 200 (not 199.98); 97 umol/L creatinine is 1.10 mg/dL.
_REPORTED_DECIMALS: dict[str, int] = {"glucose": 0, "creatinine": 2}

# Concepts whose canonical unit is dimensionless: a value sent without any unit is taken as-is.
_DIMENSIONLESS = frozenset({"th1_th2_ratio"})


@dataclass(frozen=True)
class Converted:
    """A value in its concept's canonical unit, or None with the reason it is unusable."""

    value: float | None
    unit: str | None
    problem: str | None = None


_PLAIN_SPELLING = re.compile(r"[!-~]+")


def normalise_unit(unit: str | None) -> str | None:
    """The UCUM code for a unit spelling, or None when the spelling is not known."""
    if unit is None:
        return None
    if _PLAIN_SPELLING.fullmatch(unit):  # printable ASCII without spaces: nothing to squeeze or map
        return _SPELLINGS.get(unit.lower())
    key = re.sub(r"\s+", " ", unit.strip()).lower()
    key = key.replace("µ", "u").replace("μ", "u")  # micro sign U+00B5 and Greek mu U+03BC
    if key in _SPELLINGS:
        return _SPELLINGS[key]
    squeezed = key.replace(" ", "")
    return _SPELLINGS.get(squeezed)


def canonical_unit(concept: str) -> str | None:
    """The canonical UCUM unit of a concept, or None when the concept has no unit table."""
    return CANONICAL.get(concept)


def to_canonical(concept: str, value: float | None, unit_code: str | None, unit_text: str | None) -> Converted:
    """Convert a value to the concept's canonical unit (UCUM code first, then the unit text)."""
    target = CANONICAL.get(concept)
    if target is None or concept not in _CONVERSIONS:
        return Converted(None, None, f"no unit conversion is defined for {concept}")
    if value is None:
        return Converted(None, target, "no value")
    if type(unit_code) not in _UNIT_TYPES or type(unit_text) not in _UNIT_TYPES:
        convert = converter.__wrapped__(concept, unit_code, unit_text)
    else:
        convert = converter(concept, unit_code, unit_text)
    if isinstance(convert, str):
        return Converted(None, target, convert)
    return Converted(convert(float(value)), target)


@functools.lru_cache(maxsize=1024)
def converter(concept: str, unit_code: str | None, unit_text: str | None) -> Callable[[float], float] | str:
    """``to_canonical`` of a number reported in these units, as a function of the number (converted
    and rounded), or why no number in these units can be used (the problem ``to_canonical`` gives);
    for a concept without a unit table, that problem.

    Depends on the units alone, so it is worked out once per spelling, and a caller that meets the
    same spelling again (a patient's results) only calls the function it got."""
    if concept not in CANONICAL or concept not in _CONVERSIONS:
        return f"no unit conversion is defined for {concept}"
    conversion, problem = _conversion(concept, unit_code, unit_text)
    if conversion is None:
        return problem if problem else float  # a dimensionless value without a unit: taken as-is
    # Rounded to the precision labs report in the canonical unit (``_REPORTED_DECIMALS``); otherwise so
    # that e.g. 97.24 µmol/L is 1.1 mg/dL, not 1.1000000000000001, at a threshold.
    if conversion is _SAME:
        return _ROUNDED  # the number itself, rounded
    places = _REPORTED_DECIMALS.get(concept, 6)
    return lambda number: round(conversion(number), places)


# A number whose unit is already canonical: only rounded (``_SAME`` would multiply it by 1.0 first).
_ROUNDED: Callable[[float], float] = functools.partial(round, ndigits=6)


_UNIT_TYPES = (str, type(None))


def _conversion(concept: str, unit_code: str | None, unit_text: str | None) -> tuple[Conversion | None, str | None]:
    """How a value of a concept reported in these units becomes canonical: (conversion, None), or
    (None, why not), or (None, None) for a dimensionless value sent without a unit (taken as-is).
    Remembered per spelling by ``converter``."""
    target = CANONICAL[concept]
    table = _CONVERSIONS[concept]
    given = [u for u in (unit_code, unit_text) if u is not None and u.strip()]
    if not given:
        if concept in _DIMENSIONLESS:
            return None, None
        return None, f"no unit given; expected {target}"
    for spelling in given:
        ucum = normalise_unit(spelling)
        if ucum is not None and ucum in table:
            return table[ucum], None
    shown = " / ".join(dict.fromkeys(given))
    return None, f"unit {shown} cannot be converted to {target}"


def unit_free(concept: str) -> bool:
    """True when every unit the concept is reported in gives the same number (potassium in mmol/L or
    mEq/L, tacrolimus in ng/mL or µg/L): a number sent without its unit can then still be read."""
    table = _CONVERSIONS.get(concept)
    return table is not None and bool(table) and all(conversion is _SAME for conversion in table.values())

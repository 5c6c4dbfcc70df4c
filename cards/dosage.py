"""Dose arithmetic on typed values: which dose units count capsules or tablets, and whether an order's
doses are all taken in the evening. Reading the FHIR Dosage and Timing elements these values come from is
extraction's (``service.hooks.extract.dosage``); nothing here sees FHIR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .facts import DosageTiming

# Count units: a dose in these is a number of capsules/tablets, to be multiplied by the strength.
# One definition for reading a dose (extraction) and writing one (suggested orders).
COUNT_UNITS = frozenset(
    {
        "{pill}",
        "{pills}",
        "{tbl}",
        "{tab}",
        "{tablet}",
        "{tablets}",
        "{capsule}",
        "{capsules}",
        "{cap}",
        "{caps}",
        "1",
        "pill",
        "pills",
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "capsule",
        "capsules",
        "cap",
        "caps",
        # "each" (UCUM-less, as Synthea and some EHRs write a capsule count)
        "ea",
        "each",
        "{each}",
        "{ea}",
    }
)


def is_count_unit(spelling: str | None) -> bool:
    """True for a dose unit that counts capsules or tablets ("{capsule}", "Tablets", "1")."""
    return spelling is not None and spelling.strip().lower() in COUNT_UNITS


# A FHIR time (hh:mm:ss), as Timing.repeat.timeOfDay gives it.
TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")

# Event-timing codes (FHIR EventTiming) and sig words for an evening or night dose.
EVENING_WHEN = frozenset({"PCV", "ACV", "CV", "HS", "EVE", "EVE.early", "EVE.late", "NIGHT", "PHS"})
EVENING_WORDS = re.compile(
    r"\b(after dinner|with dinner|before dinner|evening|at night|nightly|bedtime|"
    r"at bed ?time)\b",
    re.IGNORECASE,
)


def evening_dose(timings: Iterable[DosageTiming], from_hour: int = 17) -> bool:
    """True when every dose of the order is given in the evening: ``timing.repeat.timeOfDay`` from
    ``from_hour``, an evening ``when`` code (PCV after dinner, HS at bedtime ...) or, without structured timing of
    day, evening words in the sig."""
    instructions = tuple(timings)
    if not instructions:
        return False
    for dosage in instructions:
        if dosage.time_of_day:
            if not all(TIME_OF_DAY.fullmatch(t) and int(t[:2]) >= from_hour for t in dosage.time_of_day):
                return False
        elif dosage.when:
            if not all(w in EVENING_WHEN for w in dosage.when):
                return False
        elif not any(EVENING_WORDS.search(words) for words in (dosage.text, dosage.patient_instruction)):
            return False
    return True

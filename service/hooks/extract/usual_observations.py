"""Observations of the usual shape, read without the lenient accessors.

Nearly every result arrives as one shape: a string status, a code of clean codings, an
effectiveDateTime, a plain valueQuantity in UCUM (components of the same shape). For that shape the
lenient reading (``observations.ObservationReader``) reduces to a handful of lookups; this reader
takes it and calls the same helpers (``_blood_pressure``, ``_reference_high``, ``to_canonical``,
``implausible``) the lenient path calls. Anything else it declines before it has changed anything,
and the lenient path reads the resource, so that path stays the one definition of what a result
means. tests/test_extract_typed.py runs every fixture and a generated set of shapes through both and
requires identical facts and cards.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cards.facts import HCG, Measurement
from cards.units import CANONICAL, converter
from service.hooks.extract.codes import _ObsCode
from service.hooks.extract.common import BLOOD_PRESSURE, IGNORED_OBSERVATION, UCUM, _ref_of, parse_fhir_datetime
from service.hooks.extract.observations import ObservationReader, _as_reported

# ``_usual_code``'s answer for a code it cannot read without the lenient accessors (compared by identity).
_UNUSUAL = _ObsCode(concept="", key="")


def _usual_code(concept: Any, observations: Mapping[tuple[str, str], _ObsCode]) -> _ObsCode | None:
    """The first coding this service reads, of a CodeableConcept whose codings all carry a string
    system and a non-empty string code; None when none is ours; ``_UNUSUAL`` for any other shape."""
    if type(concept) is not dict:
        return _UNUSUAL
    codings = concept.get("coding")
    if type(codings) is not list or not codings:
        return _UNUSUAL
    found = None
    for coding in codings:
        if type(coding) is not dict:
            return _UNUSUAL
        system, code = coding.get("system"), coding.get("code")
        if type(system) is not str or type(code) is not str or not code:
            return _UNUSUAL
        if found is None:
            found = observations.get((system, code))
    return found


def _usual_time(res: Mapping[str, Any]) -> datetime | None:
    """The effectiveDateTime of a result timed by one (the lenient path's first choice), or None for
    any other timing or a date it cannot read."""
    raw = res.get("effectiveDateTime")
    return _moment(raw) if type(raw) is str else None


@functools.lru_cache(maxsize=4096)
def _moment(raw: str) -> datetime | None:
    """``parse_fhir_datetime`` of a string, None where it raises (the lenient path words the error);
    remembered, as a panel's results share their time and a patient's results come back call after
    call."""
    try:
        return parse_fhir_datetime(raw)
    except ValueError:
        return None


class UsualObservationReader(ObservationReader):
    """The lenient Observation reader, with the usual shape taken first."""

    # Take the usual shape by ``_usual_observation`` (False: every resource by the lenient path, as
    # the differential test compares them).
    typed_observations = True

    def _observation(self, res: dict[str, Any], draft: bool) -> None:
        if self.typed_observations and self._usual_observation(res):
            return
        super()._observation(res, draft)

    def _usual_observation(self, res: dict[str, Any]) -> bool:
        """Read an Observation of the usual shape; False (nothing read) for the lenient path."""
        status = res.get("status")
        if type(status) is not str or not status:
            return False
        if status in IGNORED_OBSERVATION:
            return True
        observations = self.index.observations
        match = _usual_code(res.get("code"), observations)
        if match is _UNUSUAL:
            return False
        if match is None:
            # Not a code this service reads: skipped, unless a component may be (the lenient path).
            return "component" not in res
        known_components: list[tuple[dict[str, Any], _ObsCode]] = []
        if "component" in res:
            components = res["component"]
            if type(components) is not list:
                return False
            for component in components:
                if type(component) is not dict:
                    return False
                cmatch = _usual_code(component.get("code"), observations)
                if cmatch is _UNUSUAL:
                    return False
                if cmatch is not None:
                    known_components.append((component, cmatch))
        when = _usual_time(res)
        if when is None:
            return False
        source = _ref_of(res)
        specimen = res.get("specimen")
        if isinstance(specimen, dict) and isinstance(specimen.get("reference"), str):
            self.specimen[source] = specimen["reference"]
        if match.concept == BLOOD_PRESSURE:
            self._blood_pressure(res, match, known_components, source, status, when)
            return True
        self._add(self._usual_measure(match, res, source, status, when))
        for component, cmatch in known_components:
            if cmatch.concept == BLOOD_PRESSURE:
                continue  # as the lenient path: BP components outside a BP panel are not read
            csource = f"{source}#{cmatch.key.split('|', 1)[1]}"
            if source in self.specimen:
                self.specimen[csource] = self.specimen[source]
            self._add(self._usual_measure(cmatch, component, csource, status, when))
        return True

    def _usual_measure(
        self, match: _ObsCode, elem: Mapping[str, Any], source: str, status: str, when: datetime
    ) -> Measurement:
        """``_measure`` for a plain valueQuantity (a number, no comparator, UCUM or no system);
        any other value goes to ``_measure`` itself."""
        concept = match.concept
        q = elem.get("valueQuantity")
        if type(q) is not dict:
            return self._measure(match, elem, source, status, when)
        raw: Any = q.get("value")
        if (
            type(raw) not in (int, float)
            or "comparator" in q
            or "valueString" in elem
            or concept not in CANONICAL
            or concept == HCG
        ):
            return self._measure(match, elem, source, status, when)
        number = float(raw)  # as ``_number`` converts it (an int too large raises the same error)
        if not math.isfinite(number):
            return self._measure(match, elem, source, status, when)
        code, unit = q.get("code"), q.get("unit")
        unit_code = code if isinstance(code, str) and q.get("system") in (None, UCUM) else None
        unit_text = unit if isinstance(unit, str) else None
        shown = f"{_as_reported(raw, number)} {unit_text or unit_code or ''}".strip()
        # ``to_canonical``, as the function it works out once per spelling (``converter``).
        convert = converter(concept, unit_code, unit_text)
        value: float | None = None
        problem: str | None = None
        if isinstance(convert, str):
            problem = convert
        else:
            value = convert(number)
            problem = self.index.implausible(concept, value, shown)
            if problem:
                value = None  # a data error: shown as recorded, never compared with a threshold
        # Positional, in the order of the fields (tests/test_facts_measurement.py): a third of the cost
        # of naming the seventeen.
        return Measurement(
            concept, source, match.key, status, when, value, CANONICAL[concept], shown, problem, match.timing,
            match.fasting, (), self._reference_high(concept, elem) if "referenceRange" in elem else None, None,
            (), None, None,
        )  # fmt: skip

"""Observations: laboratory results, blood pressure, derived Th1/Th2 ratios, same-time conflicts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cards.derive import derive_ratios, hcg_result
from cards.facts import (
    ACTIONABLE_STATUSES,
    HCG,
    PREGNANCY_TEST,
    TH1_PCT,
    TH1_TH2_RATIO,
    TH2_PCT,
    BloodPressure,
    Measurement,
)
from cards.units import CANONICAL, to_canonical, unit_free
from service.hooks.extract.codes import _ObsCode
from service.hooks.extract.common import (
    BLOOD_PRESSURE,
    IGNORED_OBSERVATION,
    UCUM,
    _as_list,
    _codings,
    _dicts,
    _fmt,
    _number,
    _obj,
    _ref_of,
    _status,
    _status_code,
    _texts,
    _Unusable,
    parse_fhir_datetime,
)
from service.hooks.extract.reader import _Reader

_LIMIT = ": a limit, not a value"
NO_TIME = "no effective time (dateTime, instant, period or timing) and no issued time"
# A number sent as text, as lab interfaces do: an optional comparator, the number, an optional unit.
_NUMBER_TEXT = re.compile(r"^\s*(<=|>=|<|>)?\s*([0-9]+(?:[.,][0-9]+)?)\s*([^\s0-9].*)?$")


@dataclass
class _Single:
    """A standalone systolic or diastolic Observation, waiting to be paired by time."""

    source: str
    status: str
    when: datetime | None
    role: str
    value: float | None
    problem: str | None


def _as_reported(raw: Any, number: float | None) -> str:
    """The value as the laboratory wrote it (as text, as an f-string would show it), except a
    machine's float noise (5.179565090425196, as generated data carry): more than three decimals are
    shown to three significant digits past the point, never compared that way (the canonical value
    keeps every digit)."""
    text = str(raw)
    point = text.find(".")
    if number is None or point < 0 or len(text) - point <= 4:  # no point, or at most three decimals
        return text
    return f"{round(number, 3):g}"


class ObservationReader(_Reader):
    """Reads Observations into measurements and blood-pressure readings: the lenient reading, which
    defines what a result means (``usual_observations`` takes the usual shape faster, alike)."""

    def _observation_time(self, res: Mapping[str, Any]) -> datetime | None:
        """When the result was taken: effectiveDateTime, effectiveInstant, effectivePeriod (its end, else
        its start), the last event of effectiveTiming, else when it was issued."""
        period = _obj(res.get("effectivePeriod"))
        events = _as_list(_obj(res.get("effectiveTiming")).get("event"))
        for label, raw in (
            ("effectiveDateTime", res.get("effectiveDateTime")),
            ("effectiveInstant", res.get("effectiveInstant")),
            ("effectivePeriod.end", period.get("end")),
            ("effectivePeriod.start", period.get("start")),
            ("effectiveTiming.event", events),
            ("issued", res.get("issued")),
        ):
            if raw is None or raw == []:
                continue
            try:
                if isinstance(raw, list):
                    # Repeated draws at the times listed: the result stands for the last of them.
                    moments = [parse_fhir_datetime(e) for e in raw]
                    return max((m for m in moments if m is not None), default=None)
                return parse_fhir_datetime(raw)
            except ValueError as exc:
                raise _Unusable(f"{label}: {exc}") from None
        return None

    def _observation(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "unknown")
        if status in IGNORED_OBSERVATION:
            return
        source = _ref_of(res)
        codings = _codings(res.get("code"))
        if not codings:
            raise _Unusable("Observation without a code")
        match = self.index.observation_of(codings)
        components = _dicts(res.get("component"))
        known_components = [(c, m) for c in components if (m := self.index.observation(c.get("code"))) is not None]
        if match is None and not known_components:
            return  # not a code this service reads
        when = self._observation_time(res)
        specimen = res.get("specimen")
        if isinstance(specimen, dict) and isinstance(specimen.get("reference"), str):
            self.specimen[source] = specimen["reference"]
        if match is not None and match.concept == BLOOD_PRESSURE:
            self._blood_pressure(res, match, known_components, source, status, when)
            return
        if match is not None:
            self._add(self._measure(match, res, source, status, when))
        for component, cmatch in known_components:
            if cmatch.concept == BLOOD_PRESSURE:
                continue  # BP components outside a BP panel: not a shape the profile names
            csource = f"{source}#{cmatch.key.split('|', 1)[1]}"
            if source in self.specimen:
                self.specimen[csource] = self.specimen[source]
            self._add(self._measure(cmatch, component, csource, status, when))

    def _add(self, m: Measurement) -> None:
        self.labs.setdefault(m.concept, []).append(m)

    def _measure(
        self, match: _ObsCode, elem: Mapping[str, Any], source: str, status: str, when: datetime | None
    ) -> Measurement:
        concept = match.concept
        value: float | None = None
        coded: str | None = None
        problem: str | None = None
        shown = ""
        has_unit = concept in CANONICAL
        unit = CANONICAL.get(concept)
        if when is None:
            problem = NO_TIME
        comparator: str | None = None
        bound: float | None = None
        text_number = (
            _NUMBER_TEXT.match(elem["valueString"])
            if isinstance(elem.get("valueString"), str) and concept in CANONICAL
            else None
        )
        if isinstance(elem.get("valueQuantity"), dict) or text_number is not None:
            if text_number is not None:
                # "6.9", ">30 ng/mL": read as the quantity it spells; without a unit only where every
                # unit of the concept gives the same number (potassium, tacrolimus).
                quantity: Mapping[str, Any] = {
                    "value": text_number.group(2).replace(",", "."),
                    "comparator": text_number.group(1),
                    "unit": (text_number.group(3) or "").strip() or (unit if unit_free(concept) else None),
                }
            else:
                quantity = elem["valueQuantity"]
            value, coded, shown, vproblem, bound = self._quantity(concept, quantity)
            if text_number is not None:
                shown = elem["valueString"].strip()
                if vproblem:
                    vproblem = f"value is text ({shown!r}): {vproblem}"
            comparator = str(quantity["comparator"]) if bound is not None else None
            problem = problem or vproblem
        elif "valueCodeableConcept" in elem:
            shown = "; ".join(_texts(elem["valueCodeableConcept"])) or "(coded)"
            coded = next(
                (
                    self.index.coded_values[(str(c.get("system")), c["code"])]
                    for c in _codings(elem["valueCodeableConcept"])
                    if (str(c.get("system")), c["code"]) in self.index.coded_values
                ),
                None,
            )
            if coded is None:
                problem = problem or f"coded value {shown!r} is not one this service reads"
            elif concept in CANONICAL and concept != HCG:
                # "Negative" for a level measured in a unit: no number to compare, shown as reported.
                problem = problem or f"coded value {shown!r}, not a number"
        elif "valueInteger" in elem:
            number = _number(elem["valueInteger"])
            shown = str(elem["valueInteger"])
            if has_unit:
                conv = to_canonical(concept, number, None, None)
                value, problem = conv.value, problem or conv.problem
        elif isinstance(elem.get("valueRatio"), dict):
            num = _number((elem["valueRatio"].get("numerator") or {}).get("value"))
            den = _number((elem["valueRatio"].get("denominator") or {}).get("value"))
            shown = (
                f"{elem['valueRatio'].get('numerator', {}).get('value')}:"
                f"{elem['valueRatio'].get('denominator', {}).get('value')}"
            )
            if concept == TH1_TH2_RATIO and num is not None and den:
                value = num / den
            else:
                problem = problem or f"a ratio value {shown} cannot be used for {concept}"
        elif isinstance(elem.get("valueString"), str):
            shown = elem["valueString"]
            word = shown.strip().lower()
            if concept == PREGNANCY_TEST and word in ("positive", "pos", "negative", "neg"):
                coded = "positive" if word.startswith("pos") else "negative"
            else:
                problem = problem or f"value is text ({shown!r}), not a number"
        elif any(k.startswith("value") for k in elem):
            kind = next(k for k in elem if k.startswith("value"))
            shown = str(elem[kind])
            problem = problem or f"{kind} cannot be used for {concept}"
        elif "dataAbsentReason" in elem:
            reason = _status_code(elem["dataAbsentReason"]) or "; ".join(_texts(elem["dataAbsentReason"]))
            problem = problem or f"no value (data absent: {reason or 'no reason given'})"
        elif not (unit is None and concept != PREGNANCY_TEST):
            # A panel (CBC, unit None) carries no value of its own; every other concept needs one.
            problem = problem or "no value"
        if value is not None and problem is None:
            problem = self.index.implausible(concept, value, shown)
            if problem:
                value = None  # a data error: shown as recorded, never compared with a threshold
        return Measurement(
            concept=concept,
            source=source,
            code=match.key,
            status=status,
            when=when,
            value=value,
            unit=unit,
            shown=shown,
            problem=problem,
            timing=match.timing,
            fasting=match.fasting,
            reference_high=self._reference_high(concept, elem),
            coded_value=coded,
            comparator=comparator,
            bound=bound if problem is None or problem.endswith(_LIMIT) else None,
        )

    def _quantity(
        self, concept: str, q: Mapping[str, Any]
    ) -> tuple[float | None, str | None, str, str | None, float | None]:
        """(canonical value, coded value, shown, problem, limit) of a valueQuantity; the limit is the
        canonical number of a value reported with a comparator (">30"), for a conservative reading."""
        number = _number(q.get("value"))
        unit_code = q.get("code") if q.get("system") in (None, UCUM) and isinstance(q.get("code"), str) else None
        unit_text = q.get("unit") if isinstance(q.get("unit"), str) else None
        comparator = str(q["comparator"]) if isinstance(q.get("comparator"), str) else ""
        shown = f"{comparator}{_as_reported(q.get('value'), number)} {unit_text or unit_code or ''}".strip()
        if number is None:
            return None, None, shown, f"valueQuantity has no number ({q.get('value')!r})", None
        if concept not in CANONICAL:
            return None, None, shown, f"a quantity cannot be used for {concept}", None
        conv = to_canonical(concept, number, unit_code, unit_text)
        if conv.value is None:
            return None, None, shown, conv.problem, None
        if concept == HCG:
            # Positive at or above the cut-off; a limit ("<5", ">1000") counts when it settles the side.
            cut = self.index.hcg_cutoff
            coded = hcg_result(conv.value, comparator, cut)
            if coded is None:
                return None, None, shown, f"{shown} does not say which side of {_fmt(cut)} IU/L it is", None
            return (conv.value if not comparator else None), coded, shown, None, None
        if comparator:
            implausible = self.index.implausible(concept, conv.value, shown)
            if implausible:
                return None, None, shown, implausible, None
            return None, None, shown, f"reported as {shown}{_LIMIT}", conv.value
        return conv.value, None, shown, None, None

    def _reference_high(self, concept: str, elem: Mapping[str, Any]) -> float | None:
        if concept not in CANONICAL:
            return None
        value_q = _obj(elem.get("valueQuantity"))
        for rng in _dicts(elem.get("referenceRange")):
            high = rng.get("high")
            if not isinstance(high, dict):
                continue
            code = high.get("code") if high.get("system") in (None, UCUM) else None
            unit = high.get("unit")
            if code is None and unit is None:  # the range in the value's own unit
                code, unit = value_q.get("code"), value_q.get("unit")
            conv = to_canonical(
                concept,
                _number(high.get("value")),
                code if isinstance(code, str) else None,
                unit if isinstance(unit, str) else None,
            )
            if conv.value is not None:
                return conv.value
        return None

    def _blood_pressure(
        self,
        res: Mapping[str, Any],
        match: _ObsCode,
        components: list[tuple[dict[str, Any], _ObsCode]],
        source: str,
        status: str,
        when: datetime | None,
    ) -> None:
        if match.role in ("systolic", "diastolic"):
            value, problem = self._bp_value(res)
            self.singles.append(_Single(source, status, when, match.role, value, problem))
            return
        sides: dict[str, float | None] = {"systolic": None, "diastolic": None}
        problems: list[str] = []
        for component, cmatch in components:
            if cmatch.role in sides:
                value, problem = self._bp_value(component)
                sides[cmatch.role] = value
                if problem:
                    problems.append(f"{cmatch.role}: {problem}")
        if when is None:
            problems.append(NO_TIME)
        if sides["systolic"] is None and sides["diastolic"] is None and not problems:
            problems.append("blood pressure panel without systolic or diastolic component")
        self.blood_pressure.append(
            BloodPressure(source, status, when, sides["systolic"], sides["diastolic"], "; ".join(problems) or None)
        )

    def _bp_value(self, elem: Mapping[str, Any]) -> tuple[float | None, str | None]:
        q = elem.get("valueQuantity")
        if not isinstance(q, dict):
            return None, "no valueQuantity"
        code = q.get("code") if q.get("system") in (None, UCUM) and isinstance(q.get("code"), str) else None
        unit = q.get("unit") if isinstance(q.get("unit"), str) else None
        if q.get("comparator"):
            return None, f"reported as {q.get('comparator')}{q.get('value')}: a limit, not a value"
        conv = to_canonical(BLOOD_PRESSURE, _number(q.get("value")), code, unit)
        if conv.value is not None and conv.problem is None:
            problem = self.index.implausible(BLOOD_PRESSURE, conv.value, f"{_fmt(conv.value)} mm[Hg]")
            if problem:
                return None, problem
        return conv.value, conv.problem

    def _pair_blood_pressure(self) -> None:
        """Standalone systolic and diastolic Observations with the same time make one reading."""
        by_time: dict[datetime | None, list[_Single]] = {}
        for single in self.singles:
            by_time.setdefault(single.when, []).append(single)
        for when, group in by_time.items():
            systolic = [s for s in group if s.role == "systolic"]
            diastolic = [s for s in group if s.role == "diastolic"]
            while systolic or diastolic:
                pair = [
                    p
                    for p in (systolic.pop(0) if systolic else None, diastolic.pop(0) if diastolic else None)
                    if p is not None
                ]
                statuses = [p.status for p in pair]
                status = next((s for s in statuses if s not in ACTIONABLE_STATUSES), statuses[0])
                problems = [f"{p.role}: {p.problem}" for p in pair if p.problem]
                if when is None:
                    problems.append(NO_TIME)
                self.blood_pressure.append(
                    BloodPressure(
                        source=",".join(p.source for p in pair),
                        status=status,
                        when=when,
                        systolic=next((p.value for p in pair if p.role == "systolic"), None),
                        diastolic=next((p.value for p in pair if p.role == "diastolic"), None),
                        problem="; ".join(problems) or None,
                    )
                )

    def _derive_ratios(self) -> None:
        """Th1 % / Th2 % where no ratio was reported for that specimen or day (``cards.derive``)."""
        for m in derive_ratios(
            self.labs.get(TH1_TH2_RATIO, []), self.labs.get(TH1_PCT, []), self.labs.get(TH2_PCT, []), self.specimen
        ):
            if m.value is not None and m.problem is None:
                problem = self.index.implausible(TH1_TH2_RATIO, m.value, f"{_fmt(round(m.value, 2))} ({m.shown})")
                if problem:
                    m = replace(m, value=None, problem=problem)
            self._add(m)

    def _flag_conflicts(self) -> None:
        """Results of one concept taken at the same time with different values name each other, so
        neither wins by its place in the Bundle; both are kept."""
        for concept, results in self.labs.items():
            timed = [m for m in results if m.when is not None and (m.value is not None or m.coded_value is not None)]
            if len({m.when for m in timed}) == len(timed):
                continue  # no two taken at the same time (the usual case): nothing to name
            by_time: dict[datetime | None, list[Measurement]] = {}  # never None: see timed
            for m in timed:
                by_time.setdefault(m.when, []).append(m)
            flagged: dict[str, tuple[str, ...]] = {}
            for group in by_time.values():
                if len(group) == 1 or len({(m.value, m.coded_value) for m in group}) == 1:
                    continue  # one result, or all agreeing: nothing to name
                for m in group:
                    others = tuple(
                        o.source
                        for o in group
                        if o.source != m.source and (o.value, o.coded_value) != (m.value, m.coded_value)
                    )
                    if others:
                        flagged[m.source] = others
            if flagged:
                self.labs[concept] = [
                    m.naming_conflicts(flagged[m.source]) if m.source in flagged else m for m in results
                ]

"""One potassium and one creatinine finding, shared by every rule that reads them (safety monitoring and
the interaction cards).

The thresholds live once, in the protocol's ``safety`` entries with their sources (UK Kidney
Association 2020 for potassium, KDIGO 2012 for creatinine); a rule that needs a tier asks here and never
compares with numbers of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal

from ..derive import conflicting, creatinine_baseline, worse
from ..facts import CREATININE, POTASSIUM, Measurement, PatientFacts
from ..vocab import CHEMISTRY
from .vocab import above, at_least

CHEMISTRY_KEY = CHEMISTRY  # the prefetch key that carries potassium and creatinine

PotassiumTier = Literal["unavailable", "none", "old", "normal", "above-normal", "mild", "moderate", "severe"]
CreatinineTier = Literal["unavailable", "none", "old", "stable", "rising", "aki"]
POTASSIUM_HIGH = frozenset({"mild", "moderate", "severe"})


def _entry(kb: Mapping[str, Any], concept: str, key: str) -> float:
    return float(kb["protocol"]["safety"][concept][key]["value"])


def threshold_source(kb: Mapping[str, Any], concept: str, key: str) -> str:
    """The short label of the source of a protocol safety threshold ("UK Kidney Association 2020")."""
    protocol = kb["protocol"]
    source_id = str(protocol["safety"][concept][key]["source"])
    source = (protocol.get("sources") or {}).get(source_id) or {}
    return str(source.get("label") or source_id)


def potassium_tier(value: float, kb: Mapping[str, Any], reference_high: float | None = None) -> PotassiumTier:
    """UK Kidney Association 2020 tiers: ≥ 6.5 severe, 6.0-6.4 moderate, 5.5-5.9 mild; above the normal
    range (the laboratory's upper limit, else the protocol's) is "above-normal", never "normal"."""
    if at_least(value, _entry(kb, "potassium", "severe_at")):
        return "severe"
    if at_least(value, _entry(kb, "potassium", "critical_at")):
        return "moderate"
    if at_least(value, _entry(kb, "potassium", "warning_at")):
        return "mild"
    upper = reference_high if reference_high is not None else _entry(kb, "potassium", "advisory_above")
    return "above-normal" if above(value, upper) else "normal"


def creatinine_tier(rise: float | None, fast_rise: bool, kb: Mapping[str, Any]) -> CreatinineTier:
    """KDIGO 2012: ≥ 1.5 × baseline or a fast absolute rise is acute kidney injury; a rise of 20 % or
    more from the baseline is "rising"."""
    if fast_rise or (rise is not None and at_least(1 + rise, _entry(kb, "creatinine", "aki_ratio"))):
        return "aki"
    if rise is not None and at_least(rise, _entry(kb, "creatinine", "rise_warning_fraction")):
        return "rising"
    return "stable"


def fast_creatinine_rise(facts: PatientFacts, latest: Measurement, kb: Mapping[str, Any]) -> Measurement | None:
    """The lowest earlier creatinine within the KDIGO window from which ``latest`` rose by the KDIGO
    absolute amount (0.3 mg/dL in 48 h), or None."""
    if latest.value is None or latest.when is None:
        return None
    window = timedelta(hours=_entry(kb, "creatinine", "aki_absolute_hours"))
    rise = _entry(kb, "creatinine", "aki_absolute_rise")
    earlier = [
        r
        for r in facts.results(CREATININE)
        if r.actionable
        and r.value is not None
        and r.when is not None
        and latest.when - window <= r.when < latest.when
        and r.unit == latest.unit
    ]
    if not earlier:
        return None
    lowest = min(earlier, key=lambda r: r.value or 0.0)
    assert lowest.value is not None
    return lowest if at_least(latest.value - lowest.value, rise) else None


@dataclass(frozen=True)
class PotassiumFinding:
    """The potassium on record that counts, and its tier."""

    tier: PotassiumTier
    result: Measurement | None = None  # newest result (the worse of results taken at the same time)
    conflicting: tuple[Measurement, ...] = ()
    source: str = ""  # where the tiers come from, for the card's source line

    @property
    def high(self) -> bool:
        return self.tier in POTASSIUM_HIGH

    @property
    def urgent(self) -> bool:
        return self.tier in ("moderate", "severe")


@dataclass(frozen=True)
class CreatinineFinding:
    """The newest creatinine, its baseline and how far it rose."""

    tier: CreatinineTier
    result: Measurement | None = None
    conflicting: tuple[Measurement, ...] = ()
    baseline: Measurement | None = None
    rise: float | None = None  # fraction above baseline, 0.67 = +67 %
    source: str = ""  # where the tiers come from, for the card's source line

    @property
    def rising(self) -> bool:
        return self.tier in ("rising", "aki")


def _newest(facts: PatientFacts, concept: str) -> tuple[Measurement | None, tuple[Measurement, ...]]:
    """The newest usable result (the worse of results taken at the same time) and its conflicts.

    Never an older result in place of a newer final one that cannot be used: then there is none (the
    safety card shows that result as reported). A ">" limit (">7 mmol/L") counts at its limit.
    """
    final = [m for m in facts.results(concept) if m.is_final and m.when is not None]
    if not final:
        return None, ()
    newest = final[0]
    if not newest.actionable:
        if newest.bound is not None and newest.comparator in (">", ">="):
            return replace(newest, value=newest.bound, problem=None), ()
        return None, ()
    used = worse(facts, newest)
    return used, tuple(sorted({newest, *conflicting(facts, newest)} - {used}, key=lambda m: m.source))


def _is_recent(m: Measurement, today: date, days: int) -> bool:
    return m.when is not None and (today - m.when.date()).days <= days


def potassium_finding(facts: PatientFacts, today: date, kb: Mapping[str, Any], recent_days: int) -> PotassiumFinding:
    """The tier of the newest potassium, when it is at most ``recent_days`` old."""
    if CHEMISTRY_KEY in facts.missing:
        return PotassiumFinding("unavailable")
    result, conflicts = _newest(facts, POTASSIUM)
    if result is None or result.value is None:
        return PotassiumFinding("none")
    if not _is_recent(result, today, recent_days):
        return PotassiumFinding("old", result, conflicts)
    return PotassiumFinding(
        potassium_tier(result.value, kb, result.reference_high),
        result,
        conflicts,
        threshold_source(kb, "potassium", "warning_at"),
    )


def creatinine_finding(
    facts: PatientFacts, today: date, kb: Mapping[str, Any], recent_days: int, course_start: date | None
) -> CreatinineFinding:
    """The newest creatinine against its baseline (the latest before the course, else the lowest of
    the last 90 days) and the KDIGO absolute rise."""
    if CHEMISTRY_KEY in facts.missing:
        return CreatinineFinding("unavailable")
    result, conflicts = _newest(facts, CREATININE)
    if result is None or result.value is None or result.when is None:
        return CreatinineFinding("none")
    if not _is_recent(result, today, recent_days):
        return CreatinineFinding("old", result, conflicts)
    baseline = creatinine_baseline(facts, course_start, today)
    rise: float | None = None
    if baseline is not None and baseline.value and baseline.when is not None and baseline.when < result.when:
        rise = result.value / baseline.value - 1
    tier = creatinine_tier(rise, fast_creatinine_rise(facts, result, kb) is not None, kb)
    return CreatinineFinding(
        tier,
        result,
        conflicts,
        baseline if rise is not None else None,
        rise,
        threshold_source(kb, "creatinine", "aki_ratio"),
    )

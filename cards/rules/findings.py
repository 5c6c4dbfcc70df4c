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
from ..knowledge_model import Cited, ProtocolTable, typed
from ..vocab import CHEMISTRY as CHEMISTRY_KEY  # the data group that carries potassium and creatinine
from .vocab import above, at_least

PotassiumTier = Literal["unavailable", "none", "old", "normal", "above-normal", "mild", "moderate", "severe"]
CreatinineTier = Literal["unavailable", "none", "old", "stable", "rising", "aki"]
POTASSIUM_HIGH = frozenset({"mild", "moderate", "severe"})


def threshold_source(proto: ProtocolTable, entry: Cited) -> str:
    """The short label of the source of a protocol safety threshold ("UK Kidney Association 2020")."""
    source = proto.sources.get(entry.source)
    return source.label if source is not None else entry.source


def potassium_tier(value: float, proto: ProtocolTable, reference_high: float | None = None) -> PotassiumTier:
    """UK Kidney Association 2020 tiers: ≥ 6.5 severe, 6.0-6.4 moderate, 5.5-5.9 mild; above the normal
    range (the laboratory's upper limit, else the protocol's) is "above-normal", never "normal"."""
    potassium = proto.safety.potassium
    if at_least(value, potassium.severe_at.value):
        return "severe"
    if at_least(value, potassium.critical_at.value):
        return "moderate"
    if at_least(value, potassium.warning_at.value):
        return "mild"
    upper = reference_high if reference_high is not None else potassium.advisory_above.value
    return "above-normal" if above(value, upper) else "normal"


def creatinine_tier(rise: float | None, fast_rise: bool, proto: ProtocolTable) -> CreatinineTier:
    """KDIGO 2012: ≥ 1.5 × baseline or a fast absolute rise is acute kidney injury; a rise of 20 % or
    more from the baseline is "rising"."""
    creatinine = proto.safety.creatinine
    if fast_rise or (rise is not None and at_least(1 + rise, creatinine.aki_ratio.value)):
        return "aki"
    if rise is not None and at_least(rise, creatinine.rise_warning_fraction.value):
        return "rising"
    return "stable"


def fast_creatinine_rise(facts: PatientFacts, latest: Measurement, proto: ProtocolTable) -> Measurement | None:
    """The lowest earlier creatinine within the KDIGO window from which ``latest`` rose by the KDIGO
    absolute amount (0.3 mg/dL in 48 h), or None."""
    if latest.value is None or latest.when is None:
        return None
    window = timedelta(hours=proto.safety.creatinine.aki_absolute_hours.value)
    rise = proto.safety.creatinine.aki_absolute_rise.value
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
    proto = typed(kb).protocol
    return PotassiumFinding(
        potassium_tier(result.value, proto, result.reference_high),
        result,
        conflicts,
        threshold_source(proto, proto.safety.potassium.warning_at),
    )


def creatinine_finding(
    facts: PatientFacts, today: date, kb: Mapping[str, Any], recent_days: int, course_start: date | None
) -> CreatinineFinding:
    """The newest creatinine against its baseline (the latest before the course, else the lowest of
    the protocol's baseline window) and the KDIGO absolute rise."""
    if CHEMISTRY_KEY in facts.missing:
        return CreatinineFinding("unavailable")
    result, conflicts = _newest(facts, CREATININE)
    if result is None or result.value is None or result.when is None:
        return CreatinineFinding("none")
    if not _is_recent(result, today, recent_days):
        return CreatinineFinding("old", result, conflicts)
    proto = typed(kb).protocol
    baseline = creatinine_baseline(facts, course_start, today, proto.safety.creatinine.baseline_window_days.value)
    rise: float | None = None
    if baseline is not None and baseline.value and baseline.when is not None and baseline.when < result.when:
        rise = result.value / baseline.value - 1
    tier = creatinine_tier(rise, fast_creatinine_rise(facts, result, proto) is not None, proto)
    return CreatinineFinding(
        tier,
        result,
        conflicts,
        baseline if rise is not None else None,
        rise,
        threshold_source(proto, proto.safety.creatinine.aki_ratio),
    )

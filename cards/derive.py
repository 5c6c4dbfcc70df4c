"""Clinical derivations from extracted facts: which result is the baseline, which of two
conflicting results counts. Pure: facts and dates in, facts out."""

from __future__ import annotations

from datetime import date, timedelta

from .facts import CREATININE, Measurement, PatientFacts

BASELINE_FALLBACK_DAYS = 90


def creatinine_baseline(facts: PatientFacts, course_start: date | None, today: date) -> Measurement | None:
    """The latest final creatinine before the course started; without a known start (or no result
    before it), the lowest final result of the last 90 days. Never simply the oldest on record."""
    usable = [m for m in facts.results(CREATININE) if m.actionable and m.value is not None and m.when]
    if course_start is not None:
        before = [m for m in usable if m.when is not None and m.when.date() < course_start]
        if before:
            return max(before, key=lambda m: m.when)  # type: ignore[arg-type, return-value]
    since = today - timedelta(days=BASELINE_FALLBACK_DAYS)
    recent = [m for m in usable if m.when is not None and m.when.date() >= since]
    return min(recent, key=lambda m: m.value) if recent else None  # type: ignore[arg-type, return-value]


def conflicting(facts: PatientFacts, m: Measurement) -> tuple[Measurement, ...]:
    """The results recorded at the same time as ``m`` with another value (``m`` excluded)."""
    others = set(m.conflicts_with)
    return tuple(r for r in facts.results(m.concept) if r.source in others)


def worse(facts: PatientFacts, m: Measurement, *, higher_is_worse: bool = True) -> Measurement:
    """``m`` or the conflicting result at the same time that is worse for a safety tier."""
    pool = [m, *(r for r in conflicting(facts, m) if r.actionable and r.value is not None)]
    if m.value is None:
        return m
    key = (lambda r: r.value) if higher_is_worse else (lambda r: -(r.value or 0.0))
    return max(pool, key=key)

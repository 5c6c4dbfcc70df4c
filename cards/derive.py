"""Clinical derivations from extracted facts: which result is the baseline, which of two
conflicting results counts, whether an hCG is positive, the Th1/Th2 ratio from its percentages, and
whether she is pregnant now. Pure: facts and dates in, facts out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from .facts import (
    ACTIONABLE_STATUSES,
    CREATININE,
    PREGNANCY,
    PREGNANCY_OUTCOME,
    PREGNANCY_TEST,
    TH1_TH2_RATIO,
    ConditionFact,
    Measurement,
    PatientFacts,
    PregnancyStatus,
)


def creatinine_baseline(
    facts: PatientFacts, course_start: date | None, today: date, window_days: int
) -> Measurement | None:
    """The latest final creatinine before the course started; without a known start (or no result
    before it), the lowest final result of the last ``window_days`` days (the protocol's
    ``safety.creatinine.baseline_window_days``). Never simply the oldest on record."""
    usable = [m for m in facts.results(CREATININE) if m.actionable and m.value is not None and m.when]
    if course_start is not None:
        before = [m for m in usable if m.when is not None and m.when.date() < course_start]
        if before:
            return max(before, key=lambda m: m.when)  # type: ignore[arg-type, return-value]
    since = today - timedelta(days=window_days)
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


# ---------------------------------------------------------------------------------------------------
# Serum hCG: positive or negative against the cut-off


def hcg_result(value: float, comparator: str, cutoff: float) -> Literal["positive", "negative"] | None:
    """Positive at or above the cut-off (IU/L), negative below; a reported limit ("<5", ">1000")
    counts when it settles the side, otherwise None."""
    if comparator in ("", ">=", ">") and value >= cutoff:
        return "positive"
    if (comparator in ("", "<", "<=") and value < cutoff) or (comparator == "<" and value == cutoff):
        return "negative"
    return None


# ---------------------------------------------------------------------------------------------------
# Th1/Th2 ratio from Th1 % and Th2 %


def _newest_first(m: Measurement) -> tuple[bool, datetime]:
    return (m.when is not None, m.when or datetime.min.replace(tzinfo=UTC))


def derive_ratios(
    ratios: Sequence[Measurement],
    th1s: Sequence[Measurement],
    th2s: Sequence[Measurement],
    specimen_of: Mapping[str, str],
) -> list[Measurement]:
    """Th1 % / Th2 % where no ratio was reported for that specimen or day.

    Derived per specimen/day, so a series stays complete when only some days carry a ratio. Pairs by
    the same specimen first (``specimen_of``: result source → specimen reference), then by the same
    calendar day (the day as recorded, in its own time zone); of several on one day the newest of each
    is used. A derived ratio is as final as the less final of its two results.
    """
    ratio_specimens = {specimen_of[m.source] for m in ratios if m.source in specimen_of}
    ratio_days = {m.when.date() for m in ratios if m.when}
    ones = sorted((m for m in th1s if m.value is not None and m.when), key=_newest_first, reverse=True)
    twos = sorted((m for m in th2s if m.value is not None and m.when), key=_newest_first, reverse=True)
    used: set[str] = set()
    pairs: list[tuple[Measurement, Measurement]] = []
    for th1 in ones:
        spec = specimen_of.get(th1.source)
        if spec is None:
            continue
        th2 = next((m for m in twos if m.source not in used and specimen_of.get(m.source) == spec), None)
        if th2 is not None:
            used.update((th1.source, th2.source))
            if spec not in ratio_specimens:
                pairs.append((th1, th2))
    # The Th2 results of each day, newest first: a long history would otherwise scan them all per Th1.
    twos_by_day: dict[date, list[Measurement]] = {}
    for m in twos:
        if m.when:
            twos_by_day.setdefault(m.when.date(), []).append(m)
    for th1 in ones:
        if th1.source in used or th1.when is None:
            continue
        day = th1.when.date()
        th2 = next((m for m in twos_by_day.get(day, ()) if m.source not in used), None)
        if th2 is not None:
            used.update((th1.source, th2.source))
            if day not in ratio_days:
                pairs.append((th1, th2))
    derived: list[Measurement] = []
    for th1, th2 in pairs:
        assert th1.value is not None and th2.value is not None
        statuses = [th1.status, th2.status]
        status = next((s for s in statuses if s not in ACTIONABLE_STATUSES), statuses[0])
        derived.append(
            Measurement(
                concept=TH1_TH2_RATIO,
                source=f"{th1.source}+{th2.source}",
                code="derived",
                status=status,
                when=max(w for w in (th1.when, th2.when) if w is not None),
                value=th1.value / th2.value if th2.value else None,
                unit="{ratio}",
                shown=f"{th1.value:g} % / {th2.value:g} %",
                problem=None if th2.value else "Th2 % is 0: no ratio",
                derived_from=(th1.source, th2.source),
            )
        )
    return derived


# ---------------------------------------------------------------------------------------------------
# Pregnancy status

# Gestational age on the day of a day-5 blastocyst transfer: 19 days (an IVF pregnancy is dated from
# the transfer: due date = transfer + 261 days for a day-5 embryo, 280 days of gestation in all).
GA_AT_TRANSFER_DAYS = 19
# Without a transfer on record, a first positive test is taken as at least 4 weeks of gestation (hCG
# is detectable in urine from about the time of the missed period).
GA_AT_FIRST_POSITIVE_DAYS = 28
# A pregnancy not ended by any record is over after 42 weeks of gestation.
MAX_GESTATION_DAYS = 42 * 7


def _day(moment: datetime | date | None) -> date | None:
    return moment.date() if isinstance(moment, datetime) else moment


def _condition_day(c: ConditionFact) -> date | None:
    return _day(c.onset) or _day(c.recorded)


def _outcome_day(c: ConditionFact) -> date | None:
    """When a recorded outcome (delivery, loss) or a closed pregnancy happened."""
    return _day(c.abated) or _day(c.onset) or _day(c.recorded)


def _test_text(m: Measurement) -> str:
    assert m.when is not None
    kind = "urine hCG" if m.concept == PREGNANCY_TEST else f"serum beta-hCG {m.shown}"
    return f"{kind} {m.coded_value} on {m.when.date().isoformat()}"


def pregnancy_status(
    conditions: Sequence[ConditionFact],
    tests: Sequence[Measurement],
    transfer_times: Sequence[datetime],
    today: date | None,
    *,
    negative_window_days: int = 60,
) -> PregnancyStatus:
    """Whether she is pregnant now, from pregnancy Conditions, recorded outcomes, hCG tests and her
    embryo transfers (past and planned; only those up to today count).

    - A pregnancy Condition (not abated) counts unless an outcome (delivery, loss, a closed pregnancy)
      or a negative test was recorded after it, or it was recorded more than 42 weeks ago.
    - Otherwise the newest actionable hCG after her latest past transfer decides (a test on the
      transfer day itself predates implantation). A positive test lasts until a recorded outcome, a
      later negative test, or 42 weeks of gestation (dated from the transfer, else from the first
      positive test); a negative test tells only for ``negative_window_days``.
    Without ``today`` nothing is dated: the newest test decides.
    """
    outcomes = [
        d
        for d in (
            _outcome_day(c)
            for c in conditions
            if c.concept == PREGNANCY_OUTCOME or (c.concept == PREGNANCY and c.abated is not None)
        )
        if d is not None
    ]
    results = sorted(
        (
            m
            for m in tests
            if m.actionable
            and m.coded_value in ("positive", "negative")
            and m.when is not None
            and (today is None or m.when.date() <= today)
        ),
        key=_newest_first,
        reverse=True,
    )
    past = [w.date() for w in transfer_times if today is None or w.date() <= today]
    transfer_day = max(past) if past else None

    def ended_after(start: date | None) -> str | None:
        """Why a pregnancy known since ``start`` is over, or None."""
        if start is None:
            return None
        later_outcome = [d for d in outcomes if d >= start and (today is None or d <= today)]
        if later_outcome:
            return f"an outcome was recorded on {max(later_outcome).isoformat()}"
        negative = next(
            (m for m in results if m.coded_value == "negative" and m.when is not None and m.when.date() > start), None
        )
        if negative is not None:
            return f"{_test_text(negative)} followed"
        return None

    for c in conditions:
        if c.concept != PREGNANCY or c.abated is not None:
            continue
        start = _condition_day(c)
        if ended_after(start):
            continue
        if today is not None and start is not None and (today - start).days > MAX_GESTATION_DAYS:
            continue
        ga = (
            (today - transfer_day).days + GA_AT_TRANSFER_DAYS
            if today is not None and transfer_day is not None and (start is None or transfer_day <= start)
            else None
        )
        return PregnancyStatus(
            True,
            f"Condition {c.code.split('|')[-1]} ({c.display})",
            c.source,
            c.onset or c.recorded,
            since=start,
            gestational_age_days=ga,
        )

    current = [m for m in results if m.when is not None and (transfer_day is None or m.when.date() > transfer_day)]
    if not current:
        if not results:
            return PregnancyStatus(None, "nothing on record")
        assert transfer_day is not None
        return PregnancyStatus(
            None,
            f"no pregnancy test after the embryo transfer on "
            f"{transfer_day.isoformat()} ({_test_text(results[0])} is older)",
        )
    newest = current[0]
    assert newest.when is not None
    if newest.coded_value == "negative":
        if today is not None and (today - newest.when.date()).days > negative_window_days:
            return PregnancyStatus(
                None, f"no current pregnancy test ({_test_text(newest)} is more than {negative_window_days} days old)"
            )
        return PregnancyStatus(False, _test_text(newest), newest.source, newest.when)
    # Positive: from the first positive test of this run (no negative in between).
    first = newest
    for m in current[1:]:
        if m.coded_value != "positive":
            break
        first = m
    assert first.when is not None
    known = first.when.date()
    why_over = ended_after(known)
    if why_over:
        return PregnancyStatus(None, f"{_test_text(newest)}, but {why_over}")
    if transfer_day is not None:
        since, ga_then = transfer_day, GA_AT_TRANSFER_DAYS
    else:
        since, ga_then = known, GA_AT_FIRST_POSITIVE_DAYS
    ga = (today - since).days + ga_then if today is not None else None
    if ga is not None and ga > MAX_GESTATION_DAYS:
        return PregnancyStatus(None, f"{_test_text(newest)}: more than 42 weeks ago, no outcome recorded")
    evidence = _test_text(newest) if first is newest else f"{_test_text(newest)} (positive since {known.isoformat()})"
    return PregnancyStatus(True, evidence, newest.source, newest.when, since=since, gestational_age_days=ga)

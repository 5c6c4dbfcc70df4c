"""Clinical derivations (cards.derive): pregnancy status on real charts, the hCG cut-off, the Th1/Th2
ratio from its percentages, the creatinine baseline and conflicting results. Facts in, decisions out."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from cards.derive import conflicting, creatinine_baseline, derive_ratios, hcg_result, pregnancy_status, worse
from cards.facts import (
    CREATININE,
    PREGNANCY,
    PREGNANCY_OUTCOME,
    PREGNANCY_TEST,
    TH1_PCT,
    TH2_PCT,
    ConditionFact,
    Measurement,
    PatientFacts,
)

TODAY = date(2026, 11, 25)


def at(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(8), tzinfo=UTC)


def hcg(days_ago: int, result: str, status: str = "final") -> Measurement:
    return Measurement(
        concept=PREGNANCY_TEST,
        source=f"Observation/u{days_ago}",
        code="http://loinc.org|2106-3",
        status=status,
        when=at(days_ago),
        value=None,
        unit=None,
        shown=result,
        coded_value=result,
    )


def condition(
    concept: str, *, onset: int | None = None, abated: int | None = None, recorded: int | None = None
) -> ConditionFact:
    return ConditionFact(
        concept=concept,
        source="Condition/c",
        code="http://snomed.info/sct|77386006",
        display="Pregnancy",
        recorded=at(recorded) if recorded is not None else None,
        onset=at(onset) if onset is not None else None,
        abated=at(abated) if abated is not None else None,
    )


# name, conditions, tests, transfers (days ago), pregnant, evidence, since (days ago), gestational age (days)
PREGNANCY_CHARTS = [
    # A positive hCG after the transfer is not forgotten after 60 days.
    (
        "positive-134-days-ago-after-the-transfer",
        [],
        [hcg(134, "positive")],
        [148],
        True,
        "urine hCG positive on 2026-07-14",
        148,
        148 + 19,
    ),
    (
        "positive-run-dates-from-the-first-positive",
        [],
        [hcg(134, "positive"), hcg(120, "positive")],
        [148],
        True,
        "positive since 2026-07-14",
        148,
        167,
    ),
    (
        "miscarriage-recorded-after-the-positive",
        [condition(PREGNANCY_OUTCOME, onset=90)],
        [hcg(134, "positive")],
        [148],
        None,
        "an outcome was recorded on 2026-08-27",
        None,
        None,
    ),
    (
        "outcome-from-an-earlier-pregnancy-does-not-end-this-one",
        [condition(PREGNANCY_OUTCOME, onset=300)],
        [hcg(10, "positive")],
        [24],
        True,
        "positive",
        24,
        43,
    ),
    (
        "later-negative-ends-it",
        [],
        [hcg(30, "positive"), hcg(20, "negative")],
        [44],
        False,
        "urine hCG negative on 2026-11-05",
        None,
        None,
    ),
    (
        "over-after-42-weeks-from-the-transfer",
        [],
        [hcg(290, "positive")],
        [300],
        None,
        "more than 42 weeks ago",
        None,
        None,
    ),
    ("at-41-weeks-still-pregnant", [], [hcg(260, "positive")], [268], True, "positive", 268, 287),
    ("positive-without-a-transfer-dated-from-the-test", [], [hcg(100, "positive")], [], True, "positive", 100, 128),
    (
        "test-on-the-transfer-day-is-no-evidence",
        [],
        [hcg(5, "positive")],
        [5],
        None,
        "no pregnancy test after the embryo transfer on 2026-11-20",
        None,
        None,
    ),
    (
        "preliminary-test-is-no-evidence",
        [],
        [hcg(5, "positive", "preliminary")],
        [],
        None,
        "nothing on record",
        None,
        None,
    ),
    (
        "negative-older-than-the-window-says-nothing",
        [],
        [hcg(61, "negative")],
        [],
        None,
        "more than 60 days old",
        None,
        None,
    ),
    ("future-transfer-is-no-anchor", [], [hcg(3, "positive")], [-5], True, "positive", 3, 31),
    ("condition-counts", [condition(PREGNANCY, onset=50)], [], [], True, "Condition 77386006", 50, None),
    ("condition-dated-by-the-transfer", [condition(PREGNANCY, recorded=30)], [], [44], True, "Condition", 30, 63),
    (
        "condition-ended-by-a-later-outcome",
        [condition(PREGNANCY, onset=200), condition(PREGNANCY_OUTCOME, onset=20)],
        [],
        [],
        None,
        "nothing on record",
        None,
        None,
    ),
    (
        "condition-ended-by-a-later-negative-test",
        [condition(PREGNANCY, onset=60)],
        [hcg(10, "negative")],
        [],
        False,
        "negative",
        None,
        None,
    ),
    (
        "condition-older-than-42-weeks-is-stale",
        [condition(PREGNANCY, recorded=400)],
        [],
        [],
        None,
        "nothing on record",
        None,
        None,
    ),
    (
        "condition-without-a-date-stays-authoritative",
        [condition(PREGNANCY)],
        [hcg(10, "negative")],
        [],
        True,
        "Condition",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    "conditions, tests, transfers, pregnant, evidence, since, ga",
    [c[1:] for c in PREGNANCY_CHARTS],
    ids=[c[0] for c in PREGNANCY_CHARTS],
)
def test_pregnancy_status_on_real_charts(conditions, tests, transfers, pregnant, evidence, since, ga):
    status = pregnancy_status(conditions, tests, [at(d) for d in transfers], TODAY)
    assert status.pregnant is pregnant
    assert evidence in status.evidence
    assert status.since == (TODAY - timedelta(days=since) if since is not None else None)
    assert status.gestational_age_days == ga


def test_without_today_nothing_is_dated_and_the_newest_test_decides():
    status = pregnancy_status([], [hcg(600, "positive")], [], None)
    assert status.pregnant is True and status.gestational_age_days is None


@pytest.mark.parametrize(
    "value, comparator, expected",
    [
        (25, "", "positive"),
        (24.9, "", "negative"),
        (5, "<", "negative"),
        (25, "<", "negative"),
        (1000, ">", "positive"),
        (30, "<", None),
        (10, ">", None),
        (25, "<=", None),
    ],
)
def test_hcg_against_the_cut_off(value, comparator, expected):
    assert hcg_result(value, comparator, 25.0) == expected


def pct(concept: str, oid: str, value: float, days_ago: int = 3, status: str = "final") -> Measurement:
    return Measurement(
        concept=concept,
        source=f"Observation/{oid}",
        code="x",
        status=status,
        when=at(days_ago),
        value=value,
        unit="%",
        shown=f"{value} %",
    )


@pytest.mark.parametrize(
    "th1s, th2s, specimens, expected",
    [
        ([pct(TH1_PCT, "a", 30)], [pct(TH2_PCT, "b", 3)], {}, [(10.0, "final")]),
        ([pct(TH1_PCT, "a", 30, 3)], [pct(TH2_PCT, "b", 3, 4)], {}, []),  # different days, no specimen
        (
            [pct(TH1_PCT, "a", 30, 3)],
            [pct(TH2_PCT, "b", 3, 4)],
            {"Observation/a": "S/1", "Observation/b": "S/1"},
            [(10.0, "final")],
        ),  # one specimen, reported on two days
        ([pct(TH1_PCT, "a", 30)], [pct(TH2_PCT, "b", 3, status="preliminary")], {}, [(10.0, "preliminary")]),
        ([pct(TH1_PCT, "a", 30)], [pct(TH2_PCT, "b", 0)], {}, [(None, "final")]),
    ],
    ids=["same-day", "different-days", "same-specimen", "less-final-status-wins", "zero-th2"],
)
def test_ratio_derived_from_its_percentages(th1s, th2s, specimens, expected):
    derived = derive_ratios([], th1s, th2s, specimens)
    assert [(m.value, m.status) for m in derived] == expected
    assert all(m.derived_from == ("Observation/a", "Observation/b") for m in derived)


def test_no_ratio_derived_where_one_was_reported_that_day():
    reported = pct("th1_th2_ratio", "r", 9.0)
    assert derive_ratios([reported], [pct(TH1_PCT, "a", 30)], [pct(TH2_PCT, "b", 3)], {}) == []


def creat(oid: str, days_ago: int, value: float) -> Measurement:
    return Measurement(
        concept=CREATININE,
        source=f"Observation/{oid}",
        code="x",
        status="final",
        when=at(days_ago),
        value=value,
        unit="mg/dL",
        shown=f"{value} mg/dL",
    )


@pytest.mark.parametrize(
    "results, course_start, expected",
    [
        # The oldest of the year (1.0, 300 days ago) is not the baseline: the latest before the course is.
        ([creat("old", 300, 1.0), creat("pre", 20, 0.6), creat("now", 2, 0.85)], 10, "Observation/pre"),
        ([creat("old", 300, 1.0), creat("a", 60, 0.7), creat("b", 30, 0.6)], None, "Observation/b"),
        ([creat("old", 300, 1.0)], None, None),
    ],
    ids=["latest-before-the-course", "lowest-of-90-days-without-a-start", "nothing-recent"],
)
def test_creatinine_baseline(results, course_start, expected):
    f = PatientFacts(hook="patient-view", patient_id="p1", labs={CREATININE: tuple(results)})
    start = TODAY - timedelta(days=course_start) if course_start is not None else None
    baseline = creatinine_baseline(f, start, TODAY, 90)  # the shipped safety.creatinine.baseline_window_days
    assert (baseline.source if baseline else None) == expected


def test_the_worse_of_two_same_time_results_is_used():
    low = Measurement(
        concept="potassium",
        source="Observation/a",
        code="x",
        status="final",
        when=at(1),
        value=4.3,
        unit="mmol/L",
        shown="4.3 mmol/L",
        conflicts_with=("Observation/b",),
    )
    high = Measurement(
        concept="potassium",
        source="Observation/b",
        code="x",
        status="final",
        when=at(1),
        value=6.4,
        unit="mmol/L",
        shown="6.4 mmol/L",
        conflicts_with=("Observation/a",),
    )
    f = PatientFacts(hook="patient-view", patient_id="p1", labs={"potassium": (low, high)})
    assert conflicting(f, low) == (high,)
    assert worse(f, low).value == 6.4
    assert worse(f, high, higher_is_worse=False).value == 4.3

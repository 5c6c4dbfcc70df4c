"""Glucose, liver enzymes and blood pressure on tacrolimus: overt and gestational diabetes, enzymes
against the upper limit of normal, hypertension and the pre-eclampsia assessment in pregnancy."""

from __future__ import annotations

from datetime import date

from ...facts import ALT, AST, GLUCOSE, HBA1C, BloodPressure, PatientFacts
from ...knowledge_model import Positive, ProtocolTable
from ...model import Card, Indicator
from ...text import age_days, fmt_bp, fmt_date, fmt_measure, fmt_number, reported
from ..common import Current, Detail, current, describe_pregnancy
from ..focus import Focus
from ..vocab import at_least
from .support import SAFETY, stale_days, worst_card


def glucose_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
    """The glucose card: overt diabetes by fasting, random glucose or HbA1c; gestational diabetes when pregnant."""
    thresholds = proto.safety.glucose
    unit = thresholds.unit
    stale = stale_days(proto)
    glucose = current(facts, GLUCOSE, today, stale, "glucose", unit)
    a1c = current(facts, HBA1C, today, stale, "HbA1c", "%")
    detail = Detail(proto)
    findings: list[tuple[Indicator, str]] = []
    pregnant = bool(facts.pregnancy.pregnant)
    g = glucose.value
    if g is not None and g.value is not None:
        fasting = g.fasting is True
        detail.add(f"- Latest glucose: **{fmt_measure(g)}**, {'fasting' if fasting else 'not stated as fasting'}")
        shown = f"{reported(g)} ({fmt_date(g.when)})"  # as the laboratory reported it (mg/dL or mmol/L)
        if fasting and at_least(g.value, thresholds.overt_fasting_at.value):
            detail.number("Overt diabetes, fasting", thresholds.overt_fasting_at)
            findings.append(("warning", f"Fasting glucose {shown}: in the overt diabetes range, confirm and treat"))
        elif not fasting and at_least(g.value, thresholds.overt_random_at.value):
            detail.number("Overt diabetes, random", thresholds.overt_random_at)
            findings.append(("warning", f"Random glucose {shown}: in the overt diabetes range, confirm and treat"))
        elif fasting and pregnant and at_least(g.value, thresholds.gdm_fasting_at.value):
            detail.number("Gestational diabetes, fasting (pregnant)", thresholds.gdm_fasting_at)
            detail.add(f"- She is {describe_pregnancy(facts.pregnancy)}.")
            findings.append(
                (
                    "warning",
                    f"Fasting glucose {shown} in pregnancy meets the gestational diabetes criterion: confirm and manage",
                )
            )
    h = a1c.value
    if h is not None and h.value is not None:
        detail.add(f"- Latest HbA1c: **{fmt_measure(h)}**")
        if at_least(h.value, thresholds.overt_hba1c_at.value):
            detail.number("Overt diabetes, HbA1c", thresholds.overt_hba1c_at)
            findings.append(
                ("warning", f"HbA1c {fmt_number(h.value)} % ({fmt_date(h.when)}): in the overt diabetes range")
            )
    card = worst_card(
        proto,
        detail,
        f"{SAFETY}:glucose",
        findings,
        thresholds.overt_fasting_at,
        "Tacrolimus causes glucose intolerance: screen for (gestational) diabetes.",
    )
    # Either result is enough to screen; the gap counts only when neither is usable.
    return card, (glucose if h is None else None)


def liver_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
    """The liver card: ALT or AST at or above the multiple of the upper limit of normal."""
    detail = Detail(proto)
    liver = proto.safety.liver
    multiple = liver.uln_multiple.value
    findings: list[tuple[Indicator, str]] = []
    states: list[Current] = []
    for concept, name, default_uln in ((ALT, "ALT", liver.default_uln.alt), (AST, "AST", liver.default_uln.ast)):
        now = current(facts, concept, today, stale_days(proto), name, "U/L")
        states.append(now)
        m = now.value
        if m is None or m.value is None:
            continue
        if m.reference_high:
            uln, uln_text = m.reference_high, f"{fmt_number(m.reference_high)} U/L (laboratory range)"
        else:
            uln_text = detail.number(f"{name} upper limit (result gives none)", default_uln)
            uln = default_uln.value
        detail.add(f"- {name}: **{fmt_measure(m)}**, upper limit {uln_text}")
        if at_least(m.value, multiple * uln):
            findings.append(
                (
                    "warning",
                    f"{name} {fmt_number(m.value)} U/L ({fmt_date(m.when)}) is "
                    f"≥ {fmt_number(multiple)}× the upper limit: review tacrolimus",
                )
            )
    if findings:
        detail.number("Threshold: multiple of the upper limit", liver.uln_multiple)
    card = worst_card(
        proto,
        detail,
        f"{SAFETY}:liver",
        findings,
        liver.uln_multiple,
        "Review tacrolimus and other causes of liver injury.",
    )
    # Either enzyme is enough; the gap counts only when neither is usable.
    if all(s.value is None for s in states):
        return card, Current(
            ALT, None, "; ".join(str(s.problem) for s in states), orderable=any(s.orderable for s in states)
        )
    return card, None


def blood_pressure_check(facts: PatientFacts, today: date, proto: ProtocolTable) -> tuple[Card | None, str | None]:
    """The blood-pressure card: hypertension, severe range, the pre-eclampsia assessment from 20 weeks."""
    limits = proto.safety.blood_pressure
    stale = stale_days(proto)
    usable = [bp for bp in facts.blood_pressure if bp.actionable]
    if not usable:
        return None, "no final blood pressure on record"
    bp: BloodPressure = usable[0]
    age = age_days(bp.when, today)
    if age is None or age > stale:
        return None, f"newest blood pressure, {fmt_bp(bp)}, is {age} days old (limit {stale} days)"
    detail = Detail(proto)
    detail.add(f"- Latest blood pressure: **{fmt_bp(bp)}**")
    sys_, dia = bp.systolic, bp.diastolic
    shown = (
        f"{fmt_number(sys_) if sys_ is not None else '?'}/{fmt_number(dia) if dia is not None else '?'} "
        f"mmHg ({fmt_date(bp.when)})"
    )

    def over(systolic_at: Positive, diastolic_at: Positive) -> bool:
        return (sys_ is not None and at_least(sys_, systolic_at.value)) or (
            dia is not None and at_least(dia, diastolic_at.value)
        )

    findings: list[tuple[Indicator, str]] = []
    ga_days = facts.pregnancy.gestational_age_days if facts.pregnancy.pregnant else None
    from_weeks = limits.preeclampsia_from_weeks.value
    preeclampsia_age = ga_days is not None and ga_days >= from_weeks * 7
    verdict: str | None = None
    if over(limits.critical_systolic_at, limits.critical_diastolic_at):
        detail.number("Severe: systolic at", limits.critical_systolic_at)
        detail.number("Severe: diastolic at", limits.critical_diastolic_at)
        findings.append(
            ("critical", f"Blood pressure {shown}: severe-range hypertension, treat now and assess for pre-eclampsia")
        )
    elif over(limits.warning_systolic_at, limits.warning_diastolic_at):
        detail.number("Hypertension: systolic at", limits.warning_systolic_at)
        detail.number("Hypertension: diastolic at", limits.warning_diastolic_at)
        if preeclampsia_age:
            # From 20 weeks the action is a pre-eclampsia assessment, not only a tacrolimus review.
            detail.number("pre-eclampsia assessment from", limits.preeclampsia_from_weeks)
            verdict = "blood-pressure-pre-eclampsia"
            findings.append(
                (
                    "warning",
                    f"Blood pressure {shown} at {(ga_days or 0) // 7} weeks of pregnancy: assess for pre-eclampsia now",
                )
            )
        else:
            findings.append(("warning", f"Blood pressure {shown}: hypertension, repeat and review tacrolimus"))
    if facts.pregnancy.pregnant:
        detail.add(f"- She is {describe_pregnancy(facts.pregnancy)}.")
    advice = (
        "Tacrolimus can cause hypertension; from 20 weeks of pregnancy check urine protein, platelets, "
        "creatinine and liver enzymes for pre-eclampsia."
        if preeclampsia_age
        else "Tacrolimus can cause hypertension; in pregnancy assess for pre-eclampsia."
    )
    return worst_card(
        proto,
        detail,
        f"{SAFETY}:blood-pressure",
        findings,
        limits.warning_systolic_at,
        advice,
        verdict=verdict,
    ), None

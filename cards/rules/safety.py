"""Card 6, safety monitoring: creatinine, potassium, glucose, blood pressure and liver enzymes
against their thresholds, one card per concern, each with the values and dates used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from ..derive import creatinine_baseline
from ..facts import (
    ALT,
    AST,
    CREATININE,
    GLUCOSE,
    HBA1C,
    POTASSIUM,
    BloodPressure,
    Measurement,
    PatientFacts,
)
from ..knowledge_model import Cited, Order, Positive, ProtocolTable
from ..model import Action, Card, Indicator, Suggestion
from ..orders import procedure_order
from ..text import age_days, fits_summary, fmt_bp, fmt_date, fmt_measure, fmt_number, reported
from ..vocab import FAMILY_SAFETY
from .common import (
    Current,
    Detail,
    conflict_note,
    current,
    day_of,
    describe_pregnancy,
    make_card,
    order_action,
    pending_at_least,
    pending_note,
    protocol_of,
)
from .findings import creatinine_tier, fast_creatinine_rise, potassium_tier
from .focus import Focus, focus_of
from .interactions import decide_interactions
from .scope import scope_of
from .vocab import above, at_least

SAFETY = FAMILY_SAFETY


def evaluate_safety(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 6: one card per safety concern over its threshold; on therapy, what is overdue."""
    focus = focus_of(facts)
    if not focus.applies or not (focus.on_therapy or focus.drafts):
        return []  # a candidate who is not on (or being ordered) tacrolimus: not ours to monitor
    proto = protocol_of(kb)
    cards: list[Card] = []
    gaps: list[tuple[str, Current, Order | None]] = []
    covered = _potassium_on_interaction_card(facts, today, kb)
    safety = proto.safety
    for label, check, order in (
        ("Creatinine", creatinine_check, safety.creatinine.order),
        ("Potassium", potassium_check, safety.potassium.order),
        ("Glucose", glucose_check, safety.glucose.order),
        ("Liver enzymes (ALT/AST)", liver_check, safety.liver.order),
    ):
        card, state = check(facts, today, proto, focus)
        if card is not None and not (covered and card.kind == f"{SAFETY}:potassium"):
            cards.append(card)
        if state is not None and state.value is None:
            gaps.append((label, state, order if state.orderable else None))
    bp_card, bp_gap = blood_pressure_check(facts, today, proto)
    if bp_card is not None:
        cards.append(bp_card)
    if focus.on_therapy and scope_of(facts, today, kb).protocol:
        # The monitoring schedule is the protocol's; a transplant clinic keeps its own.
        due = _monitoring_due(facts, proto, gaps, bp_gap)
        if due is not None:
            cards.append(due)
    return cards


def _potassium_on_interaction_card(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> bool:
    """A potassium raiser's interaction card already names the high potassium (and offers the urgent
    repeat and ECG): one concern, one card. Only with every prefetch key at hand: when some data are
    missing the interaction card may be withheld, and two cards are better than none."""
    if facts.missing:
        return False
    return any(d.potassium is not None and d.potassium.high for d in decide_interactions(facts, today, kb))


def stale_days(proto: ProtocolTable) -> int:
    """How old a safety result may be and still count as the current value."""
    return proto.safety.stale_after_days.value


def creatinine_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
    creatinine = proto.safety.creatinine
    unit = creatinine.unit
    now = current(facts, CREATININE, today, stale_days(proto), "creatinine", unit)
    if now.value is None or now.value.value is None or now.value.when is None:
        return as_reported(proto, "creatinine", now), now
    latest = now.worst() or now.value
    latest_value = latest.value
    assert latest_value is not None and latest.when is not None
    start = focus.therapy_start() or (min((d.start for d in focus.drafts if d.start), default=None))
    baseline = creatinine_baseline(facts, start, today)
    if baseline is not None and (
        baseline.source == latest.source
        or baseline.source in latest.conflicts_with
        or baseline.when is None
        or baseline.when >= latest.when
    ):
        baseline = None  # the latest result cannot be its own baseline

    detail = Detail(proto)
    detail.add(f"- Latest creatinine: **{fmt_measure(latest)}**")
    for note in (conflict_note("creatinine", now), pending_note("creatinine", now)):
        if note:
            detail.add(f"- {note}")
    findings: list[tuple[Indicator, str]] = []
    if baseline is not None and baseline.value:
        how = (
            "before tacrolimus started"
            if start is not None and baseline.when is not None and day_of(baseline.when) < start
            else "lowest of the last 90 days"
        )
        ratio = latest_value / baseline.value
        rise_pct = (ratio - 1) * 100
        detail.add(
            f"- Baseline ({how}): **{fmt_measure(baseline)}**; change {'+' if rise_pct >= 0 else ''}{rise_pct:.0f} %"
        )
        tier = creatinine_tier(ratio - 1, False, proto)
        if tier == "aki":
            detail.number("AKI", creatinine.aki_ratio)
            findings.append(
                (
                    "critical",
                    f"Creatinine {reported(latest)} is {fmt_number(ratio)}× baseline: "
                    "acute kidney injury, review tacrolimus now",
                )
            )
        elif tier == "rising":
            detail.number("creatinine rise", creatinine.rise_warning_fraction)
            findings.append(
                (
                    "warning",
                    f"Creatinine {reported(latest)} has risen {rise_pct:.0f} % from "
                    f"{reported(baseline)}: review the tacrolimus dose",
                )
            )
    hours = creatinine.aki_absolute_hours.value
    lowest = fast_creatinine_rise(facts, latest, proto)
    if lowest is not None and lowest.value is not None:
        detail.number("AKI", creatinine.aki_absolute_rise)
        detail.add(f"- Within {fmt_number(hours)} h before: {fmt_measure(lowest)}")
        findings.append(
            (
                "critical",
                f"Creatinine rose from {reported(lowest)} to {reported(latest)} within "
                f"{fmt_number(hours)} h: acute kidney injury, review tacrolimus now",
            )
        )
    if facts.pregnancy.pregnant:
        limit = creatinine.pregnancy_above.value
        if above(latest_value, limit):
            detail.number("pregnancy limit", creatinine.pregnancy_above)
            detail.add(f"- She is {describe_pregnancy(facts.pregnancy)}.")
            findings.append(
                (
                    "warning",
                    f"Creatinine {reported(latest)} in pregnancy is above "
                    f"{fmt_number(limit)} {unit}: assess for pre-eclampsia",
                )
            )
    repeat = repeat_test(facts, creatinine.order, "Creatinine rise on tacrolimus: repeat")
    return worst_card(
        proto,
        detail,
        f"{SAFETY}:creatinine",
        findings,
        creatinine.aki_ratio,
        "Tacrolimus is nephrotoxic: review the dose, look for other nephrotoxic drugs and repeat creatinine.",
        [repeat],
    ), now


def potassium_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
    """Tiers named as the UK Kidney Association does: 5.5–5.9 mild, 6.0–6.4 moderate, ≥ 6.5 severe."""
    potassium = proto.safety.potassium
    unit = potassium.unit
    now = current(facts, POTASSIUM, today, stale_days(proto), "potassium", unit, limits=True)
    early = pending_at_least(now, potassium.critical_at.value)
    if early is not None and (now.value is None or not at_least(now.value.value or 0.0, early.value or 0.0)):
        return _pending_critical(facts, proto, early, [_urgent_potassium(facts, proto)]), now
    if now.value is None or now.value.value is None:
        return as_reported(proto, "potassium", now), now
    m = now.worst() or now.value
    value = m.value
    assert value is not None
    detail = Detail(proto)
    detail.add(f"- Latest potassium: **{fmt_measure(m)}**")
    for note in (conflict_note("potassium", now), pending_note("potassium", now)):
        if note:
            detail.add(f"- {note}")
    shown = f"{reported(m)} ({fmt_date(m.when)})"
    findings: list[tuple[Indicator, str]] = []
    actions: list[Suggestion] = []
    tier = potassium_tier(value, proto, m.reference_high)
    if tier in ("moderate", "severe"):
        detail.number("severe", potassium.severe_at)
        findings.append(("critical", f"Potassium {shown}: {tier} hyperkalaemia, repeat urgently and record an ECG"))
        actions.append(_urgent_potassium(facts, proto))
    elif tier == "mild":
        detail.number("mild", potassium.warning_at)
        findings.append(
            ("warning", f"Potassium {shown}: mild hyperkalaemia, repeat and review potassium-raising drugs")
        )
        actions.append(repeat_test(facts, potassium.order, "Mild hyperkalaemia on tacrolimus: repeat"))
    elif tier == "above-normal":
        detail.number("advisory", potassium.advisory_above)
        findings.append(("info", f"Potassium {shown} is above the normal range: review potassium-raising drugs"))
    if now.limit in ("<", "<=") or (now.limit is not None and not findings):
        # "<7" may be anything below 7, ">4" anything above 4: no tier is certain, show it as reported.
        return as_reported(proto, "potassium", replace(now, value=None, shown_only=m)), now
    return worst_card(
        proto,
        detail,
        f"{SAFETY}:potassium",
        findings,
        potassium.warning_at,
        "Tacrolimus raises potassium, as do ACE inhibitors, ARBs, spironolactone, trimethoprim "
        "and potassium supplements.",
        actions,
    ), now


def as_reported(proto: ProtocolTable, label: str, now: Current) -> Card | None:
    """The newest result exists but cannot be compared (text, a limit, a unit not known, implausible):
    shown as the laboratory reported it, with why, rather than deciding on an older one."""
    m = now.shown_only
    if m is None:
        return None
    detail = Detail(proto)
    why = m.problem or (f"it is {m.status}" if not m.is_final else "it cannot be compared")
    detail.add(f"- Newest {label}: **{fmt_measure(m)}**; {why}.")
    detail.add("")
    detail.add(
        f"No {label} threshold was checked, and no older result was used in its place. Ask the laboratory "
        "for the value in its unit, or repeat the test."
    )
    return make_card(
        proto,
        detail,
        kind=f"{SAFETY}:{label}",
        verdict=f"{label}-as-reported",
        summary=f"{label.capitalize()} reported as {reported(m)[:40]} ({fmt_date(m.when)}): cannot be compared, check it",
        indicator="info",
        source_id="data-profile",
    )


def _pending_critical(facts: PatientFacts, proto: ProtocolTable, m: Measurement, suggestions: list[Suggestion]) -> Card:
    """A potassium not final yet that is already critical: shown as critical and pending."""
    label = "potassium"
    detail = Detail(proto)
    detail.add(f"- {label.capitalize()}: **{fmt_measure(m)}**, {m.status}: the final result is pending.")
    detail.add("")
    detail.add(f"A {m.status} result this high is acted on now; ask the laboratory for the final value.")
    return make_card(
        proto,
        detail,
        kind=f"{SAFETY}:{label}",
        verdict=f"{label}-critical-pending",
        summary=f"{label.capitalize()} {reported(m)} ({fmt_date(m.when)}) is {m.status}, final pending, and critical: check it now",
        indicator="critical",
        source_id=proto.safety.potassium.critical_at.source,
        suggestions=suggestions,
    )


def repeat_test(facts: PatientFacts, order: Order, reason: str) -> Suggestion:
    """Repeat the test of ``order``."""
    return Suggestion(label="Repeat the test", actions=(order_action(facts, order, reason),))


def _urgent_potassium(facts: PatientFacts, proto: ProtocolTable) -> Suggestion:
    """Potassium ≥ 6.0: an urgent repeat and an ECG."""
    potassium = proto.safety.potassium
    repeat = order_action(
        facts, potassium.order, "Hyperkalaemia on tacrolimus: urgent repeat potassium", priority="stat"
    )
    ecg = potassium.ecg_order
    ecg_action = Action(
        type="create",
        description=f"Order {ecg.display} (urgent)",
        resource=procedure_order(
            facts.patient_id, ecg.system, ecg.code, ecg.display, "Hyperkalaemia on tacrolimus", priority="stat"
        ),
    )
    return Suggestion(label="Urgent repeat potassium and ECG", is_recommended=True, actions=(repeat, ecg_action))


def glucose_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
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


def worst_card(
    proto: ProtocolTable,
    detail: Detail,
    kind: str,
    findings: list[tuple[Indicator, str]],
    threshold: Cited,
    advice: str,
    suggestions: list[Suggestion] | None = None,
    *,
    verdict: str | None = None,
) -> Card | None:
    """One card for the concern: the most severe finding as summary, every finding in the detail."""
    if not findings:
        return None
    order = {"critical": 0, "warning": 1, "info": 2}
    findings = sorted(findings, key=lambda f: order[f[0]])
    indicator, summary = findings[0]
    if len(findings) > 1:
        detail.add("")
        detail.lines += [f"- {text}" for _, text in findings[1:]]
    detail.add("")
    detail.add(advice)
    if verdict is None or indicator == "critical":
        verdict = f"{kind.split(':')[-1]}-{indicator}"
    return make_card(
        proto,
        detail,
        kind=kind,
        verdict=verdict,
        summary=summary,
        indicator=indicator,
        source_id=threshold.source,
        suggestions=(suggestions or []) if indicator != "info" else (),
    )


def _monitoring_due(
    facts: PatientFacts, proto: ProtocolTable, gaps: list[tuple[str, Current, Order | None]], bp_gap: str | None
) -> Card | None:
    """On therapy: the safety values that are missing, stale or not usable, with their orders."""
    if not any(order is not None for _, _, order in gaps):
        return None  # nothing to order (a blood pressure is taken at the visit): no card
    detail = Detail(proto)
    detail.number("how long a safety result counts", proto.safety.stale_after_days)
    detail.add("")
    names: list[str] = []
    for label, state, _ in gaps:
        detail.add(f"- {label}: {state.problem}")
        names.append(label.split(" (")[0].lower())
    if bp_gap is not None:
        detail.add(f"- Blood pressure: {bp_gap}")
        names.append("blood pressure")
    detail.add("")
    detail.add("On tacrolimus, monitor blood pressure, renal function, glucose and liver enzymes regularly.")
    detail.cite("guideline", "Monitoring Requirements")
    actions = tuple(
        order_action(facts, order, f"Safety monitoring on tacrolimus: {label}")
        for label, _, order in gaps
        if order is not None
    )
    suggestions = [Suggestion(label="Order the overdue safety tests", actions=actions)] if actions else []
    summary = f"Tacrolimus safety monitoring due: {', '.join(names)}"
    if not fits_summary(summary):
        summary = "Tacrolimus safety monitoring due: several tests, see details"
    return make_card(
        proto,
        detail,
        kind=f"{SAFETY}:monitoring-due",
        summary=summary,
        indicator="info",
        source_id="guideline",
        suggestions=suggestions,
    )

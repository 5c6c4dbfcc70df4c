"""Kidney and potassium on tacrolimus: a creatinine rise against its baseline (KDIGO acute kidney
injury, the pregnancy limit) and hyperkalaemia in the UK Kidney Association's tiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from ...derive import creatinine_baseline
from ...facts import CREATININE, POTASSIUM, Measurement, PatientFacts
from ...knowledge_model import ProtocolTable
from ...model import Action, Card, Indicator, Suggestion
from ...orders import procedure_order
from ...text import fmt_date, fmt_measure, fmt_number, reported
from ..common import (
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
)
from ..findings import creatinine_tier, fast_creatinine_rise, potassium_tier
from ..focus import Focus
from ..vocab import above, at_least
from .support import SAFETY, as_reported, repeat_test, stale_days, worst_card


def creatinine_check(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus
) -> tuple[Card | None, Current | None]:
    """The creatinine card: a rise from baseline, acute kidney injury, the pregnancy limit."""
    creatinine = proto.safety.creatinine
    unit = creatinine.unit
    now = current(facts, CREATININE, today, stale_days(proto), "creatinine", unit)
    if now.value is None or now.value.value is None or now.value.when is None:
        return as_reported(proto, "creatinine", now), now
    latest = now.worst() or now.value
    latest_value = latest.value
    assert latest_value is not None and latest.when is not None
    start = focus.therapy_start() or (min((d.start for d in focus.drafts if d.start), default=None))
    window = creatinine.baseline_window_days.value
    baseline = creatinine_baseline(facts, start, today, window)
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
            else f"lowest of the last {window} days"
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

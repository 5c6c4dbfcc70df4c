"""Interactions, step two: render. One decision becomes one card, its summary the action, its detail the
values with their dates as the laboratory reported them and one short source line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta

from ...facts import Measurement, MedicationFact, PatientFacts
from ...knowledge_model import InteractionsTable
from ...knowledge_model.interactions import ReduceBy
from ...model import Card, Link, Suggestion
from ...orders import OrderContext
from ...text import DETAIL_MAX, fmt_date, fmt_number, plain, reported
from ..focus import fill, span
from ..vocab import TACROLIMUS, build_card, reason_codings
from .decide import SWITCH_KIND, InteractionDecision, bare_name, drug_name, text_values
from .suggest import DoseOrders, dose_orders, monitor_suggestion, regimen, suggestions_for


def _coded(med: MedicationFact) -> bool:
    """Whether the order carries a code at all (besides the name that matched)."""
    return med.coded


def order_line(med: MedicationFact) -> str:
    """What the order says, its state and its dose (tacrolimus: always), without ids."""
    if med.resource_type == "Immunization":
        return f"{plain(med.display)} (given {fmt_date(med.end)})" if med.end else f"{plain(med.display)} (given)"
    parts = ["draft" if med.is_draft else med.status or "status unknown"]
    if med.release:
        parts[0] += f", {med.release}-release"
    if med.daily_dose_mg is not None:
        parts.append(regimen(med.daily_dose_mg, med.doses_per_day))
    elif med.has(TACROLIMUS):
        parts.append("dose not given")
    line = f"{plain(med.display)} ({'; '.join(parts)}"
    if med.end is not None:
        line += f"; until {fmt_date(med.end)}"
    line += ")"
    if med.recognised_by == "text" and _coded(med):
        # A product code we do not hold (an RxNorm SCD from another formulary): its name says the drug.
        line += " — recognised by its ingredient name (its product code is not in this service's table)"
    elif med.recognised_by == "text":
        line += " — named only in its text: confirm it is the drug meant"
    return line


def _reported(m: Measurement) -> str:
    """A result as the lab reported it, with its date: "5.8 mmol/L on 2026-11-24"."""
    return f"{reported(m)} on {fmt_date(m.when)}"


def _conflict_note(concept: str, result: Measurement, others: Sequence[Measurement]) -> str:
    if not others:
        return ""
    also = ", ".join(reported(o) for o in others)
    return (
        f" Another {concept} taken at the same time reads {also}: the results disagree, so the "
        "worse one is used; check which is right."
    )


_POTASSIUM_NAMES = {
    "mild": "mild hyperkalaemia",
    "moderate": "moderate hyperkalaemia",
    "severe": "severe hyperkalaemia",
}


def _potassium_text(d: InteractionDecision, name: str) -> tuple[str | None, list[str]]:
    """(summary override, detail lines) for the potassium on record."""
    k = d.potassium
    if k is None:
        return None, []
    if k.tier == "unavailable":
        return None, ["**Potassium:** results could not be retrieved: check the latest value before it starts."]
    if k.tier == "none" or k.result is None:
        return None, ["**Potassium:** none on record: check it before it starts."]
    if k.tier == "old":
        return None, [f"**Potassium:** latest {_reported(k.result)} is not current: check it before it starts."]
    note = _conflict_note("potassium", k.result, k.conflicting)
    if not k.high:
        words = "above the normal range, below the hyperkalaemia threshold" if k.tier == "above-normal" else "normal"
        return None, [f"**Potassium:** {_reported(k.result)}, {words}.{note}"]
    contraindicated = d.entry.contraindicated_in_hyperkalaemia
    already = all(not o.is_draft for o in d.orders)
    act = f"stop {name}" if already else f"do not start {name}"
    why = " (contraindicated in hyperkalaemia)" if contraindicated else ""
    urgent = "urgent repeat and ECG; " if k.urgent else ""
    summary = f"Potassium {_reported(k.result)}: {urgent}{act}{why}"
    lines = [f"**Potassium:** {_reported(k.result)} — {_POTASSIUM_NAMES[k.tier]}.{note}"]
    if k.urgent:
        lines.append(
            "**Next step:** repeat potassium urgently and record an ECG; treat hyperkalaemia as "
            "your local protocol says, and review the tacrolimus trough."
        )
    else:
        lines.append(
            f"**Next step:** leave out {name}; look for the cause and repeat potassium as your local protocol says."
        )
    return summary, lines


def _creatinine_text(d: InteractionDecision, name: str) -> tuple[str | None, list[str]]:
    c = d.creatinine
    if c is None:
        return None, []
    if c.tier == "unavailable":
        return None, ["**Creatinine:** results could not be retrieved: check it before it starts."]
    if c.tier == "none" or c.result is None:
        return None, ["**Creatinine:** none on record: check it before it starts."]
    if c.tier == "old":
        return None, [f"**Creatinine:** latest {_reported(c.result)} is not current: check it before it starts."]
    note = _conflict_note("creatinine", c.result, c.conflicting)
    if not c.rising or c.baseline is None or c.rise is None:
        return None, [f"**Creatinine:** {_reported(c.result)}, no rise from baseline.{note}"]
    pct = round(c.rise * 100)
    rise = (
        f"{reported(c.baseline)} ({fmt_date(c.baseline.when)}) → {reported(c.result)} "
        f"({fmt_date(c.result.when)}), +{pct} %"
    )
    already = all(not o.is_draft for o in d.orders)
    act = f"stop {name}" if already else f"avoid {name}"
    label = "acute kidney injury range" if c.tier == "aki" else "kidney function is changing"
    tests = "creatinine and trough" if d.taking_tacrolimus else "creatinine"
    summary = f"Creatinine rose {reported(c.baseline)} → {reported(c.result)} (+{pct} %): {act}; repeat {tests}"
    tests = "creatinine and a tacrolimus trough" if d.taking_tacrolimus else "creatinine"
    return summary, [
        f"**Creatinine:** {rise} — {label}.{note}",
        f"**Next step:** repeat {tests}; look for other causes (dehydration, other kidney-toxic drugs).",
    ]


def _dose_text(d: InteractionDecision, values: Mapping[str, str], step: float, build: DoseOrders) -> list[str]:
    plan = d.dose
    change = d.entry.dose_change
    how = f"by {values['reduction']}" if "reduction" in values else f"to {values.get('fraction', '')}"
    if d.timing == "single-dose" and change is None:
        return []
    if d.timing == "single-dose":
        return [
            f"**Dose:** a single dose does not justify a course-long cut: keep the tacrolimus dose "
            f"and check a trough in {values.get('every', '2–3')} days."
        ]
    if d.timing == "recently-stopped" and d.entry.class_ == "vaccine":
        return []  # a vaccine given does not change levels
    if d.timing == "recently-stopped" and d.stopped_on is not None:
        lasts = max(d.entry.after_stop_days or (0,))
        return [
            f"**Stopped:** {values['drug']} ended on {fmt_date(d.stopped_on)}; its effect lasts until "
            f"about {fmt_date(d.stopped_on + timedelta(days=int(lasts)))}. Levels will fall: check "
            f"troughs and return to the usual dose as they fall."
        ]
    if plan is None:
        return []
    if plan.problem == "patient-view":
        return [
            f"**Dose:** both drugs are already active. If the tacrolimus dose was not changed when "
            f"{values['drug']} started, reduce it {how}."
        ]
    if plan.problem == "several-orders":
        return [f"**Dose:** several tacrolimus orders: reduce the one that continues {how}."]
    if plan.problem == "dose-unknown" or plan.order is None or plan.order.daily_dose_mg is None:
        return [f"**Dose:** the tacrolimus dose is not given; when you set it, reduce it {how}."]
    dose = plan.order.daily_dose_mg
    if isinstance(change, ReduceBy):
        arithmetic = (
            f"{fmt_number(dose)} mg/day less {values['reduction']} = "
            f"{fmt_number(plan.low or 0)}–{fmt_number(plan.high or 0)} mg/day"
        )
    else:
        arithmetic = f"{values.get('fraction', '')} of {fmt_number(dose)} mg/day = {fmt_number(plan.low or 0)} mg/day"
    lines = [f"**Dose:** {arithmetic}, each dose in {fmt_number(step)} mg capsule steps."]
    built = {t: build(t) for t in plan.targets}
    by_hand = [t for t, b in built.items() if b.change is None]
    switched = sorted({b.product.display for b in built.values() if b.product is not None})
    if switched:
        lines.append(f"The suggested doses use {', '.join(switched)}: the ordered strength cannot give them.")
    if by_hand:
        lines.append(
            " and ".join(f"{fmt_number(t)} mg/day" for t in by_hand)
            + " cannot be written into this order (capsule strength or units): change it by hand."
        )
    if plan.problem == "no-step-fits":
        lines.append(f"No dose in {fmt_number(step)} mg steps fits: change the dose or timing by hand.")
    usual = regimen(dose, plan.order.doses_per_day)
    if d.planned_end:
        lines.append(
            f"{values['Drug']} is planned to end on {fmt_date(d.planned_end)}: return to {usual} "
            "then, as the troughs fall."
        )
    else:
        lines.append(f"Return to {usual} when {values['drug']} stops, as the troughs fall.")
    return lines


def _source_line(d: InteractionDecision) -> str:
    sources = list(d.entry.sources)
    if d.potassium and d.potassium.high and d.potassium.source:
        sources.append(d.potassium.source)
    if d.creatinine and d.creatinine.rising and d.creatinine.source:
        sources.append(d.creatinine.source)
    return "Source: " + "; ".join(sources) + "."


def render(
    d: InteractionDecision,
    facts: PatientFacts,
    today: date,
    table: InteractionsTable,
    orders: OrderContext | None = None,
) -> Card:
    """The card for one decision."""
    entry = d.entry
    if d.kind == SWITCH_KIND:
        return _render_switch(d, facts, table)
    name = drug_name(entry, d.drug)
    values = text_values(entry, name)
    words = entry.outside_ivf_course if entry.pregnancy_only and not d.ivf_course else None
    summary = fill(words.summary if words else entry.summary, values)
    handling = fill(words.handling if words else entry.handling, values)
    effect = fill(entry.effect, values)
    if d.timing == "single-dose" and entry.dose_change is not None:
        summary = (
            f"Single dose of {name}: keep the tacrolimus dose, check a trough in {values.get('every', '2–3')} days"
        )
    elif d.timing == "recently-stopped" and d.stopped_on is not None and entry.class_ == "vaccine":
        summary = (
            f"{values['Drug']} was given on {fmt_date(d.stopped_on)} while on tacrolimus: watch for "
            "infection by the vaccine strain"
        )
    elif d.timing == "recently-stopped" and d.stopped_on is not None:
        summary = (
            f"{values['Drug']} stopped on {fmt_date(d.stopped_on)}: tacrolimus levels will fall "
            f"over {values.get('after_stop', 'several')} days; check troughs"
        )
    lines = [f"**Why:** {effect}"]
    lines += [f"**Tacrolimus:** {order_line(t)}" for t in d.tacrolimus]
    heading = bare_name(name)
    lines += [f"**{heading[:1].upper() + heading[1:]}:** {order_line(o)}" for o in d.orders]
    k_summary, k_lines = _potassium_text(d, name)
    c_summary, c_lines = _creatinine_text(d, name)
    lines += k_lines + c_lines
    not_for = entry.prefer_instead.not_for if entry.prefer_instead else None
    if d.alternative == "not-for-indication" and not_for is not None:
        shown = not_for.shown
        handling = (
            f"{values['alternative'][:1].upper() + values['alternative'][1:]} does not replace {name} "
            f"for {shown}: keep it, and check a tacrolimus trough within {values.get('first_within', '1–3')} "
            f"days and every {values.get('every', '2–3')} days while it is given."
        )
        summary = (
            f"{values['Drug']} raises tacrolimus levels: check a trough within {values.get('first_within', '1–3')} days"
        )
    if not d.escalated and (d.timing == "ongoing" or entry.dose_change is None):
        lines.append(f"**What to do:** {handling}")
    orders = orders or OrderContext(today)
    build = dose_orders(d.dose, orders)  # the detail and the suggestions share the dose orders
    lines += _dose_text(d, values, table.dose_rounding.step_mg, build)
    if d.fetal_risk:
        lines.append(f"**Pregnancy:** {d.fetal_risk}")
    never = d.entry.effect_direction in ("contraindicated", "never-together", "immunosuppression")
    given = any(o.resource_type == "Immunization" for o in d.orders)  # a vaccination done is no order to stop
    if d.remove_draft and (never or d.escalated) and all(not o.is_draft for o in d.orders) and not given:
        lines.append(f"{values['Drug']} is an active order: stop it in the medication list.")
    summary = k_summary or c_summary or summary

    suggestions = suggestions_for(d, facts, table, name, values, orders, build)
    monitoring = monitor_line(d, table)
    if monitoring:
        lines.append(monitoring)
    lines.append(_source_line(d))
    detail = _fit("\n\n".join(lines))
    exclusive = d.dose is not None and bool(d.dose.targets)
    return _card(d, summary, detail, suggestions, table, exclusive)


def _card(
    d: InteractionDecision,
    summary: str,
    detail: str,
    suggestions: Sequence[Suggestion],
    table: InteractionsTable,
    exclusive: bool,
) -> Card:
    """Alternative dose changes exclude each other; removal, tests and a replacement do not."""
    card = build_card(
        kind=d.kind,
        verdict=d.verdict,
        indicator=d.severity,
        summary=summary,
        detail=detail,
        source_label=table.source_label,
        suggestions=suggestions,
        override_reasons=reason_codings(table.override_reasons),
        links=_links(table),
    )
    if suggestions and not exclusive:
        card = replace(card, selection_behavior="any")
    return card


def _fit(detail: str) -> str:
    """Detail within the length a clinician reads; the source line is kept."""
    if len(detail) <= DETAIL_MAX:
        return detail
    body, _, source = detail.rpartition("\n\n")
    keep = DETAIL_MAX - len(source) - 4
    return body[:keep].rstrip() + "…\n\n" + source


def _links(table: InteractionsTable) -> tuple[Link, ...]:
    return tuple(Link(label=link.label, url=link.url) for link in table.links)


def monitor_line(d: InteractionDecision, table: InteractionsTable) -> str | None:
    if d.escalated or (d.timing != "ongoing" and d.entry.dose_change is not None):
        return None  # the result on record, or the dose line, says what to check
    parts: list[str] = []
    for item in d.entry.monitor:
        test = table.lab_tests.get(item.test)
        if test is None:
            continue
        if item.every_days is not None:
            checks = item.checks or table.default_checks.count
            default = " (number of checks: site default)" if item.checks is None else ""
            parts.append(f"{test.label} every {span(item.every_days)} days, {checks} checks{default}")
        else:
            parts.append(test.label)
    return f"**Monitoring:** {'; '.join(parts)}." if parts else None


def _render_switch(d: InteractionDecision, facts: PatientFacts, table: InteractionsTable) -> Card:
    entry = d.entry
    values = text_values(entry, "tacrolimus")
    lines = [f"**Why:** {fill(entry.effect, values)}"]
    lines += [f"**Tacrolimus:** {order_line(m)}" for m in d.tacrolimus]
    lines.append(f"**What to do:** {fill(entry.handling, values)}")
    monitor = monitor_suggestion(d, facts, table, "a change of tacrolimus formulation")
    monitoring = monitor_line(d, table)
    if monitoring:
        lines.append(monitoring)
    lines.append(_source_line(d))
    suggestions = (monitor,) if monitor else ()
    return _card(d, fill(entry.summary, values), _fit("\n\n".join(lines)), suggestions, table, False)

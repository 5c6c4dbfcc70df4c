"""Card 5, trough monitoring: the latest tacrolimus level against 4-8 ng/mL and the tiers, acted
on only when it is a true steady-state trough."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Mapping

from ..facts import TACROLIMUS, PatientFacts
from ..model import Card, Indicator, Suggestion
from ..text import age_days, fmt_date, fmt_measure, fmt_number
from .common import Detail, Protocol, current, day_of, make_card, order_action
from .focus import focus_of
from .vocab import at_least

KIND = "trough"


def evaluate_trough(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 5: the latest level while on therapy, or an order when none is recent."""
    focus = focus_of(facts)
    if not focus.applies or not focus.on_therapy:
        return []
    proto = Protocol(kb)
    detail = Detail(proto)
    unit = str(proto.entry("trough.target_low").get("unit") or "ng/mL")
    low = proto.num("trough.target_low")
    high = proto.num("trough.target_high")
    target = f"{fmt_number(low)}–{fmt_number(high)} {unit}"
    detail.number("Target, low", "trough.target_low")
    detail.number("Target, high", "trough.target_high")
    extended = any(m.release == "extended" for m in focus.active)
    ss_path = "trough.steady_state_days." + ("extended" if extended else "immediate")
    ss_days = proto.days(ss_path)
    detail.number("Steady state after" + (" (extended release)" if extended else ""), ss_path)
    interval = proto.days("trough.interval_days")
    detail.number("A trough is expected at least every", "trough.interval_days")
    change = focus.last_change()
    detail.add(f"- Tacrolimus since: {fmt_date(focus.therapy_start())}"
               + (f"; latest order started {fmt_date(change)}" if change and change != focus.therapy_start() else "")
               + f" ({', '.join(m.source for m in focus.active)})")
    steady_from = change + timedelta(days=ss_days) if change else None
    order = proto.entry("trough.order")
    source_id = str(proto.entry("trough.target_low")["source"])

    level = current(facts, TACROLIMUS, today, interval, "tacrolimus level", unit)
    for note in level.notes:
        detail.add(f"- {note}")
    if level.value is None or level.value.value is None:
        detail.add(f"- Tacrolimus level: {level.problem}.")
        when = (f" on or after {fmt_date(steady_from)}" if steady_from and steady_from > today else "")
        if steady_from and steady_from > today:
            indicator: Indicator = "info"
            summary = f"Tacrolimus started {fmt_date(change)}: draw a trough once at steady state, from {fmt_date(steady_from)}"
        elif not level.orderable:
            return [make_card(proto, detail, kind=KIND, indicator="info", source_id=source_id,
                              summary="Tacrolimus level pending: not acted on until final")]
        else:
            indicator = "warning"
            summary = f"No usable tacrolimus trough in the last {interval} days: order a trough level"
        reason = f"Tacrolimus trough monitoring (target {target}), just before the next dose{when}"
        suggestion = Suggestion(label="Order a tacrolimus trough level", is_recommended=True,
                                actions=(order_action(facts, order, reason),))
        return [make_card(proto, detail, kind=KIND, summary=summary, indicator=indicator,
                          source_id=source_id, suggestions=[suggestion])]

    m = level.value
    value = m.value
    assert value is not None and m.when is not None  # guaranteed by current()
    drawn = day_of(m.when)
    shown = f"{fmt_number(value)} {unit} ({fmt_date(drawn)})"
    detail.add(f"- Latest level: **{fmt_measure(m)}**, timing: {m.timing or 'not stated'}")
    not_true: str | None = None
    if m.timing != "trough":
        not_true = "its timing is not stated, so it is not a confirmed trough"
    elif change is None:
        not_true = "the tacrolimus start date is unknown, so steady state cannot be confirmed"
    elif steady_from is not None and drawn < steady_from:
        not_true = (f"it was drawn {age_days(change, drawn)} days after the start or dose change on "
                    f"{fmt_date(change)}, before steady state ({ss_days} days)")
    critical_at = proto.num("trough.critical_at")
    warning_at = proto.num("trough.warning_at")
    if not_true is not None:
        detail.add(f"\n**Not acted on as a true trough:** {not_true}. Do not adjust the dose on it; "
                   "draw a trough just before the next dose at steady state.")
        suggestion = Suggestion(label="Order a tacrolimus trough level", actions=(order_action(
            facts, order, f"Tacrolimus trough at steady state (target {target}), just before the next dose"),))
        pre_steady: Indicator = "info"
        if m.timing == "trough":
            # Drawn before steady state (or with the start unknown): levels can only climb further,
            # so the tiers apply even though the dose is not adjusted on this value.
            detail.number("Warning at", "trough.warning_at")
            detail.number("Critical at", "trough.critical_at")
            if at_least(value, critical_at):
                pre_steady = "critical"
            elif at_least(value, warning_at):
                pre_steady = "warning"
            summary = (f"Tacrolimus trough {shown} before steady state is already at or above "
                       f"{fmt_number(critical_at if pre_steady == 'critical' else warning_at)}: review now"
                       if pre_steady != "info" else
                       f"Tacrolimus level {shown} is not a steady-state trough: not acted on")
        else:
            # Timing not stated: a high value may be a peak, so repeat a true trough first.
            if at_least(value, critical_at):
                detail.number("Critical level", "trough.critical_at")
                pre_steady = "warning"
            summary = (f"Tacrolimus level {shown} is high but not a steady-state trough: repeat a true trough"
                       if pre_steady == "warning" else
                       f"Tacrolimus level {shown} is not a steady-state trough: not acted on")
        return [make_card(proto, detail, kind=KIND, summary=summary, indicator=pre_steady,
                          source_id=source_id, suggestions=[suggestion])]

    detail.number("Warning at", "trough.warning_at")
    detail.number("Critical at", "trough.critical_at")
    indicator = "info"
    if at_least(value, critical_at):
        indicator = "critical"
        summary = f"Tacrolimus trough {shown} is at or above {fmt_number(critical_at)}: review the dose now"
        source_id = str(proto.entry("trough.critical_at")["source"])
    elif at_least(value, warning_at):
        indicator = "warning"
        summary = f"Tacrolimus trough {shown} is at or above {fmt_number(warning_at)}, well above {target}"
    elif value > high:
        indicator = proto.text("trough.above_target_indicator")  # type: ignore[assignment]
        summary = f"Tacrolimus trough {shown} is above the {target} target"
    elif value < low:
        indicator = proto.text("trough.below_target_indicator")  # type: ignore[assignment]
        summary = f"Tacrolimus trough {shown} is below the {target} target"
        if facts.pregnancy.pregnant:
            detail.add("\nShe is pregnant: whole-blood troughs fall with the haematocrit while the unbound "
                       "drug rises, so raising the dose to chase a 'normal' trough can overshoot "
                       f"{detail.cite('clinical-reference')}.")
    else:
        summary = f"Tacrolimus trough {shown} is within the {target} target"
    return [make_card(proto, detail, kind=KIND, summary=summary, indicator=indicator, source_id=source_id)]

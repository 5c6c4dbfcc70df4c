"""Card 5, trough monitoring: the latest tacrolimus level against the 4–8 ng/mL target.

Tiers: in range, no card (it changes nothing); below 4 advisory (only at steady state: an early low
level still climbs); above 8 a warning, also before steady state (levels only climb, roughly doubling
by steady state); at or above 20 critical. A level of unstated timing may be a peak: a high one is
repeated as a true trough. A result that exists but cannot be compared (a unit that cannot be
converted, "<1.0") is shown as it was reported, never hidden behind "no usable trough". A high level
offers the next step: repeat the trough with creatinine and potassium.

Outside the protocol's scope (e.g. a transplant recipient) only the critical tier applies: the
4–8 ng/mL target is the protocol's, not theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from ..dosage import evening_dose
from ..facts import TACROLIMUS, Measurement, PatientFacts
from ..knowledge_model import ProtocolTable
from ..model import Action, Card, Indicator, Suggestion
from ..text import fmt_date, fmt_measure, fmt_number, reported
from ..vocab import FAMILY_TROUGH
from .common import (
    Current,
    Detail,
    conflict_note,
    current,
    day_of,
    make_card,
    order_action,
    pending_at_least,
    pending_note,
    protocol_of,
)
from .focus import Focus, focus_of
from .scope import scope_of
from .vocab import ORDERING_HOOKS, above, at_least, below

KIND = FAMILY_TROUGH
SCHEDULE = frozenset({"no-trough", "draw-at-steady-state"})  # about when to draw, not about a result

Verdict = Literal[
    "critical",
    "critical-pending",
    "above-target",
    "twelve-hour-level",
    "below-target",
    "high-level-unknown-timing",
    "uninterpretable",
    "no-trough",
    "draw-at-steady-state",
]


@dataclass(frozen=True)
class TroughDecision:
    verdict: Verdict | None
    level: Measurement | None = None  # the result the decision is on (the worse of a conflict)
    steady_from: date | None = None  # first day a trough is at steady state, when known
    before_steady_state: bool | None = None  # None: cannot be told
    current: Current | None = None


def steady_state_from(focus: Focus, days: int) -> tuple[date | None, bool]:
    """First steady-state day, and whether it rests only on the order date (start not recorded)."""
    change = focus.last_change()
    if change is not None:
        return change + timedelta(days=days), False
    authored = [m.start for m in focus.active if m.start is not None]
    # Only the order date is known: the course began on it or later, so this is the earliest it can be.
    return (max(authored) + timedelta(days=days), True) if authored else (None, True)


def decide_trough(
    facts: PatientFacts, today: date, proto: ProtocolTable, focus: Focus, *, protocol: bool
) -> TroughDecision:
    """The trough decision for a patient on tacrolimus."""
    trough = proto.trough
    unit = trough.target_low.unit or "ng/mL"
    low, high = trough.target_low.value, trough.target_high.value
    critical_at = trough.critical_at.value
    extended = any(m.release == "extended" for m in focus.active)
    ss_days = (trough.steady_state_days.extended if extended else trough.steady_state_days.immediate).value
    steady_from, from_order_date = steady_state_from(focus, ss_days)
    level = current(facts, TACROLIMUS, today, trough.interval_days.value, "tacrolimus level", unit, limits=True)
    pending_critical = pending_at_least(level, critical_at)
    if level.value is None or level.value.value is None:
        if pending_critical is not None:
            return TroughDecision("critical-pending", pending_critical, steady_from, current=level)
        if not protocol:
            return TroughDecision(None)
        if level.shown_only is not None:
            return TroughDecision("uninterpretable", level.shown_only, steady_from, current=level)
        if level.pending is not None:
            return TroughDecision(None)  # a result is on its way: nothing to order
        if steady_from is not None and steady_from > today and not from_order_date:
            return TroughDecision("draw-at-steady-state", None, steady_from, current=level)
        return TroughDecision("no-trough", None, steady_from, current=level)
    m = level.worst() or level.value
    value = m.value
    assert value is not None and m.when is not None
    drawn = day_of(m.when)
    before = None if steady_from is None else drawn < steady_from
    verdict: Verdict | None = None
    if m.timing != "trough":
        if above(value, high) and protocol or at_least(value, critical_at):
            verdict = "high-level-unknown-timing"
    elif at_least(value, critical_at):
        verdict = "critical"
    elif not protocol:
        verdict = None
    elif above(value, high):
        verdict = "twelve-hour-level" if _twelve_hours_after_evening_dose(m, focus, proto) else "above-target"
    elif below(value, low) and before is False:
        verdict = "below-target"
    if level.limit is not None and verdict not in _LIMIT_DECIDES[level.limit in (">", ">=")]:
        # ">5" may be anything above 5, "<25" anything below: decide only on the limit's side.
        verdict = "uninterpretable" if protocol or level.limit in ("<", "<=") else None
    if level.pending is not None and verdict != "critical":
        if pending_critical is not None:
            return TroughDecision("critical-pending", pending_critical, steady_from, current=level)
        verdict = None  # a newer result is on its way: no decision on the older one
    return TroughDecision(verdict, m, steady_from, before, level)


# The verdicts a limit can support: a ">" limit only that the level is high, a "<" limit only that it is low.
_LIMIT_DECIDES: dict[bool, frozenset[Verdict | None]] = {
    True: frozenset({"critical", "above-target", "twelve-hour-level", "high-level-unknown-timing"}),
    False: frozenset({"below-target"}),
}


def _twelve_hours_after_evening_dose(m: Measurement, focus: Focus, proto: ProtocolTable) -> bool:
    """A morning level while every tacrolimus order is one evening dose a day: drawn about 12 h after the
    dose, it is higher than the trough (24 h after a once-daily dose)."""
    morning = proto.trough.morning_draw_hours
    if m.when is None or not focus.active or not morning.from_ <= m.when.hour < morning.before:
        return False
    evening = proto.trough.evening_dose_from_hour.value
    return all(o.doses_per_day == 1 and evening_dose(o.resource, evening) for o in focus.active)


def evaluate_trough(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 5: the latest level while on therapy, or an order when none is recent."""
    focus = focus_of(facts)
    if not focus.on_therapy:
        return []
    proto = protocol_of(kb)
    protocol = scope_of(facts, today, kb).protocol
    decision = decide_trough(facts, today, proto, focus, protocol=protocol)
    if decision.verdict is None:
        return []
    if decision.verdict in SCHEDULE and facts.hook in ORDERING_HOOKS and not focus.drafts:
        return []  # when to draw the next trough belongs to the chart or a tacrolimus order, not to paracetamol
    return [_render(facts, decision, proto, protocol)]


def _next_steps(facts: PatientFacts, proto: ProtocolTable, target: str, recommended: bool) -> Suggestion:
    """Repeat the trough with creatinine and potassium: what a high level calls for."""
    actions: list[Action] = [
        order_action(
            facts, proto.trough.order, f"Repeat tacrolimus trough (target {target}), just before the next dose"
        ),
        order_action(facts, proto.safety.creatinine.order, "High tacrolimus level: kidney function"),
        order_action(facts, proto.safety.potassium.order, "High tacrolimus level: potassium"),
    ]
    return Suggestion(
        label="Repeat the trough with creatinine and potassium", actions=tuple(actions), is_recommended=recommended
    )


def _render(facts: PatientFacts, d: TroughDecision, proto: ProtocolTable, protocol: bool) -> Card:
    detail = Detail(proto)
    trough = proto.trough
    unit = trough.target_low.unit or "ng/mL"
    target = "the patient's target"
    if protocol:
        detail.number("target", trough.target_low)
        detail.number("target", trough.target_high)
        target = f"{fmt_number(trough.target_low.value)}–{fmt_number(trough.target_high.value)} {unit}"
    critical = detail.number("critical level", trough.critical_at)
    source_id = trough.target_low.source
    suggestions: list[Suggestion] = []
    indicator: Indicator = "warning"
    m = d.level
    shown = f"{reported(m)} ({fmt_date(m.when)})" if m is not None else ""
    if m is not None:
        detail.add(
            f"- Latest level: **{fmt_measure(m)}**, "
            + ("drawn as a trough" if m.timing == "trough" else "timing not stated")
        )
    if d.current is not None:
        pending = pending_note("tacrolimus level", d.current) if d.verdict != "critical-pending" else None
        for line in (conflict_note("tacrolimus level", d.current), pending):
            if line:
                detail.add(f"- {line}")
    if d.steady_from is not None and d.verdict not in {"no-trough", "uninterpretable"}:
        detail.add(f"- Steady state from: {fmt_date(d.steady_from)}")
    high_next = (
        "\nNext: repeat the trough just before the next dose, with creatinine and potassium; look for "
        "an interacting drug, diarrhoea or a level drawn too soon after a dose."
    )

    if d.verdict == "critical":
        indicator = "critical"
        summary = f"Tacrolimus trough {shown} is at or above {critical}: hold or reduce the dose now"
        source_id = trough.critical_at.source
        detail.add(high_next)
        suggestions.append(_next_steps(facts, proto, target, True))
    elif d.verdict == "critical-pending":
        indicator = "critical"
        assert m is not None
        summary = f"Tacrolimus level {shown} is {m.status}, final pending, and at or above {critical}: check it now"
        source_id = trough.critical_at.source
        detail.add(
            f"\nThe laboratory has not released the final result; a {m.status} level this high is acted on "
            "now: hold or reduce the dose if it is confirmed, and ask the laboratory for the final value."
        )
        detail.add(high_next)
        suggestions.append(_next_steps(facts, proto, target, True))
    elif d.verdict == "above-target":
        if d.before_steady_state:
            summary = f"Tacrolimus trough {shown} is above {target} before steady state: it will climb further, reduce the dose"
            detail.add(
                "\nDrawn before steady state: the level is still rising (roughly doubling by steady "
                "state), so it is already too high."
            )
        else:
            summary = f"Tacrolimus trough {shown} is above the {target} target: review the dose"
            detail.add("\nAbove the target exposure brings kidney, glucose and infection risk without benefit.")
        detail.add(high_next)
        suggestions.append(_next_steps(facts, proto, target, True))
    elif d.verdict == "twelve-hour-level":
        summary = (
            f"Tacrolimus level {shown} is a 12-hour level after the evening dose, higher than the "
            "trough: repeat before the next dose"
        )
        detail.add(
            "\nShe takes tacrolimus once daily in the evening, so a morning level is a 12-hour level, "
            "higher than the trough (24 h after the dose). Repeat the level just before the evening dose "
            "before cutting the dose."
        )
        if trough.evening_dose_from_hour.site_default or trough.morning_draw_hours.site_default:
            detail.unconfirmed("the dose and draw hours that make a level a 12-hour level")
        suggestions.append(_next_steps(facts, proto, target, True))
    elif d.verdict == "high-level-unknown-timing":
        summary = f"Tacrolimus level {shown} is high, timing not stated: repeat as a true trough"
        detail.add(
            "\nA level of unstated timing may be a peak: draw a trough just before the next dose before "
            "changing the dose."
        )
        suggestions.append(_next_steps(facts, proto, target, True))
    elif d.verdict == "below-target":
        indicator = "info"
        summary = f"Tacrolimus trough {shown} is below the {target} target at steady state"
        if facts.pregnancy.pregnant:
            detail.add(
                "\nShe is pregnant: whole-blood troughs fall with the haematocrit while the unbound drug "
                "rises, so raising the dose to chase a 'normal' trough can overshoot."
            )
            detail.cite("clinical-basis", "Pharmacokinetics")
        else:
            detail.add("\nCheck adherence and the draw time before raising the dose.")
    elif d.verdict == "uninterpretable":
        indicator = "info"
        assert m is not None
        summary = f"Tacrolimus level reported as {reported(m)} ({fmt_date(m.when)}): cannot be compared with {target}"
        detail.add(
            f"\nThe result cannot be compared with the target ({m.problem or 'a limit, not a value'}). Ask the laboratory for a "
            f"value in {unit}; a result below the detection limit suggests a missed dose."
        )
    elif d.verdict == "draw-at-steady-state":
        indicator = "info"
        summary = f"Draw the first tacrolimus trough at steady state, from {fmt_date(d.steady_from)}"
        suggestions.append(
            Suggestion(
                label="Order a tacrolimus trough level",
                actions=(
                    order_action(
                        facts,
                        trough.order,
                        f"Tacrolimus trough at steady state (target {target}), on or after {fmt_date(d.steady_from)}",
                    ),
                ),
            )
        )
    else:  # no-trough
        interval = detail.number("the trough interval", trough.interval_days)
        summary = f"No usable tacrolimus trough in the last {interval}: order a trough level"
        if d.current is not None and d.current.problem:
            detail.add(f"- {d.current.problem[0].upper()}{d.current.problem[1:]}.")
        suggestions.append(
            Suggestion(
                label="Order a tacrolimus trough level",
                is_recommended=True,
                actions=(
                    order_action(
                        facts,
                        trough.order,
                        f"Tacrolimus trough monitoring (target {target}), just before the next dose",
                    ),
                ),
            )
        )
    return make_card(
        proto,
        detail,
        kind=KIND,
        verdict=str(d.verdict),
        summary=summary,
        indicator=indicator,
        source_id=source_id,
        suggestions=suggestions,
    )

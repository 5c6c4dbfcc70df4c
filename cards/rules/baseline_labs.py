"""Card 4, baseline labs: CBC, liver tests, creatinine, glucose and potassium before starting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ..facts import Measurement, PatientFacts
from ..knowledge_model import BaselineTest
from ..model import Action, Card, Suggestion
from ..text import age_days, fits_summary, fmt_measure
from ..vocab import FAMILY_BASELINE_LABS
from .common import (
    Detail,
    applicable_cutoff,
    make_card,
    order_action,
    protocol_of,
    ratio_now,
    why_unusable,
)
from .eligibility import decide_eligibility
from .focus import focus_of
from .scope import scope_of
from .vocab import at_least

KIND = FAMILY_BASELINE_LABS


def _in_window(m: Measurement, today: date, days: int) -> bool:
    age = age_days(m.when, today)
    return age is not None and 0 <= age <= days


def evaluate_baseline_labs(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 4: baseline tests without a result in the look-back window, with one order suggestion."""
    focus = focus_of(facts)
    if not focus.applies or focus.continuing or not scope_of(facts, today, kb).protocol:
        return []  # on therapy, safety monitoring takes over
    proto = protocol_of(kb)
    if decide_eligibility(facts, today, proto).verdict == "below-cutoff":
        return []  # tacrolimus is not supported: no work-up for it
    if not focus.drafts:
        # patient-view: only a candidate the ratio supports is about to need a baseline.
        ratio = ratio_now(facts, today, proto)
        cut = applicable_cutoff(facts, today, proto)
        if ratio.value is None or ratio.value.value is None or not at_least(ratio.value.value, cut.value):
            return []
    labs = proto.baseline_labs
    window = labs.lookback_days.value
    detail = Detail(proto)
    missing: list[BaselineTest] = []
    found: list[str] = []
    pending: list[str] = []
    for test in labs.tests:
        results = [m for concept in test.concepts for m in facts.results(concept) if _in_window(m, today, window)]
        usable = [m for m in results if why_unusable(m, None) is None]
        if usable:
            newest = max(usable, key=lambda m: m.when or today)
            found.append(f"- {test.label}: {fmt_measure(newest)}")
            continue
        waiting = [m for m in results if m.status in {"preliminary", "registered"}]
        if waiting:
            pending.append(
                f"- {test.label}: {fmt_measure(waiting[0])} is {waiting[0].status}; "
                "awaiting the final result (not re-ordered)"
            )
            continue
        missing.append(test)
    if not missing:
        return []
    shown = detail.number("the baseline look-back window", labs.lookback_days)
    detail.add("")
    detail.add(f"No final result in the last {shown}: " + ", ".join(t.label for t in missing) + ".")
    if pending:
        detail.add("")
        detail.add("**Pending:**")
        detail.lines += pending
    detail.add("")
    detail.add("Before tacrolimus: complete blood count, liver function tests, creatinine, glucose and potassium.")
    detail.cite(labs.source, labs.section)
    labels = ", ".join(t.label.split(" (")[0] for t in missing)
    summary = f"Order baseline labs before tacrolimus: {labels}"
    if not fits_summary(summary):
        summary = f"Order {len(missing)} missing baseline labs before tacrolimus"
    actions: tuple[Action, ...] = tuple(
        order_action(facts, t.order, f"Baseline before tacrolimus: {t.label}") for t in missing
    )
    suggestion = Suggestion(
        label=f"Order the {len(missing)} missing baseline test(s)", actions=actions, is_recommended=True
    )
    return [
        make_card(
            proto,
            detail,
            kind=KIND,
            verdict="baseline-missing",
            summary=summary,
            indicator="warning",
            source_id=labs.source,
            suggestions=[suggestion],
        )
    ]

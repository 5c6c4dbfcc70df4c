"""Card 1, candidate selection: is the Th1/Th2 ratio at or above the applicable cut-off?"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from ..facts import AUTOIMMUNE, NK_CELLS, RIF, PatientFacts
from ..model import Card, Indicator, Suggestion
from ..text import fmt_date, fmt_measure, fmt_number
from .common import (
    Detail,
    Protocol,
    applicable_cutoff,
    describe_ratio,
    make_card,
    order_action,
    ratio_now,
)
from .focus import focus_of
from .vocab import at_least

KIND = "eligibility"


def evaluate_eligibility(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 1: tacrolimus selected, signed, or a candidate in view — does the ratio support it?"""
    focus = focus_of(facts)
    if not focus.applies or focus.continuing:
        # On therapy (or pregnant) the selection was made; monitoring and care cards take over.
        return []
    proto = Protocol(kb)
    detail = Detail(proto)
    cutoff = applicable_cutoff(facts, today, proto)
    ratio = ratio_now(facts, today, proto)
    rif = facts.has_condition(RIF)
    suggestions: list[Suggestion] = []

    if cutoff.transfer is not None:
        kind = "euploid blastocyst transfer" if cutoff.transfer.euploid else "embryo transfer"
        detail.add(f"- Planned {kind}: {fmt_date(cutoff.transfer.when)} ({cutoff.transfer.source})")
    cut = detail.number("Th1/Th2 cut-off" + (" for a euploid blastocyst transfer"
                                             if cutoff.path.endswith("euploid_blastocyst") else ""),
                        cutoff.path)

    indicator: Indicator
    if ratio.value is not None and ratio.value.value is not None:
        value = ratio.value.value
        detail.add(f"- Th1/Th2 ratio: **{describe_ratio(ratio.value)}**")
        detail.number("Maximum age of a ratio result", "eligibility.ratio_max_age_days")
        shown = fmt_number(value)
        when = fmt_date(ratio.value.when)
        if at_least(value, cutoff.value):
            indicator = "info" if rif else "warning"
            summary = (f"Th1/Th2 ratio {shown} ({when}) meets the {cut} cut-off"
                       + (": tacrolimus candidate" if rif else ", but RIF is not documented"))
        else:
            indicator = "warning"
            summary = (f"Th1/Th2 ratio {shown} ({when}) is below the {cut} cut-off: "
                       "the evidence does not support tacrolimus")
    else:
        indicator = "warning"
        problem = ratio.problem or "no usable Th1/Th2 ratio"
        detail.add(f"- Th1/Th2 ratio: {problem}.")
        detail.number("Maximum age of a ratio result", "eligibility.ratio_max_age_days")
        if ratio.orderable:
            summary = "No current Th1/Th2 ratio: order the test before deciding on tacrolimus"
            order = proto.entry("eligibility.th1_th2_order")
            suggestions.append(Suggestion(
                label="Order a Th1/Th2 cell ratio", is_recommended=True,
                actions=(order_action(facts, order, "Tacrolimus candidate selection (RIF): Th1/Th2 ratio"),)))
        else:
            summary = "Th1/Th2 ratio not final yet: wait for the final result before deciding"
    for note in ratio.notes:
        detail.add(f"- {note}")

    detail.add("")
    if rif:
        condition = next(c for c in facts.conditions if c.concept == RIF)
        detail.add(f"Recurrent implantation failure is documented ({condition.display}, {condition.source}).")
    else:
        detail.add("**Recurrent implantation failure is not documented** (no active Condition coded "
                   "recurrent implantation failure): the evidence comes from women with RIF only.")
    _context_notes(facts, detail)
    _outcomes(proto, detail)
    return [make_card(proto, detail, kind=KIND, summary=summary, indicator=indicator,
                      source_id=str(proto.entry(cutoff.path)["source"]), suggestions=suggestions)]


def _context_notes(facts: PatientFacts, detail: Detail) -> None:
    autoimmune = [c for c in facts.conditions if c.concept == AUTOIMMUNE]
    if autoimmune:
        names = ", ".join(f"{c.display} ({c.source})" for c in autoimmune)
        detail.add(f"Autoimmune disease noted: {names}. Women with autoimmune disease who meet the "
                   f"Th1/Th2 criterion are appropriate candidates {detail.cite('guideline')}.")
    nk = facts.latest(NK_CELLS)
    if nk is not None and nk.value is not None:
        raised = nk.reference_high is not None and nk.value > nk.reference_high
        limit = (f" (upper reference limit {fmt_number(nk.reference_high)})"
                 if nk.reference_high is not None else " (no reference range given)")
        detail.add(f"NK cells: {fmt_measure(nk)}{limit}" + (
            f" — raised; with the Th1/Th2 criterion met she is an appropriate candidate "
            f"{detail.cite('guideline')}." if raised else "."))


def _outcomes(proto: Protocol, detail: Detail) -> None:
    outcomes = proto.data.get("outcomes") or []
    if not outcomes:
        return
    detail.add("")
    detail.add("**Expected outcomes with tacrolimus** (RIF with an elevated Th1/Th2 ratio)")
    detail.add("")
    detail.add("| Outcome | Rate | Population | Source |")
    detail.add("|---|---|---|---|")
    for o in outcomes:
        detail.add(f"| {o['measure']} | {o['value']} | {o.get('population', '')} | "
                   f"{detail.cite(str(o['source']))} |")

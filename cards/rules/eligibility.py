"""Card 1, candidate selection: is the Th1/Th2 ratio at or above the applicable cut-off?

Where the card shows (so the same card does not follow the clinician through every hook):
- patient-view: only a woman the ratio supports and who is not on tacrolimus yet (a candidate: the
  card prompts the decision to start);
- order-select and order-sign of a new start: only what must stop or delay the order (below the
  cut-off, no or pending ratio, RIF not documented, conflicting ratios). "Candidate" beside an order
  already being written would change nothing.
Never for a patient outside the protocol's scope, never for a continuing course.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ..facts import AUTOIMMUNE, NK_CELLS, RIF, PatientFacts
from ..knowledge_model import ProtocolTable
from ..model import Card, Indicator, Suggestion
from ..text import fmt_date, fmt_number, plain
from ..vocab import FAMILY_ELIGIBILITY
from .common import (
    Current,
    Cutoff,
    Detail,
    applicable_cutoff,
    conflict_note,
    describe_ratio,
    make_card,
    order_action,
    pending_note,
    protocol_of,
    ratio_now,
)
from .focus import focus_of
from .scope import Scope, scope_of
from .vocab import ORDERING_HOOKS, PATIENT_VIEW, at_least

KIND = FAMILY_ELIGIBILITY

Verdict = Literal[
    "candidate",
    "rif-not-documented",
    "below-cutoff",
    "no-ratio",
    "ratio-pending",
    "newer-result-pending",
    "conflicting-ratios",
]
# What still needs doing before tacrolimus is signed: shown on order-sign too.
BLOCKING = frozenset(
    {"rif-not-documented", "below-cutoff", "no-ratio", "ratio-pending", "newer-result-pending", "conflicting-ratios"}
)


@dataclass(frozen=True)
class Eligibility:
    verdict: Verdict
    ratio: Current
    cutoff: Cutoff
    rif: bool


def decide_eligibility(facts: PatientFacts, today: date, proto: ProtocolTable) -> Eligibility:
    """The candidacy decision, from the ratio that may be acted on and the applicable cut-off."""
    cutoff = applicable_cutoff(facts, today, proto)
    ratio = ratio_now(facts, today, proto)
    rif = facts.has_condition(RIF)
    verdict: Verdict
    if ratio.pending is not None and ratio.value is not None:
        verdict = "newer-result-pending"
    elif ratio.value is None or ratio.value.value is None:
        verdict = "ratio-pending" if ratio.pending is not None else "no-ratio"
    elif ratio.conflicts:
        verdict = "conflicting-ratios"
    elif not at_least(ratio.value.value, cutoff.value):
        verdict = "below-cutoff"
    else:
        verdict = "candidate" if rif else "rif-not-documented"
    return Eligibility(verdict, ratio, cutoff, rif)


def evaluate_eligibility(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 1: tacrolimus being started, or a candidate in view — does the ratio support it?"""
    focus = focus_of(facts)
    if not focus.applies or focus.continuing:
        return []  # on therapy the selection was made; monitoring and care cards take over
    scope = scope_of(facts, today, kb)
    if not scope.protocol:
        return []
    proto = protocol_of(kb)
    decision = decide_eligibility(facts, today, proto)
    if facts.hook == PATIENT_VIEW and decision.verdict != "candidate":
        return []  # a chart opened is not the moment for "order the test" or "not supported"
    if facts.hook in ORDERING_HOOKS and decision.verdict not in BLOCKING:
        return []
    return [_render(facts, decision, scope, proto)]


def _render(facts: PatientFacts, d: Eligibility, scope: Scope, proto: ProtocolTable) -> Card:
    detail = Detail(proto)
    euploid = d.cutoff.euploid
    cut = detail.number("Th1/Th2 cut-off", d.cutoff.entry)
    cut_text = f"{cut}{' (euploid blastocyst transfer)' if euploid else ''}"
    suggestions: list[Suggestion] = []
    indicator: Indicator = "warning"
    value = d.ratio.value.value if d.ratio.value is not None else None
    shown = f"{fmt_number(value)} ({fmt_date(d.ratio.value.when)})" if value is not None and d.ratio.value else ""

    if d.verdict == "candidate":
        indicator = "info"
        summary = f"Tacrolimus candidate: Th1/Th2 ratio {shown} meets the {cut} cut-off"
    elif d.verdict == "rif-not-documented":
        summary = f"Th1/Th2 ratio {shown} meets the {cut} cut-off, but RIF is not documented: confirm RIF first"
    elif d.verdict == "below-cutoff":
        summary = f"Th1/Th2 ratio {shown} is below the {cut} cut-off: the evidence does not support tacrolimus"
    elif d.verdict == "conflicting-ratios":
        summary = "Two different Th1/Th2 ratios at the same time: confirm with the laboratory before deciding"
    elif d.verdict == "newer-result-pending":
        summary = "Newer Th1/Th2 result pending: wait for the final result before deciding on tacrolimus"
    elif d.verdict == "ratio-pending":
        summary = "Th1/Th2 ratio not final yet: wait for the final result before deciding on tacrolimus"
    else:
        summary = "No current Th1/Th2 ratio: order the test before deciding on tacrolimus"
        if d.ratio.orderable:
            order = proto.eligibility.th1_th2_order
            suggestions.append(
                Suggestion(
                    label="Order a Th1/Th2 cell ratio",
                    is_recommended=True,
                    actions=(order_action(facts, order, "Tacrolimus candidate selection (RIF): Th1/Th2 ratio"),),
                )
            )

    if d.ratio.value is not None:
        detail.add(f"- Th1/Th2 ratio: **{describe_ratio(d.ratio.value)}**; cut-off {cut_text}")
    else:
        detail.add(f"- Th1/Th2 ratio: {d.ratio.problem}.")
        if "days old" in (d.ratio.problem or ""):
            detail.number("how old a ratio may be", proto.eligibility.ratio_max_age_days)
    pending = pending_note("Th1/Th2 ratio", d.ratio) if d.ratio.value is not None else None
    for line in (conflict_note("Th1/Th2 ratio", d.ratio, decides=False), pending):
        if line:
            detail.add(f"- {line}")
    if d.cutoff.transfer is not None:
        kind = "Euploid blastocyst transfer" if d.cutoff.transfer.euploid else "Embryo transfer"
        detail.add(f"- {kind}: {fmt_date(d.cutoff.transfer.when)}")
    if d.rif:
        condition = next(c for c in facts.conditions if c.concept == RIF)
        detail.add(f"- Recurrent implantation failure: documented ({plain(condition.display)})")
    else:
        detail.add(
            "- **Recurrent implantation failure is not documented**: the evidence comes from women with RIF only."
        )
    if scope.sex_unrecorded:
        detail.add("- Sex is not recorded: the protocol is applied because an IVF course is on record.")
    if d.verdict == "candidate":
        _context_notes(facts, detail)
        _outcomes(proto, detail, d.cutoff.entry.source)
    return make_card(
        proto,
        detail,
        kind=KIND,
        verdict=d.verdict,
        summary=summary,
        indicator=indicator,
        source_id=d.cutoff.entry.source,
        suggestions=suggestions,
    )


def _context_notes(facts: PatientFacts, detail: Detail) -> None:
    autoimmune = [c for c in facts.conditions if c.concept == AUTOIMMUNE]
    if autoimmune:
        names = ", ".join(plain(c.display) for c in autoimmune)
        detail.add(
            f"- Autoimmune disease on record ({names}): with the Th1/Th2 criterion met she is an appropriate candidate."
        )
        detail.cite("guideline")
    nk = facts.latest(NK_CELLS)
    if nk is not None and nk.value is not None and nk.reference_high is not None and nk.value > nk.reference_high:
        detail.add(
            f"- NK cells raised ({fmt_number(nk.value)}, upper limit {fmt_number(nk.reference_high)}, "
            f"{fmt_date(nk.when)}): with the Th1/Th2 criterion met she is an appropriate candidate."
        )
        detail.cite("guideline")


def _outcomes(proto: ProtocolTable, detail: Detail, source_id: str) -> None:
    """One line of expected outcomes from the study the cut-off comes from."""
    rows = [o for o in proto.outcomes if o.source == source_id]
    if not rows:
        return
    detail.add("")
    detail.add(
        "Expected with tacrolimus ("
        + (rows[0].population or "")
        + "): "
        + "; ".join(f"{o.measure.lower()} {o.value}" for o in rows)
        + "."
    )
    detail.cite(source_id)

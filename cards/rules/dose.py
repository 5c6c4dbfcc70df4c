"""Card 2, dose: the patient's total daily tacrolimus against the 4 mg/day maximum and the band dose.

Totals, not orders: every tacrolimus draft of the session counts (a 1 mg and a 0.5 mg capsule order
written together is normal practice), and an active order that no draft replaces is duplicate
therapy. The 4 mg/day maximum is the only confirmed number; the ratio bands and the Th1 % trigger are
site placeholders until the clinic confirms them, so a change to a band dose is recommended only then.
A card is made only when it changes what the prescriber does: no card for a matching dose, nor for a
dose below an unconfirmed band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from ..facts import TH1_PCT, MedicationFact, PatientFacts
from ..knowledge_model import ProtocolTable, typed
from ..model import Card, Indicator, Suggestion
from ..orders import OrderContext, build_order, dose_change, products_of
from ..text import fmt_number, plain
from ..vocab import FAMILY_DOSE
from .common import (
    Detail,
    applicable_cutoff,
    current,
    make_card,
    protocol_of,
    ratio_now,
)
from .focus import Focus, focus_of
from .scope import scope_of
from .vocab import ORDER_SELECT, PATIENT_VIEW, TACROLIMUS, above, at_least, below, same

KIND = FAMILY_DOSE
LEVEL_CHANGING = frozenset({"raises-levels", "lowers-levels"})
BANDS_LABEL = "the ratio dose bands"
TRIGGER_LABEL = "the Th1 % at which 1 mg is added"

Verdict = Literal[
    "above-maximum",
    "above-study-maximum",
    "extended-release-start",
    "protocol-not-applied",
    "duplicate-therapy",
    "extended-release-twice-daily",
    "above-band-dose",
    "differs-from-band-dose",
    "dose-unreadable",
]


def level_changing_drugs(facts: PatientFacts, kb: Mapping[str, Any]) -> list[MedicationFact]:
    """Orders of drugs that raise or lower tacrolimus levels (the interaction table): with one of them,
    the band dose is no longer the right dose, and the interaction card handles the change."""
    keys = {
        drug
        for entry in typed(kb).interactions.entries
        if entry.effect_direction in LEVEL_CHANGING
        for drug in entry.drugs
    }
    return [m for m in facts.medications if not m.has(TACROLIMUS) and m.systemic and keys & set(m.ingredients)]


@dataclass(frozen=True)
class Recommendation:
    """The protocol's dose for a new start, or why there is none."""

    daily_mg: float | None  # None: no dose can be recommended
    problem: str | None  # why not
    highest_allowed_mg: float | None = None  # the most any band dose the chart allows could be
    confirmed: bool = False  # the bands and the Th1 % trigger are confirmed by the site
    basis: str = ""  # the ratio and Th1 % it rests on, in words
    choices: tuple[float, ...] = ()  # with the Th1 % unknown: each daily dose the chart allows


def recommend_daily_dose(facts: PatientFacts, today: date, proto: ProtocolTable, detail: Detail) -> Recommendation:
    """The band dose (+ add-on, capped), never from unusable data; with the Th1 % unknown, the most
    the chart allows (band + add-on) so a draft above every possibility is still flagged."""
    cutoff = applicable_cutoff(facts, today, proto)
    ratio = ratio_now(facts, today, proto)
    max_mg = proto.dose.max_daily_mg.value
    if ratio.value is None or ratio.value.value is None or ratio.pending is not None or ratio.conflicts:
        return Recommendation(None, "no single current, final Th1/Th2 ratio")
    value = ratio.value.value
    if not at_least(value, cutoff.value):
        return Recommendation(None, f"the ratio {fmt_number(value)} is below the cut-off")
    bands = proto.dose.bands
    detail.cite(bands.source, bands.section)
    band = next(
        (
            b
            for b in bands.table
            if at_least(value, b.ratio_min) and (b.ratio_below is None or below(value, b.ratio_below))
        ),
        None,
    )
    if band is None:
        return Recommendation(None, f"no dose band covers the ratio {fmt_number(value)}")
    base = band.daily_mg
    addon = proto.dose.th1_high_addon
    add = addon.add_mg.value
    th1_min = addon.th1_pct_min.value
    confirmed = not bands.site_default and not addon.th1_pct_min.site_default
    if bands.site_default:
        detail.unconfirmed(BANDS_LABEL)
    detail.number(TRIGGER_LABEL, addon.th1_pct_min)
    basis = (
        f"ratio {fmt_number(value)} ({ratio.value.when.date().isoformat() if ratio.value.when else '?'})"
        f" → band {fmt_number(base)} mg/day"
    )
    th1 = current(facts, TH1_PCT, today, proto.eligibility.ratio_max_age_days.value, "Th1 %", "%")
    # Without confirmed bands and trigger, only a dose above the band plus the add-on is flagged:
    # it exceeds every dose the chart could allow, whatever the Th1 %.
    highest = min(base + add, max_mg)
    if th1.value is None or th1.value.value is None:
        return Recommendation(
            None,
            "the Th1 % is not available",
            highest_allowed_mg=highest,
            confirmed=confirmed,
            choices=tuple(sorted({min(base, max_mg), highest})),
            basis=f"{basis}; Th1 % unknown, so {fmt_number(base)} or {fmt_number(highest)} mg/day",
        )
    high = at_least(th1.value.value, th1_min)
    total = min(base + add if high else base, max_mg)
    basis += (
        f"; Th1 {fmt_number(th1.value.value)} % is {'at or above' if high else 'below'} "
        f"{fmt_number(th1_min)} %{' (+' + fmt_number(add) + ' mg)' if high else ''}"
    )
    return Recommendation(
        total, None, highest_allowed_mg=total if confirmed else highest, confirmed=confirmed, basis=basis
    )


@dataclass(frozen=True)
class DoseDecision:
    verdict: Verdict | None  # None: nothing to say
    drafts: tuple[MedicationFact, ...]  # every tacrolimus draft of the session
    total_mg: float | None  # their total daily dose (with any active order not replaced)
    duplicates: tuple[MedicationFact, ...] = ()  # active orders no draft replaces
    unreadable: tuple[MedicationFact, ...] = ()  # drafts whose daily dose could not be read
    rec: Recommendation | None = None
    interacting: tuple[MedicationFact, ...] = field(default=())
    scope_reason: str = ""  # why the protocol was not applied (protocol-not-applied, above-study-maximum)


def _formulation_switch(active: MedicationFact, drafts: tuple[MedicationFact, ...]) -> bool:
    """An active order of the other release than every draft: a change of formulation, which the
    release-switch card handles (one concern, one card), not duplicate therapy. With data missing that
    card may be withheld, so then the pair stays duplicate therapy here."""
    return (
        bool(drafts)
        and active.release is not None
        and all(d.release is not None and d.release != active.release for d in drafts)
    )


def replaces(new: MedicationFact, old: MedicationFact) -> bool:
    """A draft replaces an active order when it names it (priorPrescription) or renews the same product."""
    if new.prior_prescription == old.source:
        return True
    return new.matched is not None and new.matched == old.matched and new.display == old.display


def decide_dose(facts: PatientFacts, today: date, kb: Mapping[str, Any], focus: Focus, detail: Detail) -> DoseDecision:
    """The dose decision for the tacrolimus drafts of this call."""
    proto = protocol_of(kb)
    scope = scope_of(facts, today, kb)
    drafts = focus.all_drafts
    duplicates = tuple(
        a
        for a in focus.active
        if not any(replaces(d, a) for d in drafts) and not (_formulation_switch(a, drafts) and not facts.missing)
    )
    unreadable = tuple(d for d in drafts if d.daily_dose_mg is None)
    counted = [*drafts, *duplicates]
    known = [m.daily_dose_mg for m in counted if m.daily_dose_mg is not None]
    total = sum(known) if known else None
    base = DoseDecision(None, drafts, total, duplicates, unreadable)
    max_mg = proto.dose.max_daily_mg.value
    if not scope.protocol:
        # Outside the protocol only what is unsafe for anyone on tacrolimus: two orders at once.
        if duplicates:
            return DoseDecision("duplicate-therapy", drafts, total, duplicates)
        if scope.verdict == "outside-age":
            # An IVF course at an age the site does not apply the protocol at: say so, and the studies'
            # maximum still deserves a warning (nobody studied more in this indication).
            verdict: Verdict = (
                "above-study-maximum" if total is not None and above(total, max_mg) else "protocol-not-applied"
            )
            if verdict == "above-study-maximum" or facts.hook == ORDER_SELECT:
                return DoseDecision(verdict, drafts, total, scope_reason=scope.reason)
        if scope.verdict == "other-indication" and facts.hook == ORDER_SELECT:
            return DoseDecision("protocol-not-applied", drafts, total, scope_reason=scope.reason)
        return base
    if total is not None and above(total, max_mg):
        rec = None if focus.continuing else recommend_daily_dose(facts, today, proto, detail)
        return DoseDecision("above-maximum", drafts, total, duplicates, unreadable, rec)
    if duplicates:
        return DoseDecision("duplicate-therapy", drafts, total, duplicates, unreadable)
    if any(d.release == "extended" and (d.doses_per_day or 0) > 1 for d in drafts):
        return DoseDecision("extended-release-twice-daily", drafts, total, duplicates, unreadable)
    if unreadable and not (facts.hook == ORDER_SELECT and not focus.drafts[0].resource.get("dosageInstruction")):
        return DoseDecision("dose-unreadable", drafts, total, duplicates, unreadable)
    if focus.continuing or total is None:
        return base
    rec = recommend_daily_dose(facts, today, proto, detail)
    extended_start = facts.hook == ORDER_SELECT and any(d.release == "extended" for d in drafts)
    interacting = tuple(level_changing_drugs(facts, kb))
    if rec.highest_allowed_mg is not None and above(total, rec.highest_allowed_mg):
        return DoseDecision("above-band-dose", drafts, total, (), (), rec, interacting)
    if (
        rec.daily_mg is not None
        and rec.confirmed
        and not interacting
        and len(drafts) == 1
        and not same(total, rec.daily_mg)
    ):
        return DoseDecision("differs-from-band-dose", drafts, total, (), (), rec, interacting)
    if extended_start:
        # The band doses are immediate-release mg: an extended-release start needs that said, once.
        return DoseDecision("extended-release-start", drafts, total, (), (), rec, interacting)
    return base


def _active_total(
    facts: PatientFacts, today: date, kb: Mapping[str, Any], focus: Focus, proto: ProtocolTable
) -> DoseDecision:
    """patient-view: the active orders together above the maximum (e.g. two capsule strengths)."""
    doses = [m.daily_dose_mg for m in focus.active if m.daily_dose_mg is not None]
    if facts.hook != PATIENT_VIEW or not doses or not scope_of(facts, today, kb).protocol:
        return DoseDecision(None, (), None)
    total = sum(doses)
    if not above(total, proto.dose.max_daily_mg.value):
        return DoseDecision(None, (), total)
    return DoseDecision("above-maximum", (), total, focus.active)


def evaluate_dose(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 2: the total drafted daily dose against the maximum and the band dose."""
    focus = focus_of(facts)
    proto = protocol_of(kb)
    detail = Detail(proto)
    if not focus.drafts:
        decision = _active_total(facts, today, kb, focus, proto)
    else:
        decision = decide_dose(facts, today, kb, focus, detail)
    if decision.verdict is None:
        return []
    return [_render(facts, decision, proto, detail, today, products_of(kb))]


def _orders_line(decision: DoseDecision) -> list[str]:
    lines = []
    for m in (*decision.drafts, *decision.duplicates):
        dose = f"{fmt_number(m.daily_dose_mg)} mg/day" if m.daily_dose_mg is not None else "dose unreadable"
        state = "new order" if m.is_draft else f"{m.status} order"
        release = ", extended-release" if m.release == "extended" else ""
        lines.append(f"- {plain(m.display)} ({state}{release}): **{dose}**")
    return lines


def _render(
    facts: PatientFacts,
    d: DoseDecision,
    proto: ProtocolTable,
    detail: Detail,
    today: date,
    products: Sequence[Mapping[str, Any]],
) -> Card:
    orders = OrderContext(today, products)
    max_shown = detail.number("maximum daily dose", proto.dose.max_daily_mg) if d.verdict != "duplicate-therapy" else ""
    total = fmt_number(d.total_mg) if d.total_mg is not None else "?"
    several = len(d.drafts) + len(d.duplicates) > 1
    suggestions: list[Suggestion] = []
    indicator: Indicator
    source_id = proto.dose.max_daily_mg.source
    body = _orders_line(d)
    if several:
        body.append(f"- Total: **{total} mg/day**")
    rec = d.rec

    if d.verdict == "above-maximum":
        indicator = "critical"
        summary = (
            f"Tacrolimus {total} mg/day in total exceeds the {max_shown} maximum: reduce the dose"
            if several
            else f"Tacrolimus {total} mg/day exceeds the {max_shown} maximum: reduce the dose"
        )
        if rec is not None and rec.daily_mg is not None and len(d.drafts) == 1 and not d.duplicates:
            body.append(f"- Protocol dose: {rec.basis} → **{fmt_number(rec.daily_mg)} mg/day**")
            suggestions += _change(d.drafts[0], rec.daily_mg, body, orders, recommended=rec.confirmed)
        elif several:
            body.append(
                "\nThe maximum applies to the total of all tacrolimus orders: keep one order, or "
                f"reduce them to at most {max_shown} together."
            )
        else:
            body.append(f"\nReduce the dose to at most {max_shown}.")
    elif d.verdict == "above-study-maximum":
        indicator = "warning"
        summary = (
            f"RIF protocol not applied ({_short_reason(d.scope_reason)}), but {total} mg/day is above "
            f"the {max_shown} maximum of the studies"
        )
        body.append(
            f"\nThe RIF protocol was not applied: {plain(d.scope_reason)}. No study gave more than "
            f"{max_shown} in this indication: confirm the dose with the specialist."
        )
    elif d.verdict == "protocol-not-applied":
        indicator = "info"
        summary = f"RIF protocol not applied to this tacrolimus order: {_short_reason(d.scope_reason)}"
        body.append(
            f"\n{plain(d.scope_reason)[:1].upper() + plain(d.scope_reason)[1:]}. The protocol's dose "
            "bands, maximum, trough target and course length were not checked."
        )
    elif d.verdict == "extended-release-start":
        indicator = "info"
        summary = (
            "Extended-release tacrolimus: the protocol's doses are immediate-release mg, not interchangeable mg for mg"
        )
        detail.cite("tacrolimus-label")
        source_id = "tacrolimus-label"
        body.append(
            "\nThe dose bands and the 4 mg/day maximum come from studies of immediate-release capsules. "
            "Envarsus XR gives about 80 % of the immediate-release daily dose for the same exposure; "
            "Advagraf / Astagraf XL is dosed 1:1 but gives lower exposure. Check troughs after the start."
        )
    elif d.verdict == "duplicate-therapy":
        indicator = "warning"
        active = d.duplicates[0]
        summary = (
            f"Tacrolimus is already active: with this new order she would take {total} mg/day in total. "
            "Replace the active order or cancel"
        )
        body.append(
            f"\nThe new order does not replace the active one ({plain(active.display)}). If it is "
            "meant as a change, discontinue the active order (or link the new one as its "
            "replacement); otherwise cancel the new order."
        )
        source_id = "clinical-basis"
        detail.cite(source_id, "Totals, not orders")
    elif d.verdict == "extended-release-twice-daily":
        indicator = "warning"
        summary = "Extended-release tacrolimus is taken once daily: change the order to once a day"
        detail.cite("tacrolimus-label")
        body.append(
            "\nExtended-release tacrolimus is given once daily in the morning; twice daily doubles "
            "the intended exposure."
        )
    elif d.verdict == "dose-unreadable":
        indicator = "warning"
        summary = f"Tacrolimus dose could not be read from the order: check it is at most {max_shown}"
        body.append(
            "\nThe daily dose could not be worked out (dose, unit or frequency missing or "
            f"unclear), so the {max_shown} maximum could not be checked."
        )
    elif d.verdict == "above-band-dose":
        assert rec is not None and rec.highest_allowed_mg is not None
        indicator = "warning"
        limit = fmt_number(rec.highest_allowed_mg)
        summary = f"Tacrolimus {total} mg/day is above the {limit} mg/day the Th1/Th2 result allows: lower it"
        body.append(f"- Protocol: {rec.basis}")
        if rec.daily_mg is not None and not d.interacting and len(d.drafts) == 1:
            suggestions += _change(d.drafts[0], rec.daily_mg, body, orders, recommended=rec.confirmed)
        elif rec.choices and not d.interacting and len(d.drafts) == 1:
            # The Th1 % decides between them: each dose the chart allows is offered, none recommended.
            body.append("- The Th1 % is not known: choose the dose it would give.")
            for choice in rec.choices:
                suggestions += _change(d.drafts[0], choice, body, orders, recommended=False, quiet=True)
        if d.interacting:
            body.append(
                f"- {plain(d.interacting[0].display)} changes tacrolimus levels: follow the "
                "interaction card for the dose."
            )
    else:  # differs-from-band-dose (confirmed bands only)
        assert rec is not None and rec.daily_mg is not None
        indicator = "warning"
        summary = (
            f"Tacrolimus {total} mg/day differs from the protocol dose of "
            f"{fmt_number(rec.daily_mg)} mg/day: change the order"
        )
        body.append(f"- Protocol: {rec.basis} → **{fmt_number(rec.daily_mg)} mg/day**")
        suggestions += _change(d.drafts[0], rec.daily_mg, body, orders, recommended=True)
        source_id = proto.dose.bands.source
    if any(m.release == "extended" for m in d.drafts) and d.verdict in {"above-band-dose", "differs-from-band-dose"}:
        body.append(
            "- The band doses come from studies of immediate-release capsules: an extended-release "
            "dose is not interchangeable mg for mg."
        )
    for line in body:
        detail.add(line)
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


def _short_reason(reason: str) -> str:
    """The first clause of a scope reason, for a summary ("the patient is 56 years old")."""
    return plain(reason.split(":")[0].split(", outside")[0], 80)


def _change(
    draft: MedicationFact,
    daily_mg: float,
    body: list[str],
    orders: OrderContext,
    *,
    recommended: bool,
    quiet: bool = False,
) -> list[Suggestion]:
    built = build_order(draft, orders.today, daily_mg=daily_mg, products=orders.products)
    action = dose_change(
        draft,
        daily_mg,
        f"Set the tacrolimus dose to {fmt_number(daily_mg)} mg/day",
        today=orders.today,
        products=orders.products,
    )
    if action is None:
        body.append(
            f"- {fmt_number(daily_mg)} mg/day cannot be written into this order ({built.problem}): change it by hand."
        )
        return []
    if not recommended and not quiet:
        body.append(
            f"- The suggested {fmt_number(daily_mg)} mg/day rests on unconfirmed dose bands: it is "
            "offered, not recommended."
        )
    return [Suggestion(label=f"Change to {fmt_number(daily_mg)} mg/day", is_recommended=recommended, actions=(action,))]

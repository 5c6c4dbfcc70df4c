"""Card 2, dose: the protocol's daily dose from the Th1/Th2 band (+ Th1 % add-on, capped) against
the drafted daily dose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

from ..facts import TH1_PCT, MedicationFact, PatientFacts
from ..model import Action, Card, Indicator, Suggestion
from ..orders import with_daily_dose
from ..text import fits_summary, fmt_measure, fmt_number
from .common import (
    Detail,
    Protocol,
    applicable_cutoff,
    current,
    describe_ratio,
    make_card,
    ratio_now,
)
from .focus import focus_of
from .vocab import ORDER_SELECT, TACROLIMUS, above, at_least, below, same

KIND = "dose"
LEVEL_CHANGING = frozenset({"raises-levels", "lowers-levels"})


def level_changing_drugs(facts: PatientFacts, kb: Mapping[str, Any]) -> list[MedicationFact]:
    """Orders of drugs that raise or lower tacrolimus levels (interactions.yaml): with one of them,
    the band dose is no longer the right dose, and the interaction card handles the change."""
    keys = {drug for entry in kb.get("interactions", {}).get("entries", [])
            if entry.get("effect_direction") in LEVEL_CHANGING for drug in entry.get("drugs", [])}
    return [m for m in facts.medications if not m.has(TACROLIMUS) and keys & set(m.ingredients)]


@dataclass(frozen=True)
class Recommendation:
    daily_mg: float | None  # None: no dose can be recommended safely
    problem: str | None  # why not
    band_mg: float | None = None  # when only the Th1 % is missing: the band dose ...
    with_addon_mg: float | None = None  # ... and the dose if the Th1 % were high


def recommend_daily_dose(facts: PatientFacts, today: date, proto: Protocol,
                         detail: Detail) -> Recommendation:
    """The protocol dose, adding every number it uses to ``detail``; never from unusable data."""
    cutoff = applicable_cutoff(facts, today, proto)
    ratio = ratio_now(facts, today, proto)
    if ratio.value is None or ratio.value.value is None:
        detail.add(f"- Th1/Th2 ratio: {ratio.problem}.")
        detail.number("Maximum age of a ratio result", "eligibility.ratio_max_age_days")
        return Recommendation(None, "no current, final Th1/Th2 ratio")
    value = ratio.value.value
    detail.add(f"- Th1/Th2 ratio: **{describe_ratio(ratio.value)}**")
    cut = detail.number("Cut-off", cutoff.path)
    if not at_least(value, cutoff.value):
        return Recommendation(None, f"the ratio {fmt_number(value)} is below the {cut} cut-off")

    bands = proto.entry("dose.bands")
    band = next((b for b in bands["table"]
                 if at_least(value, float(b["ratio_min"]))
                 and ("ratio_below" not in b or below(value, float(b["ratio_below"])))), None)
    band_text = ", ".join(
        f"{fmt_number(b['ratio_min'])}–{'<' + fmt_number(b['ratio_below']) if 'ratio_below' in b else ''}"
        f" → {fmt_number(b['daily_mg'])} mg" for b in bands["table"])
    where = "site configuration: protocol.yaml" if bands.get("site_default") else "protocol.yaml"
    detail.add(f"- Dose bands ({where} `dose.bands`; {detail.cite(str(bands['source']))}):"
               f" {band_text}" + (" — **site default, a clinician must confirm it**"
                                 if bands.get("site_default") else ""))
    if bands.get("site_default") and "dose.bands" not in detail.site_defaults:
        detail.site_defaults.append("dose.bands")
    if band is None:
        return Recommendation(None, f"no dose band covers the ratio {fmt_number(value)}")
    base = float(band["daily_mg"])
    detail.add(f"- Band used: ratio {fmt_number(value)} → **{fmt_number(base)} mg/day**")

    max_mg = proto.num("dose.max_daily_mg")
    detail.number("Maximum daily dose", "dose.max_daily_mg")
    th1_min = proto.num("dose.th1_high_addon.th1_pct_min")
    detail.number("Th1 % at which the add-on applies", "dose.th1_high_addon.th1_pct_min")
    add = proto.num("dose.th1_high_addon.add_mg")
    detail.number("Add-on for a high Th1 %", "dose.th1_high_addon.add_mg")
    th1 = current(facts, TH1_PCT, today, proto.days("eligibility.ratio_max_age_days"), "Th1 %", "%")
    if th1.value is None or th1.value.value is None:
        detail.add(f"- Th1 %: {th1.problem}; the add-on cannot be assessed.")
        return Recommendation(None, "the Th1 % needed for the add-on is not available",
                              band_mg=min(base, max_mg), with_addon_mg=min(base + add, max_mg))
    detail.add(f"- Th1 %: **{fmt_measure(th1.value)}**")
    high = at_least(th1.value.value, th1_min)
    total = base + add if high else base
    detail.add(f"- Th1 % {fmt_number(th1.value.value)} is {'at or above' if high else 'below'} "
               f"{fmt_number(th1_min)} %: {'+' + fmt_number(add) + ' mg → ' if high else ''}"
               f"**{fmt_number(total)} mg/day**")
    if total > max_mg:
        detail.add(f"- {fmt_number(total)} mg/day is capped at the maximum.")
        total = max_mg
    return Recommendation(total, None)


def evaluate_dose(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 2: the drafted daily dose against the protocol dose and the 4 mg/day maximum."""
    focus = focus_of(facts)
    if not focus.drafts:
        return []
    proto = Protocol(kb)
    draft = focus.drafts[0]
    if draft.daily_dose_mg is None and facts.hook == ORDER_SELECT and not draft.resource.get("dosageInstruction"):
        return []  # the prescriber has not entered a dose yet: nothing to say
    detail = Detail(proto)
    others = focus.drafts[1:]
    if others:
        detail.add(f"**{len(focus.drafts)} tacrolimus drafts are open** ({', '.join(m.source for m in focus.drafts)}); "
                   f"this card reviews {draft.source}. Sign only one.")
        detail.add("")
    drafted = draft.daily_dose_mg
    if drafted is not None:
        detail.add(f"- Drafted: **{fmt_number(drafted)} mg/day** ({draft.display}, {draft.source})")
    else:
        detail.add(f"- Drafted daily dose: **unknown** ({draft.dose_problem or 'not computable'}; "
                   f"{draft.display}, {draft.source})")
    if focus.continuing:
        # The band dose selects a starting dose; a continuing course is guided by troughs, so only
        # the maximum is checked.
        rec = Recommendation(None, "she is continuing tacrolimus (on therapy or pregnant): the dose "
                                   "follows the troughs, not the starting band")
    else:
        rec = recommend_daily_dose(facts, today, proto, detail)
    interacting = level_changing_drugs(facts, kb)
    max_mg = proto.num("dose.max_daily_mg")
    max_shown = fmt_number(max_mg)
    suggestions: list[Suggestion] = []
    indicator: Indicator

    source_id = str(proto.entry("dose.bands")["source"])
    if drafted is not None and above(drafted, max_mg):
        indicator = "critical"
        detail.number("Maximum daily dose", "dose.max_daily_mg")
        source_id = str(proto.entry("dose.max_daily_mg")["source"])
        summary = f"Drafted tacrolimus {fmt_number(drafted)} mg/day exceeds the {max_shown} mg/day maximum"
        if rec.daily_mg is not None:
            suggestions += _update(draft, rec.daily_mg, detail)
        else:
            detail.add(f"\nNo protocol dose can be computed ({rec.problem}): reduce the dose to at most "
                       f"{max_shown} mg/day by hand.")
    elif focus.continuing:
        return []
    elif rec.daily_mg is None:
        indicator = "info"
        alt = (f" The band dose would be {fmt_number(rec.band_mg)} mg/day, or "
               f"{fmt_number(rec.with_addon_mg)} mg/day if the Th1 % is high: check the Th1 % first."
               if rec.band_mg is not None and rec.with_addon_mg is not None else "")
        if drafted is None:
            summary = "Tacrolimus dose could not be read from the draft, and no protocol dose can be computed"
        else:
            summary = f"No protocol dose for tacrolimus: {rec.problem}"
        if not fits_summary(summary):
            summary = "No protocol dose for tacrolimus can be computed: see details"
        detail.add(f"\nNo dose is recommended because {rec.problem}.{alt} The drafted dose is not changed.")
    elif drafted is None:
        indicator = "info"
        summary = (f"Tacrolimus dose could not be read from the draft; protocol dose is "
                   f"{fmt_number(rec.daily_mg)} mg/day")
        detail.add("\nThe draft's dose is not changed: enter the daily dose on the order.")
    elif not same(drafted, rec.daily_mg) and interacting:
        indicator = "info"
        summary = (f"Tacrolimus dose left to the interaction card: {interacting[0].display} "
                   f"changes tacrolimus levels")
        detail.add(f"\nThe band dose ({fmt_number(rec.daily_mg)} mg/day) assumes no interacting drug. "
                   f"{', '.join(f'{m.display} ({m.source})' for m in interacting)} changes tacrolimus "
                   "levels, so no band dose is suggested: follow the interaction card and the troughs.")
    elif not same(drafted, rec.daily_mg):
        unconfirmed = bool(detail.site_defaults)
        # A dose from a table the site has not confirmed is shown, not pressed on the prescriber.
        indicator = "info" if unconfirmed else "warning"
        summary = (f"Drafted tacrolimus {fmt_number(drafted)} mg/day differs from the "
                   f"{'unconfirmed site-default' if unconfirmed else 'protocol'} dose of "
                   f"{fmt_number(rec.daily_mg)} mg/day")
        suggestions += _update(draft, rec.daily_mg, detail, recommended=not unconfirmed)
    else:
        indicator = "info"
        summary = f"Drafted tacrolimus {fmt_number(drafted)} mg/day matches the protocol dose"
    if "dose.bands" in detail.site_defaults:
        detail.add("\nThe dose bands and the Th1 % trigger are site defaults: a clinician must confirm them.")
    return [make_card(proto, detail, kind=KIND, summary=summary, indicator=indicator,
                      source_id=source_id, suggestions=suggestions)]


def _update(draft: MedicationFact, daily_mg: float, detail: Detail, *,
            recommended: bool = True) -> list[Suggestion]:
    resource = with_daily_dose(draft, daily_mg)
    if resource is None:
        detail.add(f"\nThe order's dose cannot be rewritten automatically (dose form or frequency): "
                   f"change it to {fmt_number(daily_mg)} mg/day by hand.")
        return []
    return [Suggestion(
        label=f"Change the draft to {fmt_number(daily_mg)} mg/day",
        is_recommended=recommended,
        actions=(Action(type="update", description=f"Set the tacrolimus daily dose to {fmt_number(daily_mg)} mg",
                        resource=resource),))]

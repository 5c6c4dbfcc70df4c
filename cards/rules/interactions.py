"""Card 7: drug interactions with tacrolimus, from the interaction table (knowledge/interactions.yaml).

Both directions count: an interacting drug ordered while she is on (or being ordered) tacrolimus, and
tacrolimus ordered while she takes the drug. A pair of orders is reported when at least one of them is
in the hook's focus (see ``focus.py``); on patient-view that is every active pair. One card per
interacting drug (kind ``interaction:<drug key>``), however many orders name it.

Suggestions, each offered only when its resource is complete:
- azoles: change the tacrolimus order's dose (whole resource, only the dose changed) plus trough
  orders, or the trough orders alone. An *active* tacrolimus order is changed with an ``update`` action
  too — CDS Hooks updates carry the whole resource whatever its status, and a prophylactic cut is
  meant to start with the azole; the action description says the order is active. No dose change is
  suggested on patient-view (both drugs already running: the dose may already have been adjusted) or
  when the current daily dose is unknown.
- erythromycin / clarithromycin drafts: replace with a draft azithromycin order (delete + create).
- mycophenolate and cyclosporine drafts: remove the draft.
- everything with a ``monitor`` list: order the lab tests it names.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Mapping, Sequence

from ..facts import MedicationFact, PatientFacts
from ..model import Action, Card, Link, Suggestion
from ..orders import draft_medication_request, lab_order, reference_of, with_daily_dose, with_repeat
from ..text import fmt_number
from ..text import clip_summary
from .focus import describe_order, fill, in_focus, span
from .vocab import PATIENT_VIEW, override_codings

TACROLIMUS = "tacrolimus"
FORMULATION = "tacrolimus-formulation"
SWITCH_KIND = "interaction:tacrolimus-release-switch"
_EPS = 1e-9


def evaluate_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Interaction cards (card 7), one per interacting drug, in the order of the table."""
    table = kb["interactions"]
    tacrolimus_orders = facts.medications_with(TACROLIMUS)
    if not tacrolimus_orders:
        return []
    cards: list[Card] = []
    seen: set[str] = set()
    for entry in table["entries"]:
        if entry["class"] == FORMULATION:
            card = _release_switch_card(facts, tacrolimus_orders, entry, table)
            if card is not None and SWITCH_KIND not in seen:
                seen.add(SWITCH_KIND)
                cards.append(card)
            continue
        for drug in entry["drugs"]:
            if drug in seen or drug == TACROLIMUS:
                continue  # a drug listed twice: its first entry wins
            seen.add(drug)
            card = _drug_card(facts, tacrolimus_orders, drug, entry, table)
            if card is not None:
                cards.append(card)
    return cards


def _involved(facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact],
              others: Sequence[MedicationFact]) -> tuple[list[MedicationFact], list[MedicationFact]]:
    """All tacrolimus and drug orders when at least one pair has a member in focus, else nothing.

    Once a pair is new, every order of either drug is shown on the one consolidated card.
    """
    hook = facts.hook
    new_pair = any(tac is not other and (in_focus(hook, tac) or in_focus(hook, other))
                   for tac in tacrolimus_orders for other in others)
    return (list(tacrolimus_orders), list(others)) if new_pair else ([], [])


def _drug_name(entry: Mapping[str, Any], drug: str) -> str:
    return str((entry.get("drug_display") or {}).get(drug) or drug.replace("_", " "))


def _values(entry: Mapping[str, Any], name: str) -> dict[str, str]:
    """Placeholder values for the entry's text, all taken from the entry's own numbers."""
    values = {"drug": name, "Drug": name[:1].upper() + name[1:]}
    change = entry.get("dose_change") or {}
    if "reduce_by" in change:
        values["reduction"] = f"{span(change['reduce_by'], 100)} %"
    if "as_text" in change:
        values["fraction"] = str(change["as_text"])
    monitors = entry.get("monitor") or []
    if monitors and "every_days" in monitors[0]:
        values["every"] = span(monitors[0]["every_days"])
    if monitors and "first_within_days" in monitors[0]:
        values["first_within"] = span(monitors[0]["first_within_days"])
    for key, out in (("after_stop_days", "after_stop"), ("gap_hours", "gap_hours"),
                     ("washout_weeks", "washout_weeks")):
        if key in entry:
            values[out] = span(entry[key])
    if "prefer_instead" in entry:
        values["alternative"] = str(entry["prefer_instead"]["display"])
    return values


def _drug_card(facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact], drug: str,
               entry: Mapping[str, Any], table: Mapping[str, Any]) -> Card | None:
    others = [m for m in facts.medications if m.has(drug) and not m.has(TACROLIMUS)]
    tacs, orders = _involved(facts, tacrolimus_orders, others)
    if not orders:
        return None
    name = _drug_name(entry, drug)
    values = _values(entry, name)
    lines = [f"**{values['Drug']} with tacrolimus.** {fill(entry['effect'], values)}", "",
             f"**What to do:** {fill(entry['handling'], values)}", "", "**Orders involved**"]
    lines += [f"- Tacrolimus: {describe_order(t)}" for t in tacs]
    lines += [f"- {values['Drug']}: {describe_order(o)}" for o in orders]

    suggestions: list[Suggestion] = []
    exclusive = False
    monitor = _monitor_actions(facts, entry, table, name)
    if "dose_change" in entry:
        dose_suggestions, dose_lines = _dose_suggestions(facts, tacs, entry, table, values, monitor)
        lines += [""] + dose_lines
        suggestions += dose_suggestions
        exclusive = bool(dose_suggestions)
    replace = _replacement(facts, orders, entry, name)
    if replace is not None:
        suggestions.append(replace)
    if entry.get("remove_draft"):
        removal = _removal(orders, name)
        if removal is not None:
            suggestions.append(removal)
        elif any(not o.is_draft for o in orders):
            lines += ["", f"{values['Drug']} is an active order: stop it in the medication list."]
    if monitor:
        label, actions, monitor_lines = monitor
        suggestions.append(Suggestion(label=label, actions=actions))
        lines += [""] + monitor_lines
    lines += ["", "**Sources:** " + "; ".join(entry["sources"]) + "."]
    return Card(
        kind=f"interaction:{drug}",
        summary=clip_summary(fill(entry["summary"], values)),
        indicator=entry["severity"],
        detail="\n".join(lines),
        source_label=table["source_label"],
        suggestions=tuple(suggestions),
        selection_behavior=("at-most-one" if exclusive else "any") if suggestions else None,
        override_reasons=override_codings(table),
        links=_links(table),
    )


def _links(table: Mapping[str, Any]) -> tuple[Link, ...]:
    return tuple(Link(label=link["label"], url=link["url"]) for link in table.get("links") or [])


def _monitor_actions(facts: PatientFacts, entry: Mapping[str, Any], table: Mapping[str, Any],
                     name: str) -> tuple[str, tuple[Action, ...], list[str]] | None:
    """The lab orders an entry asks for, as create actions, with their label and explanation."""
    actions: list[Action] = []
    labels: list[str] = []
    lines: list[str] = []
    for item in entry.get("monitor") or []:
        test = table["lab_tests"].get(item["test"])
        if test is None:
            continue  # a site removed the test: nothing to order
        order = lab_order(facts.patient_id, test["loinc"], test["display"],
                          f"{test['display']}: monitoring tacrolimus with {name}")
        what = str(test["label"])
        if "every_days" in item:
            checks = int(item.get("checks") or table["default_checks"]["count"])
            low, high = item["every_days"]
            order = with_repeat(order, (float(low), float(high)), checks)
            every = span(item["every_days"])
            default = "" if "checks" in item else " (number of checks: site default, confirm locally)"
            labels.append(f"{what} every {every} days ({checks} checks)")
            lines.append(f"**Monitoring:** {test['display']} (LOINC {test['loinc']}) every {every} days, "
                         f"{checks} draws in the suggested order{default}; source: {test['source']}.")
            description = f"Order {what} (LOINC {test['loinc']}) every {every} days, {checks} draws"
        else:
            labels.append(what)
            lines.append(f"**Monitoring:** {test['display']} (LOINC {test['loinc']}); source: {test['source']}.")
            description = f"Order {what} (LOINC {test['loinc']})"
        actions.append(Action(type="create", description=description, resource=order))
    if not actions:
        return None
    return "Order " + " and ".join(labels), tuple(actions), lines


def _steps_in(low: float, high: float, step: float) -> list[float]:
    """The highest and lowest positive multiples of ``step`` within [low, high] (the mildest and the
    strongest change), highest first; [] when none fits or the range is not finite."""
    if not all(math.isfinite(v) for v in (low, high, step)) or step <= 0:
        return []
    first = max(math.ceil(low / step - _EPS), 1)
    last = math.floor(high / step + _EPS)
    if last < first:
        return []
    return sorted({round(last * step, 6), round(first * step, 6)}, reverse=True)


def _target_doses(dose: float, change: Mapping[str, Any], step: float) -> tuple[list[float], str]:
    """Suggested new daily doses (endpoints of the allowed range, in capsule steps) and the arithmetic."""
    if "reduce_by" in change:
        least, most = min(change["reduce_by"]), max(change["reduce_by"])
        low, high = dose * (1 - most), dose * (1 - least)
        steps = _steps_in(low, high, step)
        picks = sorted({steps[0], steps[-1]}, reverse=True) if steps else []
        arithmetic = (f"{fmt_number(dose)} mg/day reduced by {span(change['reduce_by'], 100)} % = "
                      f"{fmt_number(low)}–{fmt_number(high)} mg/day")
        return picks, arithmetic
    factor = float(change["multiply_by"])
    exact = dose * factor
    rounded = max(step, round(round(exact / step) * step, 6))
    arithmetic = f"{change['as_text']} of {fmt_number(dose)} mg/day = {fmt_number(exact)} mg/day"
    if abs(rounded - exact) > _EPS:
        arithmetic += f", rounded to {fmt_number(rounded)} mg/day"
    return ([rounded] if rounded < dose - _EPS else []), arithmetic


def _dose_suggestions(facts: PatientFacts, tacs: Sequence[MedicationFact], entry: Mapping[str, Any],
                      table: Mapping[str, Any], values: Mapping[str, str],
                      monitor: tuple[str, tuple[Action, ...], list[str]] | None,
                      ) -> tuple[list[Suggestion], list[str]]:
    """Suggestions that change the tacrolimus dose, and the lines that explain them (or why none)."""
    change = entry["dose_change"]
    how = f"by {values['reduction']}" if "reduction" in values else f"to {values.get('fraction', '')}"
    if facts.hook == PATIENT_VIEW:
        return [], [f"**Dose:** both drugs are already active. If the tacrolimus dose was not changed when "
                    f"{values['drug']} started, reduce it {how}; no dose change is suggested from a chart review."]
    focused = [t for t in tacs if in_focus(facts.hook, t)]
    candidates = focused if len(focused) == 1 else list(tacs)
    if len(candidates) != 1:
        return [], [f"**Dose:** several tacrolimus orders are involved; reduce the one that continues {how}. "
                    "No dose change is suggested."]
    tac = candidates[0]
    if tac.daily_dose_mg is None:
        problem = f" ({tac.dose_problem})" if tac.dose_problem else ""
        return [], [f"**Dose:** the daily dose of {tac.source} is unknown{problem}, so no dose change is "
                    f"suggested; when you set it, reduce it {how}."]
    step = float(table["dose_rounding"]["step_mg"])
    targets, arithmetic = _target_doses(tac.daily_dose_mg, change, step)
    rounding = table["dose_rounding"]
    step_note = (f"suggested doses in {fmt_number(step)} mg steps"
                 f"{' (site default)' if rounding.get('site_default') else ''}: {rounding['source']}")
    lines = [f"**Dose:** {arithmetic} ({tac.source}); {step_note}."]
    if not targets:
        lines.append(f"No dose in {fmt_number(step)} mg steps fits this range: change the dose by hand.")
        return [], lines
    suggestions: list[Suggestion] = []
    state = "draft" if tac.is_draft else "active"
    for target in targets:
        resource = with_daily_dose(tac, target)
        if resource is None or reference_of(resource) is None:
            lines.append(f"{fmt_number(target)} mg/day cannot be written into {tac.source} automatically "
                         "(dose form, units or capsule strength): change it by hand.")
            continue
        less = round((1 - target / tac.daily_dose_mg) * 100)
        update = Action(
            type="update",
            description=(f"Change the {state} tacrolimus order {tac.source} to {fmt_number(target)} mg/day "
                         f"(was {fmt_number(tac.daily_dose_mg)} mg/day, {less} % less); nothing else changes"),
            resource=resource)
        label = f"Reduce tacrolimus to {fmt_number(target)} mg/day ({less} % less)"
        actions: tuple[Action, ...] = (update,)
        if monitor:
            label += " and order troughs"
            actions += monitor[1]
        suggestions.append(Suggestion(label=label, actions=actions))
    return suggestions, lines


def _replacement(facts: PatientFacts, orders: Sequence[MedicationFact], entry: Mapping[str, Any],
                 name: str) -> Suggestion | None:
    """Delete the drafts of the drug and create a draft of the preferred alternative."""
    alternative = entry.get("prefer_instead")
    drafts = [o for o in orders if o.is_draft]
    if alternative is None or not drafts:
        return None
    ids = [reference_of(o.resource) for o in drafts]
    if any(i is None for i in ids):
        return None  # a draft without an id cannot be deleted
    actions = [Action(type="delete", description=f"Remove the {name} draft {i}", resource_id=i) for i in ids]
    actions.append(Action(
        type="create",
        description=f"Create a draft {alternative['display']} order (RxNorm {alternative['rxnorm']}) "
                    "for you to complete with dose and duration",
        resource=draft_medication_request(facts.patient_id, alternative["rxnorm"], alternative["display"])))
    return Suggestion(label=f"Replace {name} with {alternative['display']} (draft to complete)",
                      actions=tuple(actions), is_recommended=True)


def _removal(orders: Sequence[MedicationFact], name: str) -> Suggestion | None:
    """Delete every draft of the drug (only drafts: an active order is stopped in the EHR)."""
    ids = [reference_of(o.resource) for o in orders if o.is_draft]
    if not ids or any(i is None for i in ids):
        return None
    return Suggestion(
        label=f"Remove the {name} draft order",
        actions=tuple(Action(type="delete", description=f"Remove the {name} draft {i}", resource_id=i)
                      for i in ids),
        is_recommended=True)


def _release_switch_card(facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact],
                         entry: Mapping[str, Any], table: Mapping[str, Any]) -> Card | None:
    """Immediate- and extended-release tacrolimus side by side (a switch, or a duplicate)."""
    involved: list[MedicationFact] = []
    for a in tacrolimus_orders:
        for b in tacrolimus_orders:
            if (a is b or a.release is None or b.release is None or a.release == b.release
                    or not (in_focus(facts.hook, a) or in_focus(facts.hook, b))):
                continue
            for med in (a, b):
                if not any(m is med for m in involved):
                    involved.append(med)
    if not involved:
        return None
    values = _values(entry, "tacrolimus")
    lines = [fill(entry["effect"], values), "", f"**What to do:** {fill(entry['handling'], values)}", "",
             "**Orders involved**"]
    lines += [f"- {describe_order(m)}" for m in involved]
    suggestions: list[Suggestion] = []
    monitor = _monitor_actions(facts, entry, table, "a change of tacrolimus formulation")
    if monitor:
        suggestions.append(Suggestion(label=monitor[0], actions=monitor[1]))
        lines += [""] + monitor[2]
    lines += ["", "**Sources:** " + "; ".join(entry["sources"]) + "."]
    return Card(
        kind=SWITCH_KIND,
        summary=clip_summary(fill(entry["summary"], values)),
        indicator=entry["severity"],
        detail="\n".join(lines),
        source_label=table["source_label"],
        suggestions=tuple(suggestions),
        selection_behavior="any" if suggestions else None,
        override_reasons=override_codings(table),
        links=_links(table),
    )


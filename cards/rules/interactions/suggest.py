"""Interactions, step three: suggest. The actions a card offers, each only when its resource is complete:
a temporary tacrolimus dose cut, a replacement drug, removal of a draft that must not be given, and the
tests that follow."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ...facts import MedicationFact, PatientFacts
from ...knowledge_model import InteractionsTable
from ...model import Action, ServiceRequestProposal, Suggestion
from ...orders import BuiltOrder, OrderContext, build_order, draft_medication_request, lab_order, with_repeat
from ...text import fmt_number
from ..focus import span
from .decide import DosePlan, InteractionDecision, bare_name


def frequency_words(per_day: float | None) -> str:
    words = {1: "once daily", 2: "twice daily", 3: "three times daily"}
    if per_day is None:
        return ""
    return (
        words.get(int(per_day), f"{fmt_number(per_day)} times a day")
        if float(per_day).is_integer()
        else f"{fmt_number(per_day)} doses a day"
    )


DoseOrders = Callable[[float], BuiltOrder]


def dose_orders(plan: DosePlan | None, orders: OrderContext) -> DoseOrders:
    """``build_order`` of the plan's tacrolimus order at a daily dose, each dose built once: the
    card's detail (which doses cannot be written) and its suggestions (the changes) both ask."""
    built: dict[float, BuiltOrder] = {}

    def build(daily_mg: float) -> BuiltOrder:
        if daily_mg not in built:
            assert plan is not None and plan.order is not None
            built[daily_mg] = build_order(plan.order, orders.today, daily_mg=daily_mg, products=orders.products)
        return built[daily_mg]

    return build


def regimen(daily: float, per_day: float | None) -> str:
    """ "0.5 mg twice daily (1 mg/day)", or "1 mg/day" when the doses per day are unknown."""
    if not per_day or float(per_day) == 1:
        return f"{fmt_number(daily)} mg once daily" if per_day else f"{fmt_number(daily)} mg/day"
    return f"{fmt_number(daily / per_day)} mg {frequency_words(per_day)} ({fmt_number(daily)} mg/day)"


def _test_order(
    facts: PatientFacts, table: InteractionsTable, key: str, reason: str, urgent: bool = False
) -> ServiceRequestProposal | None:
    test = table.lab_tests.get(key)
    if test is None:
        return None  # a site removed the test: nothing to order
    return lab_order(facts.patient_id, test.loinc, test.display, reason, priority="urgent" if urgent else None)


def monitor_suggestion(
    d: InteractionDecision, facts: PatientFacts, table: InteractionsTable, name: str
) -> Suggestion | None:
    actions: list[Action] = []
    labels: list[str] = []
    for item in d.entry.monitor:
        order = _test_order(facts, table, item.test, f"monitoring tacrolimus with {name}")
        if order is None:
            continue
        what = table.lab_tests[item.test].label
        if item.every_days is not None and d.timing != "ongoing":
            labels.append(f"a {what}")  # one check after a single dose or a stop
            description = f"Order a {what}"
        elif item.every_days is not None:
            checks = item.checks or table.default_checks.count
            order = with_repeat(order, item.every_days, checks)
            every = span(item.every_days)
            labels.append(f"{what} every {every} days ({checks} checks)")
            description = f"Order {what} every {every} days, {checks} draws"
        else:
            labels.append(what)
            description = f"Order {what}"
        actions.append(Action(type="create", description=description, resource=order))
    if not actions:
        return None
    return Suggestion(label="Order " + " and ".join(labels), actions=tuple(actions))


def _next_step_suggestion(
    d: InteractionDecision, facts: PatientFacts, table: InteractionsTable, name: str
) -> Suggestion | None:
    """The tests that follow an abnormal result on record."""
    wanted: list[tuple[str, bool]] = []
    if d.potassium and d.potassium.urgent:
        wanted += [("potassium", True), ("ecg", True)]
    if d.creatinine and d.creatinine.rising:
        wanted.append(("creatinine", False))
        if d.taking_tacrolimus:
            wanted.append(("tacrolimus_trough", False))  # no level to measure before the first dose
    actions: list[Action] = []
    labels: list[str] = []
    for key, urgent in wanted:
        order = _test_order(facts, table, key, f"abnormal result with tacrolimus and {name}", urgent)
        if order is None:
            continue
        label = table.lab_tests[key].label
        labels.append(label)
        actions.append(
            Action(type="create", description=f"Order {'an urgent ' if urgent else ''}{label}", resource=order)
        )
    if not actions:
        return None
    prefix = "Urgent " if d.potassium and d.potassium.urgent else "Repeat "
    return Suggestion(label=prefix + " and ".join(labels), actions=tuple(actions), is_recommended=True)


def suggestions_for(
    d: InteractionDecision,
    facts: PatientFacts,
    table: InteractionsTable,
    name: str,
    values: Mapping[str, str],
    orders: OrderContext,
    built: DoseOrders | None = None,
) -> list[Suggestion]:
    """The card's suggestions; ``built`` gives the dose plan's orders (``dose_orders``, by default
    built here)."""
    suggestions: list[Suggestion] = []
    monitor = None if d.escalated else monitor_suggestion(d, facts, table, name)
    if d.dose is not None and d.dose.targets and d.dose.order is not None:
        build = built or dose_orders(d.dose, orders)
        suggestions += _dose_suggestions(d.dose, name, monitor, build)
    replace = _replacement(facts, d, name)
    if replace is not None:
        suggestions.append(replace)
    if d.remove_draft:
        removal = _removal(d.orders, name)
        if removal is not None:
            suggestions.append(removal)
    following = _next_step_suggestion(d, facts, table, name)
    if following is not None:
        suggestions.append(following)
    if monitor is not None:
        suggestions.append(monitor)
    return suggestions


def _dose_suggestions(plan: DosePlan, name: str, monitor: Suggestion | None, build: DoseOrders) -> list[Suggestion]:
    tac = plan.order
    assert tac is not None and tac.daily_dose_mg is not None
    suggestions: list[Suggestion] = []
    for target in plan.targets:
        # The one builder (build_order): a fresh draft for an active order, a start not in the past, a
        # dose the product can give (else the 0.5 mg product of the same form), a sig naming dose and form.
        change = build(target).change
        if change is None:
            continue  # the dose cannot be written into this order (units, capsule strength): said in the detail
        less = round((1 - target / tac.daily_dose_mg) * 100)
        shown = regimen(target, tac.doses_per_day)
        if tac.is_draft:
            if tac.reference is None:  # a draft without an id cannot be updated
                continue
            action = Action(
                type="update",
                resource=change,
                description=f"Change the tacrolimus draft to {shown}; nothing else changes",
            )
        else:
            prior = tac.reference
            if prior is None:
                continue
            action = Action(
                type="create",
                resource=change,
                description=(
                    f"New tacrolimus draft at {shown}, replacing the active order (stop the active order when you sign)"
                ),
            )
        label = f"Tacrolimus {shown}, {less} % less, while on {name}"
        actions: tuple[Action, ...] = (action,)
        if monitor:
            label += ", and order troughs"
            actions += monitor.actions
        suggestions.append(Suggestion(label=label, actions=actions))
    return suggestions


def _replacement(facts: PatientFacts, d: InteractionDecision, name: str) -> Suggestion | None:
    """Create a draft of the preferred alternative, then delete the drafts of the drug."""
    alternative = d.entry.prefer_instead
    if alternative is None or d.alternative in (None, "not-for-indication") or d.escalated:
        return None
    drafts = [o for o in d.orders if o.is_draft]
    ids = [o.reference for o in drafts]
    if not drafts or any(i is None for i in ids):
        return None  # a draft without an id cannot be deleted
    shown = alternative.display
    actions = [
        Action(
            type="create",
            description=f"Create a draft {shown} order for you to complete with dose and duration",
            resource=draft_medication_request(facts.patient_id, alternative.rxnorm, shown),
        )
    ]
    actions += [Action(type="delete", description=f"Remove the {bare_name(name)} draft", resource_id=i) for i in ids]
    if d.alternative == "recommended":
        return Suggestion(
            label=f"Replace {name} with {shown} (draft to complete)", actions=tuple(actions), is_recommended=True
        )
    not_for = alternative.not_for.shown if alternative.not_for else None
    label = f"Replace {name} with {shown} if the infection allows" + (f" (not for {not_for})" if not_for else "")
    return Suggestion(label=label, actions=tuple(actions))


def _removal(orders: Sequence[MedicationFact], name: str) -> Suggestion | None:
    """Delete every draft of the drug (only drafts: an active order is stopped in the EHR)."""
    ids = [o.reference for o in orders if o.is_draft]
    if not ids or any(i is None for i in ids):
        return None
    return Suggestion(
        label=f"Remove the {bare_name(name)} draft order",
        actions=tuple(
            Action(type="delete", description=f"Remove the {bare_name(name)} draft", resource_id=i) for i in ids
        ),
        is_recommended=True,
    )

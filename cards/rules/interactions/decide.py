"""Interactions, step one: decide. Which interacting drug has a pair of orders new in this hook call,
how severe the combination is, which labs on record change the advice, whether a dose change fits.

The decision is a small value (``InteractionDecision``); ``render`` puts it into words and ``suggest``
builds its actions, so tests assert decisions, not English.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from ...facts import RIF, TH1_TH2_RATIO, MedicationFact, PatientFacts
from ...knowledge_model import Interaction, InteractionsTable, typed
from ...knowledge_model.interactions import MultiplyBy, ReduceBy
from ...model import Indicator
from ...text import fmt_date
from ...vocab import FAMILY_INTERACTION, card_kind
from ..findings import CreatinineFinding, PotassiumFinding, creatinine_finding, potassium_finding
from ..focus import fill, in_focus, span
from ..scope import excluded_from_pregnancy, pregnancy_evidence
from ..vocab import EPSILON, PATIENT_VIEW, TACROLIMUS

FORMULATION = "tacrolimus-formulation"
SWITCH_KIND = card_kind(FAMILY_INTERACTION, "tacrolimus-release-switch")
ENDED_STATUSES = frozenset({"completed", "stopped"})
FIRST_TRIMESTER_DAYS = 14 * 7

Timing = Literal["ongoing", "single-dose", "recently-stopped"]
Alternative = Literal["recommended", "indication-unknown", "not-for-indication"]


@dataclass(frozen=True)
class DosePlan:
    """A temporary tacrolimus dose cut: which order, the suggested daily doses, or why none."""

    order: MedicationFact | None
    targets: tuple[float, ...] = ()  # mg/day, mildest first; each dose a whole number of steps
    low: float | None = None  # the allowed range, mg/day
    high: float | None = None
    problem: Literal["patient-view", "several-orders", "dose-unknown", "no-step-fits"] | None = None


@dataclass(frozen=True)
class InteractionDecision:
    """Everything a card says, before it is put into words."""

    kind: str
    drug: str
    entry: Interaction
    severity: Indicator
    tacrolimus: tuple[MedicationFact, ...]
    orders: tuple[MedicationFact, ...]
    timing: Timing = "ongoing"
    stopped_on: date | None = None  # a recently stopped azole: its last day
    planned_end: date | None = None
    potassium: PotassiumFinding | None = None
    creatinine: CreatinineFinding | None = None
    ivf_course: bool = True  # trying to conceive or pregnant
    fetal_risk: str | None = None  # the fetal-risk text that applies, already filled
    alternative: Alternative | None = None
    dose: DosePlan | None = None
    remove_draft: bool = False

    @property
    def taking_tacrolimus(self) -> bool:
        """She takes tacrolimus already (an order that is not a draft of this session)."""
        return any(not t.is_draft for t in self.tacrolimus)

    @property
    def escalated(self) -> bool:
        return bool((self.potassium and self.potassium.high) or (self.creatinine and self.creatinine.rising))

    @property
    def verdict(self) -> str:
        """The decision in a few words: what changed the card (e.g. "potassium-moderate", "dose-cut")."""
        if self.kind == SWITCH_KIND:
            return "release-switch"
        if self.potassium and self.potassium.high:
            return f"potassium-{self.potassium.tier}"
        if self.creatinine and self.creatinine.rising:
            return f"creatinine-{self.creatinine.tier}"
        if self.timing != "ongoing":
            return self.timing
        if self.alternative == "not-for-indication":
            return "alternative-not-for-indication"
        if self.dose is not None:
            return "dose-cut" if self.dose.targets else f"dose-cut-{self.dose.problem}"
        return "interaction" if self.ivf_course or not self.entry.pregnancy_only else "outside-ivf-course"


def decide_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[InteractionDecision]:
    """One decision per interacting drug that has a pair of orders new in this hook call (decided
    once for the facts, the day and the knowledge: the interaction and the potassium rules both
    ask; the knowledge is kept beside the answer, as in ``scope_of``)."""
    _, decisions = facts.derived(
        ("decide_interactions", today, id(kb)), lambda: (kb, tuple(_decide_interactions(facts, today, kb)))
    )
    return list(decisions)


def _decide_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[InteractionDecision]:
    table = typed(kb).interactions
    tacrolimus_orders = tuple(m for m in facts.medications_with(TACROLIMUS) if m.systemic and not _ended(m, today))
    if not tacrolimus_orders:
        return []
    # The systemic orders of each drug other than tacrolimus, ended ones too, in the facts' order: an
    # azole's effect outlasts its last dose (``_timing_of`` says for how long). Indexed once, as the
    # table names many more drugs than she has orders.
    orders_of: dict[str, list[MedicationFact]] = {}
    for m in (*facts.medications, *facts.ended_medications):
        if m.systemic and not m.has(TACROLIMUS):
            for ingredient in dict.fromkeys(m.ingredients):
                orders_of.setdefault(ingredient, []).append(m)
    decisions: list[InteractionDecision] = []
    seen: set[str] = set()
    for entry in table.entries:
        if entry.class_ == FORMULATION:
            switch = _release_switch(facts, tacrolimus_orders, entry)
            if switch is not None and SWITCH_KIND not in seen:
                seen.add(SWITCH_KIND)
                decisions.append(switch)
            continue
        for drug in entry.drugs:
            if drug in seen or drug == TACROLIMUS:
                continue  # a drug listed twice: its first entry wins
            seen.add(drug)
            if drug not in orders_of:
                continue  # no order of it: nothing to decide
            decision = _decide_drug(facts, today, tacrolimus_orders, drug, orders_of[drug], entry, table, kb)
            if decision is not None:
                decisions.append(decision)
    return decisions


# --- which orders count ----------------------------------------------------------------------------

LEVEL_CHANGING = frozenset({"raises-levels", "lowers-levels"})


def level_changing_orders(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[MedicationFact]:
    """Orders that change tacrolimus levels now: systemic use of a drug the table says raises or
    lowers them, still taken or within the days its effect lasts (a single dose long past, an eye
    ointment or a vaginal azole do not count)."""
    found: list[MedicationFact] = []
    for entry in typed(kb).interactions.entries:
        if entry.effect_direction not in LEVEL_CHANGING or entry.class_ == FORMULATION:
            continue
        for m in (*facts.medications, *facts.ended_medications):
            if (
                not m.has(TACROLIMUS)
                and m.systemic
                and set(entry.drugs) & set(m.ingredients)
                and _timing_of(m, today, entry) is not None
                and not any(m is f for f in found)
            ):
                found.append(m)
    return found


def _ended(med: MedicationFact, today: date) -> bool:
    return med.status in ENDED_STATUSES or (med.end is not None and med.end < today)


def _single_dose(med: MedicationFact) -> bool:
    """One dose only: the order's structured timing says one day (or one administration), or, with no
    structured course at all, its sig says so in explicit words ("daily x 1 week" is a course)."""
    days = med.course_days
    if days is None and med.duration_days is not None:
        days = med.duration_days
    if days is None and med.start is not None and med.end is not None:
        days = (med.end - med.start).days + 1
    if days is not None:
        return days <= 1
    return med.single_dose


def _timing_of(med: MedicationFact, today: date, entry: Interaction) -> Timing | None:
    """How an order of the interacting drug counts today; None when it no longer interacts.

    An azole's effect outlasts its last dose by ``after_stop_days``; other drugs stop counting the day
    after their last dose."""
    lasts = int(max(entry.after_stop_days or (1,)))
    if _ended(med, today):
        # A stopped order without an end date ended on or after its start: a start inside the window
        # is enough to know its effect still lasts.
        last = med.end if med.end is not None else med.start if med.status in ENDED_STATUSES else None
        if last is None or (today - last).days > lasts:
            return None
        return "recently-stopped"
    if _single_dose(med):
        given = med.end or med.start
        return None if given is not None and (today - given).days > lasts else "single-dose"
    return "ongoing"


def _involved(
    facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact], others: Sequence[MedicationFact]
) -> tuple[tuple[MedicationFact, ...], tuple[MedicationFact, ...]]:
    """All tacrolimus and drug orders when at least one pair has a member in focus, else nothing."""
    hook = facts.hook
    new_pair = any(
        tac is not other and (in_focus(hook, tac) or in_focus(hook, other))
        for tac in tacrolimus_orders
        for other in others
    )
    return (tuple(tacrolimus_orders), tuple(others)) if new_pair else ((), ())


# --- who she is ------------------------------------------------------------------------------------


def in_ivf_course(facts: PatientFacts) -> bool:
    """Trying to conceive or pregnant: pregnancy, a RIF diagnosis, a transfer or a Th1/Th2 result on
    record, unless the chart says male with no pregnancy or transfer on record (administrative gender is
    not sex)."""
    if excluded_from_pregnancy(facts):
        return False
    return bool(facts.pregnancy.pregnant or facts.has_condition(RIF) or facts.transfers or facts.results(TH1_TH2_RATIO))


def could_conceive(facts: PatientFacts, today: date) -> bool:
    """Pregnancy evidence on record, or not recorded as male and of reproductive age (12-55) or of
    unknown age."""
    if pregnancy_evidence(facts):
        return True
    if excluded_from_pregnancy(facts):
        return False
    if facts.birth_date is None:
        return True
    age = (today - facts.birth_date).days / 365.25
    return 12 <= age <= 55


def _fetal_risk(
    facts: PatientFacts, today: date, drug: str, entry: Interaction, values: Mapping[str, str]
) -> str | None:
    risk = entry.fetal_risk
    if risk is None or not in_ivf_course(facts) or (risk.drugs and drug not in risk.drugs):
        return None
    weeks = facts.pregnancy.gestational_age_days
    if risk.first_trimester_only and facts.pregnancy.pregnant and weeks is not None and weeks >= FIRST_TRIMESTER_DAYS:
        return None
    text = fill(risk.text, values)
    days = risk.avoid_pregnancy_days
    if days:
        soon = sorted(
            t.when.date()
            for t in facts.transfers
            if t.when is not None and today <= t.when.date() <= today + timedelta(days=days)
        )
        if soon:
            text += f" The embryo transfer planned for {fmt_date(soon[0])} falls within that month."
    return text


def _course_start(tacrolimus_orders: Sequence[MedicationFact]) -> date | None:
    starts = [m.start for m in tacrolimus_orders if not m.is_draft and m.start is not None]
    return min(starts) if starts else None


# --- deciding one drug -----------------------------------------------------------------------------


def drug_name(entry: Interaction, drug: str) -> str:
    return entry.drug_display.get(drug) or drug.replace("_", " ")


def bare_name(name: str) -> str:
    """ "an ACE inhibitor" → "ACE inhibitor": the name after "the"."""
    for article in ("a ", "an "):
        if name.startswith(article):
            return name[len(article) :]
    return name


def text_values(entry: Interaction, name: str) -> dict[str, str]:
    """Placeholder values for the entry's text, all taken from the entry's own numbers."""
    values = {"drug": name, "Drug": name[:1].upper() + name[1:]}
    change = entry.dose_change
    if isinstance(change, ReduceBy):
        values["reduction"] = f"{span(change.reduce_by, 100)} %"
    if isinstance(change, MultiplyBy):
        values["fraction"] = change.as_text
    first = entry.monitor[0] if entry.monitor else None
    if first is not None and first.every_days is not None:
        values["every"] = span(first.every_days)
    if first is not None and first.first_within_days is not None:
        values["first_within"] = span(first.first_within_days)
    numbers = (
        ("after_stop", entry.after_stop_days),
        ("gap_hours", entry.gap_hours),
        ("washout_weeks", entry.washout_weeks),
    )
    for out, number in numbers:
        if number is not None:
            values[out] = span(number)
    if entry.prefer_instead is not None:
        values["alternative"] = entry.prefer_instead.display
    return values


def _decide_drug(
    facts: PatientFacts,
    today: date,
    tacrolimus_orders: Sequence[MedicationFact],
    drug: str,
    candidates: Sequence[MedicationFact],
    entry: Interaction,
    table: InteractionsTable,
    kb: Mapping[str, Any],
) -> InteractionDecision | None:
    """``candidates``: the systemic orders of ``drug``, ended ones too, none of tacrolimus."""
    timings: dict[int, Timing] = {}
    others: list[MedicationFact] = []
    for m in candidates:
        counts_as = _timing_of(m, today, entry)
        if counts_as is not None:
            timings[id(m)] = counts_as
            others.append(m)
    tacs, orders = _involved(facts, tacrolimus_orders, others)
    if not orders:
        return None
    ivf = in_ivf_course(facts)
    severity: Indicator = entry.severity
    remove = entry.remove_draft
    outside = entry.outside_ivf_course if entry.pregnancy_only and not ivf else None
    if outside is not None:
        if not could_conceive(facts, today):
            return None  # e.g. a man after a transplant: the combination is usual, nothing to act on
        severity = outside.severity
        remove = False
    kinds = [timings[id(m)] for m in orders]
    timing: Timing = (
        "ongoing" if "ongoing" in kinds else "single-dose" if "single-dose" in kinds else "recently-stopped"
    )
    stopped = [m.end for m in orders if timings[id(m)] == "recently-stopped" and m.end is not None]
    ends = [m.end for m in orders if timings[id(m)] != "recently-stopped" and m.end is not None]

    checks = table.lab_checks
    potassium_recency = checks.potassium if checks is not None else None
    creatinine_recency = checks.creatinine if checks is not None else None
    wanted = entry.lab_check or []
    potassium = (
        potassium_finding(facts, today, kb, potassium_recency.recent_days)
        if "potassium" in wanted and potassium_recency is not None
        else None
    )
    creatinine = (
        creatinine_finding(facts, today, kb, creatinine_recency.recent_days, _course_start(tacrolimus_orders))
        if "creatinine" in wanted and creatinine_recency is not None
        else None
    )
    if (
        facts.hook == PATIENT_VIEW
        and wanted
        and all(not o.is_draft for o in orders)
        and (potassium is None or potassium.tier in ("normal", "above-normal"))
        and (creatinine is None or creatinine.tier == "stable")
        and _fetal_risk(facts, today, drug, entry, text_values(entry, drug_name(entry, drug))) is None
    ):
        return None  # both long taken and the labs they need are current and normal: nothing to act on
    if (potassium and potassium.high) or (creatinine and creatinine.tier == "aki"):
        severity = "critical"
    if (potassium and potassium.high) or (creatinine and creatinine.rising):
        remove = True

    name = drug_name(entry, drug)
    values = text_values(entry, name)
    dose = (
        _dose_plan(facts, tacs, entry.dose_change, table)
        if entry.dose_change is not None and timing == "ongoing"
        else None
    )
    return InteractionDecision(
        kind=card_kind(FAMILY_INTERACTION, drug),
        drug=drug,
        entry=entry,
        severity=severity,
        tacrolimus=tacs,
        orders=orders,
        timing=timing,
        stopped_on=max(stopped) if stopped and timing == "recently-stopped" else None,
        planned_end=max(ends) if ends else None,
        potassium=potassium,
        creatinine=creatinine,
        ivf_course=ivf,
        fetal_risk=_fetal_risk(facts, today, drug, entry, values),
        alternative=_alternative(orders, entry),
        dose=dose,
        remove_draft=remove,
    )


def _alternative(orders: Sequence[MedicationFact], entry: Interaction) -> Alternative | None:
    """Whether the preferred alternative may replace the drafts, given their indications."""
    alternative = entry.prefer_instead
    drafts = [o for o in orders if o.is_draft]
    if alternative is None or not drafts:
        return None
    rule = alternative.not_for
    words = [re.compile(rf"\b{re.escape(w.lower())}\b") for w in (rule.words if rule else [])]
    codes = [c.lower() for c in (rule.codes if rule else [])]

    def excluded(indication: str) -> bool:
        text = indication.lower()
        return any(p.search(text) for p in words) or any(text.startswith(c) for c in codes)

    if any(excluded(i) for o in drafts for i in o.indications):
        return "not-for-indication"
    return "recommended" if all(o.indications for o in drafts) else "indication-unknown"


def _per_dose_steps(low: float, high: float, doses_per_day: float, step: float) -> list[float]:
    """Daily doses within [low, high] whose single doses are whole steps: the mildest and the
    strongest change, mildest (highest) first; [] when none fits."""
    if not all(math.isfinite(v) for v in (low, high, doses_per_day, step)) or step <= 0 or doses_per_day <= 0:
        return []
    first = max(math.ceil(low / doses_per_day / step - EPSILON), 1)
    last = math.floor(high / doses_per_day / step + EPSILON)
    if last < first:
        return []
    return sorted({round(last * step * doses_per_day, 6), round(first * step * doses_per_day, 6)}, reverse=True)


def _dose_plan(
    facts: PatientFacts, tacs: Sequence[MedicationFact], change: ReduceBy | MultiplyBy, table: InteractionsTable
) -> DosePlan:
    if facts.hook == PATIENT_VIEW:
        return DosePlan(None, problem="patient-view")
    focused = [t for t in tacs if in_focus(facts.hook, t)]
    candidates = focused if len(focused) == 1 else list(tacs)
    if len(candidates) != 1:
        return DosePlan(None, problem="several-orders")
    tac = candidates[0]
    if tac.daily_dose_mg is None or not tac.doses_per_day:
        return DosePlan(tac, problem="dose-unknown")
    dose, per_day = tac.daily_dose_mg, tac.doses_per_day
    step = table.dose_rounding.step_mg
    if isinstance(change, ReduceBy):
        low, high = dose * (1 - max(change.reduce_by)), dose * (1 - min(change.reduce_by))
        targets = _per_dose_steps(low, high, per_day, step)
    else:
        exact = dose * change.multiply_by
        per_dose = max(step, round(exact / per_day / step) * step)
        rounded = round(per_dose * per_day, 6)
        low = high = exact
        # A rounded dose far from the exact fraction would be another cut than the one the card names.
        deviation = table.dose_rounding.max_deviation or 1.0
        close = exact > 0 and abs(rounded - exact) / exact <= deviation + EPSILON
        targets = [rounded] if rounded < dose - EPSILON and close else []
    if not targets:
        return DosePlan(tac, low=low, high=high, problem="no-step-fits")
    return DosePlan(tac, tuple(targets), low, high)


def _release_switch(
    facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact], entry: Interaction
) -> InteractionDecision | None:
    """Immediate- and extended-release tacrolimus side by side (a switch, or a duplicate)."""
    involved: list[MedicationFact] = []
    for a in tacrolimus_orders:
        for b in tacrolimus_orders:
            if (
                a is b
                or a.release is None
                or b.release is None
                or a.release == b.release
                or not (in_focus(facts.hook, a) or in_focus(facts.hook, b))
            ):
                continue
            for med in (a, b):
                if not any(m is med for m in involved):
                    involved.append(med)
    if not involved:
        return None
    return InteractionDecision(
        kind=SWITCH_KIND,
        drug=TACROLIMUS,
        entry=entry,
        severity=entry.severity,
        tacrolimus=tuple(involved),
        orders=(),
        ivf_course=in_ivf_course(facts),
    )

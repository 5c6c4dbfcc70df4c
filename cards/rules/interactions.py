"""Drug interactions with tacrolimus, from the interaction table (knowledge/interactions.yaml).

Both directions count: an interacting drug ordered while she is on (or being ordered) tacrolimus, and
tacrolimus ordered while she takes the drug. A pair of orders is reported when at least one of them is
in the hook's focus; on patient-view that is every active pair. One card per interacting drug (kind
``interaction:<drug key>``), however many orders name it.

The rules first decide (``decide_interactions``: which drug, how severe, which labs on record changed
the advice, whether a dose change fits) and then render the decision as a card, so tests can assert
decisions and the text separately.

- Only systemic use counts: a topical, vaginal or eye product neither raises nor lowers blood levels.
- An order that has ended no longer interacts, except an azole within the days its effect lasts.
- Labs on record escalate the card: a potassium raiser with a current potassium at or above the
  hyperkalaemia threshold, a nephrotoxic drug while creatinine is rising from its baseline.
- Fetal-risk text for a woman trying to conceive (an IVF course on record) or pregnant.

Suggestions, each offered only when its resource is complete:
- azoles taken for more than a single dose: a temporary tacrolimus dose cut, every single dose a whole
  number of 0.5 mg steps; a draft order is updated (sig text rewritten or dropped), an active order is
  replaced by a new draft naming it as the prior prescription. No dose change on patient-view.
- erythromycin / clarithromycin drafts: replace with a draft azithromycin order (create, then delete)
  unless the indication is one azithromycin does not treat.
- drafts that must not be given (mycophenolate, cyclosporine, live vaccines, a potassium raiser with
  hyperkalaemia, a nephrotoxic drug while creatinine rises): remove the draft.
- the lab orders the entry names, or the next step when a result on record is abnormal.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal, Mapping, Sequence

from ..derive import creatinine_baseline, conflicting, worse
from ..dosage import is_single_dose, structured_course_days
from ..facts import (
    CREATININE,
    POTASSIUM,
    RIF,
    TH1_TH2_RATIO,
    Measurement,
    MedicationFact,
    PatientFacts,
)
from ..model import Action, Card, Indicator, Link, Suggestion
from ..orders import draft_medication_request, lab_order, reference_of, with_daily_dose, with_repeat
from ..text import DETAIL_MAX, fmt_date, fmt_number, plain, reported
from .focus import fill, in_focus, span
from .scope import excluded_from_pregnancy, pregnancy_evidence
from .vocab import EPSILON, PATIENT_VIEW, TACROLIMUS, at_least, build_card, override_codings

FORMULATION = "tacrolimus-formulation"
SWITCH_KIND = "interaction:tacrolimus-release-switch"
ENDED_STATUSES = frozenset({"completed", "stopped"})
CHEMISTRY_KEY = "chemistry"  # the prefetch key that carries potassium and creatinine
FIRST_TRIMESTER_DAYS = 14 * 7

Timing = Literal["ongoing", "single-dose", "recently-stopped"]
PotassiumTier = Literal["unavailable", "none", "old", "normal", "mild", "moderate", "severe"]
CreatinineTier = Literal["unavailable", "none", "old", "stable", "rising", "aki"]
Alternative = Literal["recommended", "indication-unknown", "not-for-indication"]


# --- decisions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PotassiumFinding:
    """The potassium on record that counts for a potassium raiser, and its tier."""

    tier: PotassiumTier
    result: Measurement | None = None  # newest result (the worse of results taken at the same time)
    conflicting: tuple[Measurement, ...] = ()

    @property
    def high(self) -> bool:
        return self.tier in ("mild", "moderate", "severe")

    @property
    def urgent(self) -> bool:
        return self.tier in ("moderate", "severe")


@dataclass(frozen=True)
class CreatinineFinding:
    """The newest creatinine, its baseline and how far it rose."""

    tier: CreatinineTier
    result: Measurement | None = None
    conflicting: tuple[Measurement, ...] = ()
    baseline: Measurement | None = None
    rise: float | None = None  # fraction above baseline, 0.67 = +67 %

    @property
    def rising(self) -> bool:
        return self.tier in ("rising", "aki")


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
    entry: Mapping[str, Any]
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
        return "interaction" if self.ivf_course or not self.entry.get("pregnancy_only") else "outside-ivf-course"


def evaluate_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Interaction cards, one per interacting drug, in the order of the table."""
    table = kb["interactions"]
    return [render(d, facts, today, table) for d in decide_interactions(facts, today, kb)]


def decide_interactions(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[InteractionDecision]:
    """One decision per interacting drug that has a pair of orders new in this hook call."""
    table = kb["interactions"]
    tacrolimus_orders = tuple(m for m in facts.medications_with(TACROLIMUS)
                              if m.systemic and not _ended(m, today))
    if not tacrolimus_orders:
        return []
    decisions: list[InteractionDecision] = []
    seen: set[str] = set()
    for entry in table["entries"]:
        if entry["class"] == FORMULATION:
            switch = _release_switch(facts, tacrolimus_orders, entry)
            if switch is not None and SWITCH_KIND not in seen:
                seen.add(SWITCH_KIND)
                decisions.append(switch)
            continue
        for drug in entry["drugs"]:
            if drug in seen or drug == TACROLIMUS:
                continue  # a drug listed twice: its first entry wins
            seen.add(drug)
            decision = _decide_drug(facts, today, tacrolimus_orders, drug, entry, table)
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
    for entry in kb["interactions"]["entries"]:
        if entry.get("effect_direction") not in LEVEL_CHANGING or entry["class"] == FORMULATION:
            continue
        for m in facts.medications:
            if (not m.has(TACROLIMUS) and m.systemic and set(entry["drugs"]) & set(m.ingredients)
                    and _timing_of(m, today, entry) is not None and not any(m is f for f in found)):
                found.append(m)
    return found


def _ended(med: MedicationFact, today: date) -> bool:
    return med.status in ENDED_STATUSES or (med.end is not None and med.end < today)


def _single_dose(med: MedicationFact) -> bool:
    """One dose only: the order's structured timing says one day (or one administration), or, with no
    structured course at all, its sig says so in explicit words ("daily x 1 week" is a course)."""
    days = structured_course_days(med.resource)
    if days is None and med.duration_days is not None:
        days = med.duration_days
    if days is None and med.start is not None and med.end is not None:
        days = (med.end - med.start).days + 1
    if days is not None:
        return days <= 1
    return is_single_dose(med.resource)


def _timing_of(med: MedicationFact, today: date, entry: Mapping[str, Any]) -> Timing | None:
    """How an order of the interacting drug counts today; None when it no longer interacts.

    An azole's effect outlasts its last dose by ``after_stop_days``; other drugs stop counting the day
    after their last dose."""
    lasts = int(max(entry.get("after_stop_days") or [1]))
    if _ended(med, today):
        if med.end is None or (today - med.end).days > lasts:
            return None
        return "recently-stopped"
    if _single_dose(med):
        given = med.end or med.start
        return None if given is not None and (today - given).days > lasts else "single-dose"
    return "ongoing"


def _involved(facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact],
              others: Sequence[MedicationFact]) -> tuple[tuple[MedicationFact, ...], tuple[MedicationFact, ...]]:
    """All tacrolimus and drug orders when at least one pair has a member in focus, else nothing."""
    hook = facts.hook
    new_pair = any(tac is not other and (in_focus(hook, tac) or in_focus(hook, other))
                   for tac in tacrolimus_orders for other in others)
    return (tuple(tacrolimus_orders), tuple(others)) if new_pair else ((), ())


# --- who she is ------------------------------------------------------------------------------------


def in_ivf_course(facts: PatientFacts) -> bool:
    """Trying to conceive or pregnant: pregnancy, a RIF diagnosis, a transfer or a Th1/Th2 result on
    record, unless the chart says male with no pregnancy or transfer on record (administrative gender is
    not sex)."""
    if excluded_from_pregnancy(facts):
        return False
    return bool(facts.pregnancy.pregnant or facts.has_condition(RIF) or facts.transfers
                or facts.results(TH1_TH2_RATIO))


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


def _fetal_risk(facts: PatientFacts, today: date, drug: str, entry: Mapping[str, Any],
                values: Mapping[str, str]) -> str | None:
    risk = entry.get("fetal_risk")
    if not risk or not in_ivf_course(facts) or (risk.get("drugs") and drug not in risk["drugs"]):
        return None
    weeks = facts.pregnancy.gestational_age_days
    if risk.get("first_trimester_only") and facts.pregnancy.pregnant and weeks is not None \
            and weeks >= FIRST_TRIMESTER_DAYS:
        return None
    text = fill(str(risk["text"]), values)
    days = risk.get("avoid_pregnancy_days")
    if days:
        soon = sorted(t.when.date() for t in facts.transfers
                      if t.when is not None and today <= t.when.date() <= today + timedelta(days=int(days)))
        if soon:
            text += f" The embryo transfer planned for {fmt_date(soon[0])} falls within that month."
    return text


# --- labs on record --------------------------------------------------------------------------------


def _newest(facts: PatientFacts, concept: str) -> tuple[Measurement | None, tuple[Measurement, ...]]:
    """The newest usable result (the worse of results taken at the same time) and its conflicts."""
    newest = facts.latest(concept)
    if newest is None:
        return None, ()
    return worse(facts, newest), tuple(sorted({newest, *conflicting(facts, newest)} - {worse(facts, newest)},
                                              key=lambda m: m.source))


def _is_recent(m: Measurement, today: date, days: int) -> bool:
    return m.when is not None and (today - m.when.date()).days <= days


def potassium_finding(facts: PatientFacts, today: date, limits: Mapping[str, Any]) -> PotassiumFinding:
    """UK Kidney Association tiers of the newest potassium, when it is current."""
    if CHEMISTRY_KEY in facts.missing:
        return PotassiumFinding("unavailable")
    result, conflicts = _newest(facts, POTASSIUM)
    if result is None or result.value is None:
        return PotassiumFinding("none")
    if not _is_recent(result, today, int(limits["recent_days"])):
        return PotassiumFinding("old", result, conflicts)
    value = result.value
    tier: PotassiumTier = ("severe" if at_least(value, float(limits["severe_at"]))
                           else "moderate" if at_least(value, float(limits["urgent_at"]))
                           else "mild" if at_least(value, float(limits["high_at"])) else "normal")
    return PotassiumFinding(tier, result, conflicts)


def _course_start(tacrolimus_orders: Sequence[MedicationFact]) -> date | None:
    starts = [m.start for m in tacrolimus_orders if not m.is_draft and m.start is not None]
    return min(starts) if starts else None


def creatinine_finding(facts: PatientFacts, today: date, limits: Mapping[str, Any],
                       tacrolimus_orders: Sequence[MedicationFact]) -> CreatinineFinding:
    """The newest creatinine against its baseline (latest before the course, KDIGO tiers)."""
    if CHEMISTRY_KEY in facts.missing:
        return CreatinineFinding("unavailable")
    result, conflicts = _newest(facts, CREATININE)
    if result is None or result.value is None or result.when is None:
        return CreatinineFinding("none")
    if not _is_recent(result, today, int(limits["recent_days"])):
        return CreatinineFinding("old", result, conflicts)
    baseline = creatinine_baseline(facts, _course_start(tacrolimus_orders), today)
    rise: float | None = None
    if (baseline is not None and baseline.value and baseline.when is not None
            and baseline.when < result.when):
        rise = result.value / baseline.value - 1
    window = timedelta(hours=float(limits["aki_absolute_hours"]))
    fast = any(r.value is not None and r.when is not None and r.actionable
               and result.when - window <= r.when < result.when
               and at_least(result.value - r.value, float(limits["aki_absolute_mg_dl"]))
               for r in facts.results(CREATININE))
    tier: CreatinineTier = "stable"
    if fast or (rise is not None and at_least(rise, float(limits["aki_fraction"]))):
        tier = "aki"
    elif rise is not None and at_least(rise, float(limits["rise_fraction"])):
        tier = "rising"
    return CreatinineFinding(tier, result, conflicts, baseline if rise is not None else None, rise)


# --- deciding one drug -----------------------------------------------------------------------------


def _drug_name(entry: Mapping[str, Any], drug: str) -> str:
    return str((entry.get("drug_display") or {}).get(drug) or drug.replace("_", " "))


def _bare(name: str) -> str:
    """"an ACE inhibitor" → "ACE inhibitor": the name after "the"."""
    for article in ("a ", "an "):
        if name.startswith(article):
            return name[len(article):]
    return name


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


def _decide_drug(facts: PatientFacts, today: date, tacrolimus_orders: Sequence[MedicationFact], drug: str,
                 entry: Mapping[str, Any], table: Mapping[str, Any]) -> InteractionDecision | None:
    timings: dict[int, Timing] = {}
    others: list[MedicationFact] = []
    for m in facts.medications:
        if not m.has(drug) or m.has(TACROLIMUS) or not m.systemic:
            continue
        counts_as = _timing_of(m, today, entry)
        if counts_as is not None:
            timings[id(m)] = counts_as
            others.append(m)
    tacs, orders = _involved(facts, tacrolimus_orders, others)
    if not orders:
        return None
    ivf = in_ivf_course(facts)
    severity: Indicator = entry["severity"]
    remove = bool(entry.get("remove_draft"))
    if entry.get("pregnancy_only") and not ivf:
        if not could_conceive(facts, today):
            return None  # e.g. a man after a transplant: the combination is usual, nothing to act on
        severity = entry["outside_ivf_course"]["severity"]
        remove = False
    kinds = [timings[id(m)] for m in orders]
    timing: Timing = ("ongoing" if "ongoing" in kinds else "single-dose" if "single-dose" in kinds
                      else "recently-stopped")
    stopped = [m.end for m in orders if timings[id(m)] == "recently-stopped" and m.end is not None]
    ends = [m.end for m in orders if timings[id(m)] != "recently-stopped" and m.end is not None]

    checks = table.get("lab_checks") or {}
    wanted = entry.get("lab_check") or []
    potassium = (potassium_finding(facts, today, checks["potassium"])
                 if "potassium" in wanted and "potassium" in checks else None)
    creatinine = (creatinine_finding(facts, today, checks["creatinine"], tacrolimus_orders)
                  if "creatinine" in wanted and "creatinine" in checks else None)
    if (facts.hook == PATIENT_VIEW and wanted and all(not o.is_draft for o in orders)
            and (potassium is None or potassium.tier == "normal")
            and (creatinine is None or creatinine.tier == "stable")
            and _fetal_risk(facts, today, drug, entry, _values(entry, _drug_name(entry, drug))) is None):
        return None  # both long taken and the labs they need are current and normal: nothing to act on
    if (potassium and potassium.high) or (creatinine and creatinine.tier == "aki"):
        severity = "critical"
    if (potassium and potassium.high) or (creatinine and creatinine.rising):
        remove = True

    name = _drug_name(entry, drug)
    values = _values(entry, name)
    dose = (_dose_plan(facts, tacs, entry, table) if "dose_change" in entry and timing == "ongoing" else None)
    return InteractionDecision(
        kind=f"interaction:{drug}", drug=drug, entry=entry, severity=severity, tacrolimus=tacs,
        orders=orders, timing=timing, stopped_on=max(stopped) if stopped and timing == "recently-stopped" else None,
        planned_end=max(ends) if ends else None, potassium=potassium, creatinine=creatinine,
        ivf_course=ivf, fetal_risk=_fetal_risk(facts, today, drug, entry, values),
        alternative=_alternative(orders, entry), dose=dose, remove_draft=remove)


def _alternative(orders: Sequence[MedicationFact], entry: Mapping[str, Any]) -> Alternative | None:
    """Whether the preferred alternative may replace the drafts, given their indications."""
    alternative = entry.get("prefer_instead")
    drafts = [o for o in orders if o.is_draft]
    if alternative is None or not drafts:
        return None
    rule = alternative.get("not_for") or {}
    words = [re.compile(rf"\b{re.escape(str(w).lower())}\b") for w in rule.get("words") or []]
    codes = [str(c).lower() for c in rule.get("codes") or []]

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


def _dose_plan(facts: PatientFacts, tacs: Sequence[MedicationFact], entry: Mapping[str, Any],
               table: Mapping[str, Any]) -> DosePlan:
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
    step = float(table["dose_rounding"]["step_mg"])
    change = entry["dose_change"]
    if "reduce_by" in change:
        low, high = dose * (1 - max(change["reduce_by"])), dose * (1 - min(change["reduce_by"]))
        targets = _per_dose_steps(low, high, per_day, step)
    else:
        exact = dose * float(change["multiply_by"])
        per_dose = max(step, round(exact / per_day / step) * step)
        rounded = round(per_dose * per_day, 6)
        low = high = exact
        targets = [rounded] if rounded < dose - EPSILON else []
    if not targets:
        return DosePlan(tac, low=low, high=high, problem="no-step-fits")
    return DosePlan(tac, tuple(targets), low, high)


def _release_switch(facts: PatientFacts, tacrolimus_orders: Sequence[MedicationFact],
                    entry: Mapping[str, Any]) -> InteractionDecision | None:
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
    return InteractionDecision(kind=SWITCH_KIND, drug=TACROLIMUS, entry=entry, severity=entry["severity"],
                               tacrolimus=tuple(involved), orders=(), ivf_course=in_ivf_course(facts))


# --- rendering ---------------------------------------------------------------------------------------

def _frequency(per_day: float | None) -> str:
    words = {1: "once daily", 2: "twice daily", 3: "three times daily"}
    if per_day is None:
        return ""
    return words.get(int(per_day), f"{fmt_number(per_day)} times a day") if float(per_day).is_integer() \
        else f"{fmt_number(per_day)} doses a day"


def _regimen(daily: float, per_day: float | None) -> str:
    """"0.5 mg twice daily (1 mg/day)", or "1 mg/day" when the doses per day are unknown."""
    if not per_day or float(per_day) == 1:
        return f"{fmt_number(daily)} mg once daily" if per_day else f"{fmt_number(daily)} mg/day"
    return f"{fmt_number(daily / per_day)} mg {_frequency(per_day)} ({fmt_number(daily)} mg/day)"


def _order_line(med: MedicationFact) -> str:
    """What the order says, its state and its dose (tacrolimus: always), without ids."""
    parts = ["draft" if med.is_draft else med.status or "status unknown"]
    if med.release:
        parts[0] += f", {med.release}-release"
    if med.daily_dose_mg is not None:
        parts.append(_regimen(med.daily_dose_mg, med.doses_per_day))
    elif med.has(TACROLIMUS):
        parts.append("dose not given")
    line = f"{plain(med.display)} ({'; '.join(parts)}"
    if med.end is not None:
        line += f"; until {fmt_date(med.end)}"
    line += ")"
    if med.recognised_by == "text":
        line += " — named only in its text: confirm it is the drug meant"
    return line


def _reported(m: Measurement) -> str:
    """A result as the lab reported it, with its date: "5.8 mmol/L on 2026-11-24"."""
    return f"{reported(m)} on {fmt_date(m.when)}"


def _conflict_note(concept: str, result: Measurement, others: Sequence[Measurement]) -> str:
    if not others:
        return ""
    also = ", ".join(reported(o) for o in others)
    return (f" Another {concept} taken at the same time reads {also}: the results disagree, so the "
            "worse one is used; check which is right.")


_POTASSIUM_NAMES = {"mild": "mild hyperkalaemia", "moderate": "moderate hyperkalaemia",
                    "severe": "severe hyperkalaemia"}


def _potassium_text(d: InteractionDecision, name: str) -> tuple[str | None, list[str]]:
    """(summary override, detail lines) for the potassium on record."""
    k = d.potassium
    if k is None:
        return None, []
    if k.tier == "unavailable":
        return None, ["**Potassium:** results could not be retrieved: check the latest value before it starts."]
    if k.tier == "none" or k.result is None:
        return None, ["**Potassium:** none on record: check it before it starts."]
    if k.tier == "old":
        return None, [f"**Potassium:** latest {_reported(k.result)} is not current: check it before it starts."]
    note = _conflict_note("potassium", k.result, k.conflicting)
    if not k.high:
        return None, [f"**Potassium:** {_reported(k.result)}, normal.{note}"]
    contraindicated = bool(d.entry.get("contraindicated_in_hyperkalaemia"))
    already = all(not o.is_draft for o in d.orders)
    act = f"stop {name}" if already else f"do not start {name}"
    why = " (contraindicated in hyperkalaemia)" if contraindicated else ""
    urgent = "urgent repeat and ECG; " if k.urgent else ""
    summary = f"Potassium {_reported(k.result)}: {urgent}{act}{why}"
    lines = [f"**Potassium:** {_reported(k.result)} — {_POTASSIUM_NAMES[k.tier]}.{note}"]
    if k.urgent:
        lines.append("**Next step:** repeat potassium urgently and record an ECG; treat hyperkalaemia as "
                     "your local protocol says, and review the tacrolimus trough.")
    else:
        lines.append(f"**Next step:** leave out {name}; look for the cause and repeat potassium as your "
                     "local protocol says.")
    return summary, lines


def _taking_tacrolimus(d: InteractionDecision) -> bool:
    """She takes tacrolimus already (an order that is not a draft of this session)."""
    return any(not t.is_draft for t in d.tacrolimus)


def _creatinine_text(d: InteractionDecision, name: str) -> tuple[str | None, list[str]]:
    c = d.creatinine
    if c is None:
        return None, []
    if c.tier == "unavailable":
        return None, ["**Creatinine:** results could not be retrieved: check it before it starts."]
    if c.tier == "none" or c.result is None:
        return None, ["**Creatinine:** none on record: check it before it starts."]
    if c.tier == "old":
        return None, [f"**Creatinine:** latest {_reported(c.result)} is not current: check it before it starts."]
    note = _conflict_note("creatinine", c.result, c.conflicting)
    if not c.rising or c.baseline is None or c.rise is None:
        return None, [f"**Creatinine:** {_reported(c.result)}, no rise from baseline.{note}"]
    pct = round(c.rise * 100)
    rise = (f"{reported(c.baseline)} ({fmt_date(c.baseline.when)}) → {reported(c.result)} "
            f"({fmt_date(c.result.when)}), +{pct} %")
    already = all(not o.is_draft for o in d.orders)
    act = f"stop {name}" if already else f"avoid {name}"
    label = "acute kidney injury range" if c.tier == "aki" else "kidney function is changing"
    tests = "creatinine and trough" if _taking_tacrolimus(d) else "creatinine"
    summary = (f"Creatinine rose {reported(c.baseline)} → {reported(c.result)} (+{pct} %): {act}; "
               f"repeat {tests}")
    tests = "creatinine and a tacrolimus trough" if _taking_tacrolimus(d) else "creatinine"
    return summary, [f"**Creatinine:** {rise} — {label}.{note}",
                     f"**Next step:** repeat {tests}; look for other causes "
                     "(dehydration, other kidney-toxic drugs)."]


def _dose_text(d: InteractionDecision, values: Mapping[str, str], step: float) -> list[str]:
    plan = d.dose
    change = d.entry.get("dose_change") or {}
    how = f"by {values['reduction']}" if "reduction" in values else f"to {values.get('fraction', '')}"
    if d.timing == "single-dose" and "dose_change" not in d.entry:
        return []
    if d.timing == "single-dose":
        return [f"**Dose:** a single dose does not justify a course-long cut: keep the tacrolimus dose "
                f"and check a trough in {values.get('every', '2–3')} days."]
    if d.timing == "recently-stopped" and d.stopped_on is not None:
        lasts = max(d.entry.get("after_stop_days") or [0])
        return [f"**Stopped:** {values['drug']} ended on {fmt_date(d.stopped_on)}; its effect lasts until "
                f"about {fmt_date(d.stopped_on + timedelta(days=int(lasts)))}. Levels will fall: check "
                f"troughs and return to the usual dose as they fall."]
    if plan is None:
        return []
    if plan.problem == "patient-view":
        return [f"**Dose:** both drugs are already active. If the tacrolimus dose was not changed when "
                f"{values['drug']} started, reduce it {how}."]
    if plan.problem == "several-orders":
        return [f"**Dose:** several tacrolimus orders: reduce the one that continues {how}."]
    if plan.problem == "dose-unknown" or plan.order is None or plan.order.daily_dose_mg is None:
        return [f"**Dose:** the tacrolimus dose is not given; when you set it, reduce it {how}."]
    dose = plan.order.daily_dose_mg
    if "reduce_by" in change:
        arithmetic = (f"{fmt_number(dose)} mg/day less {values['reduction']} = "
                      f"{fmt_number(plan.low or 0)}–{fmt_number(plan.high or 0)} mg/day")
    else:
        arithmetic = f"{values.get('fraction', '')} of {fmt_number(dose)} mg/day = {fmt_number(plan.low or 0)} mg/day"
    lines = [f"**Dose:** {arithmetic}, each dose in {fmt_number(step)} mg capsule steps."]
    by_hand = [t for t in plan.targets if with_daily_dose(plan.order, t) is None]
    if by_hand:
        lines.append(" and ".join(f"{fmt_number(t)} mg/day" for t in by_hand)
                     + " cannot be written into this order (capsule strength or units): change it by hand.")
    if plan.problem == "no-step-fits":
        lines.append(f"No dose in {fmt_number(step)} mg steps fits: change the dose or timing by hand.")
    usual = _regimen(dose, plan.order.doses_per_day)
    if d.planned_end:
        lines.append(f"{values['Drug']} is planned to end on {fmt_date(d.planned_end)}: return to {usual} "
                     "then, as the troughs fall.")
    else:
        lines.append(f"Return to {usual} when {values['drug']} stops, as the troughs fall.")
    return lines


def _source_line(d: InteractionDecision, table: Mapping[str, Any]) -> str:
    sources = [str(s) for s in d.entry["sources"]]
    checks = table.get("lab_checks") or {}
    if d.potassium and d.potassium.high:
        sources.append(str(checks["potassium"]["source"]))
    if d.creatinine and d.creatinine.rising:
        sources.append(str(checks["creatinine"]["source"]))
    return "Source: " + "; ".join(sources) + "."


def render(d: InteractionDecision, facts: PatientFacts, today: date, table: Mapping[str, Any]) -> Card:
    """The card for one decision."""
    entry = d.entry
    if d.kind == SWITCH_KIND:
        return _render_switch(d, facts, table)
    name = _drug_name(entry, d.drug)
    values = _values(entry, name)
    outside = bool(entry.get("pregnancy_only")) and not d.ivf_course
    summary = fill(entry["outside_ivf_course"]["summary"] if outside else entry["summary"], values)
    handling = fill(entry["outside_ivf_course"]["handling"] if outside else entry["handling"], values)
    effect = fill(entry["effect"], values)
    if d.timing == "single-dose" and "dose_change" in entry:
        summary = f"Single dose of {name}: keep the tacrolimus dose, check a trough in {values.get('every', '2–3')} days"
    elif d.timing == "recently-stopped" and d.stopped_on is not None:
        summary = (f"{values['Drug']} stopped on {fmt_date(d.stopped_on)}: tacrolimus levels will fall "
                   f"over {values.get('after_stop', 'several')} days; check troughs")
    lines = [f"**Why:** {effect}"]
    lines += [f"**Tacrolimus:** {_order_line(t)}" for t in d.tacrolimus]
    heading = _bare(name)
    lines += [f"**{heading[:1].upper() + heading[1:]}:** {_order_line(o)}" for o in d.orders]
    k_summary, k_lines = _potassium_text(d, name)
    c_summary, c_lines = _creatinine_text(d, name)
    lines += k_lines + c_lines
    if d.alternative == "not-for-indication":
        shown = entry["prefer_instead"]["not_for"]["shown"]
        handling = (f"{values['alternative'][:1].upper() + values['alternative'][1:]} does not replace {name} "
                    f"for {shown}: keep it, and check a tacrolimus trough within {values.get('first_within', '1–3')} "
                    f"days and every {values.get('every', '2–3')} days while it is given.")
        summary = (f"{values['Drug']} raises tacrolimus levels: check a trough within "
                   f"{values.get('first_within', '1–3')} days")
    if not d.escalated and (d.timing == "ongoing" or "dose_change" not in entry):
        lines.append(f"**What to do:** {handling}")
    lines += _dose_text(d, values, float(table["dose_rounding"]["step_mg"]))
    if d.fetal_risk:
        lines.append(f"**Pregnancy:** {d.fetal_risk}")
    never = d.entry.get("effect_direction") in ("contraindicated", "never-together", "immunosuppression")
    if d.remove_draft and (never or d.escalated) and all(not o.is_draft for o in d.orders):
        lines.append(f"{values['Drug']} is an active order: stop it in the medication list.")
    summary = k_summary or c_summary or summary

    suggestions = _suggestions(d, facts, table, name, values)
    monitor_line = _monitor_line(d, table)
    if monitor_line:
        lines.append(monitor_line)
    lines.append(_source_line(d, table))
    detail = _fit("\n\n".join(lines))
    exclusive = d.dose is not None and bool(d.dose.targets)
    return _card(d, summary, detail, suggestions, table, exclusive)


def _card(d: InteractionDecision, summary: str, detail: str, suggestions: Sequence[Suggestion],
          table: Mapping[str, Any], exclusive: bool) -> Card:
    """Alternative dose changes exclude each other; removal, tests and a replacement do not."""
    card = build_card(kind=d.kind, verdict=d.verdict, indicator=d.severity, summary=summary, detail=detail,
                      source_label=str(table["source_label"]), suggestions=suggestions,
                      override_reasons=override_codings(table), links=_links(table))
    if suggestions and not exclusive:
        card = replace(card, selection_behavior="any")
    return card


def _fit(detail: str) -> str:
    """Detail within the length a clinician reads; the source line is kept."""
    if len(detail) <= DETAIL_MAX:
        return detail
    body, _, source = detail.rpartition("\n\n")
    keep = DETAIL_MAX - len(source) - 4
    return body[:keep].rstrip() + "…\n\n" + source


def _links(table: Mapping[str, Any]) -> tuple[Link, ...]:
    return tuple(Link(label=link["label"], url=link["url"]) for link in table.get("links") or [])


# --- suggestions -------------------------------------------------------------------------------------


def _test_order(facts: PatientFacts, table: Mapping[str, Any], key: str, reason: str,
                urgent: bool = False) -> dict[str, Any] | None:
    test = table["lab_tests"].get(key)
    if test is None:
        return None  # a site removed the test: nothing to order
    order = lab_order(facts.patient_id, test["loinc"], test["display"], reason)
    if urgent:
        order["priority"] = "urgent"
    return order


def _monitor_line(d: InteractionDecision, table: Mapping[str, Any]) -> str | None:
    if d.escalated or (d.timing != "ongoing" and "dose_change" in d.entry):
        return None  # the result on record, or the dose line, says what to check
    parts: list[str] = []
    for item in d.entry.get("monitor") or []:
        test = table["lab_tests"].get(item["test"])
        if test is None:
            continue
        if "every_days" in item:
            checks = int(item.get("checks") or table["default_checks"]["count"])
            default = " (number of checks: site default)" if "checks" not in item else ""
            parts.append(f"{test['label']} every {span(item['every_days'])} days, {checks} checks{default}")
        else:
            parts.append(str(test["label"]))
    return f"**Monitoring:** {'; '.join(parts)}." if parts else None


def _monitor_suggestion(d: InteractionDecision, facts: PatientFacts, table: Mapping[str, Any],
                        name: str) -> Suggestion | None:
    actions: list[Action] = []
    labels: list[str] = []
    for item in d.entry.get("monitor") or []:
        order = _test_order(facts, table, item["test"], f"monitoring tacrolimus with {name}")
        if order is None:
            continue
        what = str(table["lab_tests"][item["test"]]["label"])
        if "every_days" in item and d.timing != "ongoing":
            labels.append(f"a {what}")  # one check after a single dose or a stop
            description = f"Order a {what}"
        elif "every_days" in item:
            checks = int(item.get("checks") or table["default_checks"]["count"])
            low, high = item["every_days"]
            order = with_repeat(order, (float(low), float(high)), checks)
            every = span(item["every_days"])
            labels.append(f"{what} every {every} days ({checks} checks)")
            description = f"Order {what} every {every} days, {checks} draws"
        else:
            labels.append(what)
            description = f"Order {what}"
        actions.append(Action(type="create", description=description, resource=order))
    if not actions:
        return None
    return Suggestion(label="Order " + " and ".join(labels), actions=tuple(actions))


def _next_step_suggestion(d: InteractionDecision, facts: PatientFacts, table: Mapping[str, Any],
                          name: str) -> Suggestion | None:
    """The tests that follow an abnormal result on record."""
    wanted: list[tuple[str, bool]] = []
    if d.potassium and d.potassium.urgent:
        wanted += [("potassium", True), ("ecg", True)]
    if d.creatinine and d.creatinine.rising:
        wanted.append(("creatinine", False))
        if _taking_tacrolimus(d):
            wanted.append(("tacrolimus_trough", False))  # no level to measure before the first dose
    actions: list[Action] = []
    labels: list[str] = []
    for key, urgent in wanted:
        order = _test_order(facts, table, key, f"abnormal result with tacrolimus and {name}", urgent)
        if order is None:
            continue
        label = str(table["lab_tests"][key]["label"])
        labels.append(label)
        actions.append(Action(type="create", description=f"Order {'an urgent ' if urgent else ''}{label}",
                              resource=order))
    if not actions:
        return None
    prefix = "Urgent " if d.potassium and d.potassium.urgent else "Repeat "
    return Suggestion(label=prefix + " and ".join(labels), actions=tuple(actions), is_recommended=True)


def _suggestions(d: InteractionDecision, facts: PatientFacts, table: Mapping[str, Any], name: str,
                 values: Mapping[str, str]) -> list[Suggestion]:
    suggestions: list[Suggestion] = []
    monitor = None if d.escalated else _monitor_suggestion(d, facts, table, name)
    if d.dose is not None and d.dose.targets and d.dose.order is not None:
        suggestions += _dose_suggestions(d.dose, name, monitor, float(table["dose_rounding"]["step_mg"]))
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


def _consistent_sig(original: Mapping[str, Any], changed: dict[str, Any]) -> dict[str, Any]:
    """Drop any dosage text or patient instruction the dose change left as it was: an order must
    never carry the old dose in words beside the new dose in numbers."""
    before = original.get("dosageInstruction")
    after = changed.get("dosageInstruction")
    if not isinstance(before, list) or not isinstance(after, list):
        return changed
    for old, new in zip(before, after):
        if isinstance(old, dict) and isinstance(new, dict):
            for key in ("text", "patientInstruction"):
                if key in new and new.get(key) == old.get(key):
                    new.pop(key)
    return changed


def _as_new_draft(changed: dict[str, Any], prior: str) -> dict[str, Any]:
    """A new draft order replacing an active one (EHRs accept updates only to drafts)."""
    draft = copy.deepcopy(changed)
    draft.pop("id", None)
    draft.pop("meta", None)
    draft["status"] = "draft"
    draft["priorPrescription"] = {"reference": prior}
    return draft


def _dose_suggestions(plan: DosePlan, name: str, monitor: Suggestion | None, step: float) -> list[Suggestion]:
    tac = plan.order
    assert tac is not None and tac.daily_dose_mg is not None
    suggestions: list[Suggestion] = []
    for target in plan.targets:
        resource = with_daily_dose(tac, target)
        if resource is None:
            continue  # the dose cannot be written into this order (units, capsule strength)
        resource = _consistent_sig(tac.resource, resource)
        less = round((1 - target / tac.daily_dose_mg) * 100)
        regimen = _regimen(target, tac.doses_per_day)
        if tac.is_draft:
            if reference_of(resource) is None:
                continue
            action = Action(type="update", resource=resource,
                            description=f"Change the tacrolimus draft to {regimen}; nothing else changes")
        else:
            prior = reference_of(tac.resource)
            if prior is None:
                continue
            action = Action(type="create", resource=_as_new_draft(resource, prior),
                            description=(f"New tacrolimus draft at {regimen}, replacing the active order "
                                         "(stop the active order when you sign)"))
        label = f"Tacrolimus {regimen}, {less} % less, while on {name}"
        actions: tuple[Action, ...] = (action,)
        if monitor:
            label += ", and order troughs"
            actions += monitor.actions
        suggestions.append(Suggestion(label=label, actions=actions))
    return suggestions


def _replacement(facts: PatientFacts, d: InteractionDecision, name: str) -> Suggestion | None:
    """Create a draft of the preferred alternative, then delete the drafts of the drug."""
    alternative = d.entry.get("prefer_instead")
    if alternative is None or d.alternative in (None, "not-for-indication") or d.escalated:
        return None
    drafts = [o for o in d.orders if o.is_draft]
    ids = [reference_of(o.resource) for o in drafts]
    if not drafts or any(i is None for i in ids):
        return None  # a draft without an id cannot be deleted
    shown = alternative["display"]
    actions = [Action(type="create", description=f"Create a draft {shown} order for you to complete "
                                                 "with dose and duration",
                      resource=draft_medication_request(facts.patient_id, alternative["rxnorm"], shown))]
    actions += [Action(type="delete", description=f"Remove the {_bare(name)} draft", resource_id=i) for i in ids]
    if d.alternative == "recommended":
        return Suggestion(label=f"Replace {name} with {shown} (draft to complete)", actions=tuple(actions),
                          is_recommended=True)
    not_for = (alternative.get("not_for") or {}).get("shown")
    label = f"Replace {name} with {shown} if the infection allows" + (f" (not for {not_for})" if not_for else "")
    return Suggestion(label=label, actions=tuple(actions))


def _removal(orders: Sequence[MedicationFact], name: str) -> Suggestion | None:
    """Delete every draft of the drug (only drafts: an active order is stopped in the EHR)."""
    ids = [reference_of(o.resource) for o in orders if o.is_draft]
    if not ids or any(i is None for i in ids):
        return None
    return Suggestion(
        label=f"Remove the {_bare(name)} draft order",
        actions=tuple(Action(type="delete", description=f"Remove the {_bare(name)} draft", resource_id=i)
                      for i in ids),
        is_recommended=True)


def _render_switch(d: InteractionDecision, facts: PatientFacts, table: Mapping[str, Any]) -> Card:
    entry = d.entry
    values = _values(entry, "tacrolimus")
    lines = [f"**Why:** {fill(entry['effect'], values)}"]
    lines += [f"**Tacrolimus:** {_order_line(m)}" for m in d.tacrolimus]
    lines.append(f"**What to do:** {fill(entry['handling'], values)}")
    monitor = _monitor_suggestion(d, facts, table, "a change of tacrolimus formulation")
    monitor_line = _monitor_line(d, table)
    if monitor_line:
        lines.append(monitor_line)
    lines.append(_source_line(d, table))
    suggestions = (monitor,) if monitor else ()
    return _card(d, fill(entry["summary"], values), _fit("\n\n".join(lines)), suggestions, table, False)


__all__ = ["LEVEL_CHANGING", "level_changing_orders", "CreatinineFinding", "DosePlan", "InteractionDecision", "PotassiumFinding", "could_conceive",
           "creatinine_finding", "decide_interactions", "evaluate_interactions", "in_ivf_course",
           "potassium_finding", "render"]

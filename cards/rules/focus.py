"""What a hook call is about, and how the rules describe the orders in it.

The one focus helper: on order-select the selected orders are what is new and the other drafts are
context; on order-sign every draft is new; on patient-view the active medications are reviewed (there
are no drafts). ``in_focus`` answers this for one order; ``focus_of`` gathers the tacrolimus orders.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..facts import RIF, TH1_TH2_RATIO, MedicationFact, PatientFacts
from ..facts import TACROLIMUS as TACROLIMUS_LEVEL
from ..text import fmt_number, plain
from .vocab import ACTIVE_STATUSES, ORDER_SELECT, ORDER_SIGN, ORDERING_HOOKS, TACROLIMUS

# How far back a tacrolimus level or an ended tacrolimus order shows she is (or was just) on therapy:
# about two trough intervals, longer than the 16-day course.
THERAPY_EVIDENCE_DAYS = 30


def in_focus(hook: str, med: MedicationFact) -> bool:
    """True when the order is what this hook call is about."""
    if hook == ORDER_SELECT:
        return med.is_draft and med.is_selected
    if hook == ORDER_SIGN:
        return med.is_draft
    return not med.is_draft


def is_active(med: MedicationFact) -> bool:
    """An order she is taking: recorded (not a draft of this session) and active or on hold."""
    return not med.is_draft and med.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class Focus:
    """Which tacrolimus orders a hook call is about, and whether the patient is on or near therapy."""

    hook: str
    drafts: tuple[MedicationFact, ...]  # tacrolimus drafts in focus (order hooks)
    active: tuple[MedicationFact, ...]  # tacrolimus she is on (active / on-hold, not a draft)
    candidate: bool  # RIF documented or a Th1/Th2 ratio on record
    pregnant: bool = False
    all_drafts: tuple[MedicationFact, ...] = ()  # every tacrolimus draft of the session, in focus or not
    # Evidence of therapy besides an active order, which an EHR may not have sent: a tacrolimus level or
    # a tacrolimus order that ended, in the last THERAPY_EVIDENCE_DAYS days.
    level_on_record: bool = False
    recently_ended: tuple[MedicationFact, ...] = ()

    @property
    def on_therapy(self) -> bool:
        """An active tacrolimus order, a recent tacrolimus level or a recently ended tacrolimus order."""
        return bool(self.active) or self.level_on_record or bool(self.recently_ended)

    @property
    def continuing(self) -> bool:
        """A draft that continues therapy (she is on tacrolimus) rather than starting it: candidacy,
        band dose, start timing and baseline labs belong to the start of a course."""
        return self.on_therapy

    @property
    def applies(self) -> bool:
        """Whether the protocol rules have anything to say in this call at all."""
        if self.hook in ORDERING_HOOKS:
            return bool(self.drafts)
        return self.on_therapy or self.candidate

    def _known_starts(self) -> list[date]:
        # An order date (authoredOn) is not a start date: the course may have begun days later.
        return [m.start for m in self.active if m.start is not None and m.start_from != "authoredOn"]

    def therapy_start(self) -> date | None:
        """Earliest known start of the tacrolimus she is on."""
        starts = self._known_starts()
        return min(starts) if starts else None

    def last_change(self) -> date | None:
        """Latest known start among her tacrolimus orders: a newer order is a (visible) dose change."""
        starts = self._known_starts()
        return max(starts) if starts else None


def focus_of(facts: PatientFacts) -> Focus:
    """The tacrolimus orders of this hook call: those in focus, every draft, and the active ones
    (worked out once for the facts: most rules ask)."""
    return facts.derived(("focus_of",), lambda: _focus_of(facts))


def _focus_of(facts: PatientFacts) -> Focus:
    # Tacrolimus ointment or eye drops are not systemic: no protocol, trough or dose rule is about them.
    tacro = tuple(m for m in facts.medications_with(TACROLIMUS) if m.systemic)
    drafts = tuple(sorted((m for m in tacro if m.is_draft and in_focus(facts.hook, m)), key=lambda m: m.source))
    all_drafts = tuple(sorted((m for m in tacro if m.is_draft), key=lambda m: m.source))
    active = tuple(m for m in tacro if is_active(m))
    candidate = facts.has_condition(RIF) or bool(facts.results(TH1_TH2_RATIO))
    since = facts.as_of - timedelta(days=THERAPY_EVIDENCE_DAYS) if facts.as_of is not None else None
    level_on_record = any(
        m.when is not None and (since is None or m.when.date() >= since) for m in facts.results(TACROLIMUS_LEVEL)
    )
    recently_ended = tuple(
        m
        for m in facts.ended_medications
        if m.has(TACROLIMUS)
        and m.systemic
        and (since is None or ((m.end or m.start) is not None and (m.end or m.start) >= since))  # type: ignore[operator]
    )
    return Focus(
        level_on_record=level_on_record,
        recently_ended=recently_ended,
        hook=facts.hook,
        drafts=drafts,
        active=active,
        candidate=candidate,
        pregnant=facts.pregnancy.pregnant is True,
        all_drafts=all_drafts,
    )


# --- describing orders ----------------------------------------------------------------------------


def order_state(med: MedicationFact) -> str:
    """ "new order" or the record's status ("active")."""
    if med.is_draft:
        return "new order"
    return med.status or "status unknown"


def recognition(med: MedicationFact) -> str:
    """A text-only match is stated, in bold; a coded match needs no words."""
    if med.recognised_by == "text":
        return (
            f'**recognised only by the name "{plain(med.matched or "?")}", not by a code: '
            "check that this is the drug meant**"
        )
    return ""


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill {placeholders} of knowledge-base text; an unknown one is left visible, never an error."""
    return string.Formatter().vformat(template, (), _KeepUnknown(values))


def span(values: Any, scale: float = 1.0) -> str:
    """[2, 3] → "2–3"; [0.5, 0.75] with scale 100 → "50–75"; 37 → "37"."""
    if isinstance(values, (list, tuple)):
        low, high = (fmt_number(v * scale) for v in values)
        return low if low == high else f"{low}–{high}"
    if isinstance(values, (int, float)):
        return fmt_number(values * scale)
    return str(values)

"""What the rules return: cards as plain data. ``service.hooks.render`` turns them into CDS Hooks JSON
and gives every card and suggestion its uuid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

Indicator = Literal["info", "warning", "critical"]
SEVERITY: Mapping[str, int] = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str


@dataclass(frozen=True)
class ServiceRequestProposal:
    """A draft ServiceRequest the card proposes: one lab test, or a diagnostic procedure (an ECG)."""

    patient_id: str
    system: str
    code: str
    display: str
    reason: str
    procedure: bool = False  # a diagnostic procedure; else a laboratory test
    priority: str | None = None  # "stat", "urgent"; None: routine
    repeat_count: int | None = None  # drawn this many times ...
    every_days: tuple[float, float] | None = None  # ... one draw every (min, max) days


@dataclass(frozen=True)
class MedicationProposal:
    """A draft MedicationRequest naming only the drug (RxNorm), for the prescriber to complete."""

    patient_id: str
    rxnorm: str
    display: str


@dataclass(frozen=True)
class OrderChange:
    """A change to one medication order of the call; the render step applies it to a copy of the order.

    Whatever the change, the order starts today or later (a ``boundsPeriod.start`` before ``today`` moves
    to ``today``). An order she takes is not updated but replaced by a fresh draft (``replaces``)."""

    order: str  # MedicationFact.key of the order changed
    today: date | None
    dose: int | float | None = None  # new doseQuantity value (mg, or capsules), an int when whole; None: unchanged
    sigs: tuple[str, ...] = ()  # with a new dose: the new sig text, one per dosage instruction
    product: Coding | None = None  # the product switched to (RxNorm), when the strength needed another
    start: date | None = None  # new boundsPeriod of every instruction (its boundsDuration dropped)
    end: date | None = None
    replaces: str | None = None  # priorPrescription of the new draft; None: a draft updated in place
    reference: str | None = None  # "MedicationRequest/<id>" of the order changed, when it has an id


# What a create or update action proposes; the render step (``service.hooks.orders``) writes the resource.
Proposal = ServiceRequestProposal | MedicationProposal | OrderChange


@dataclass(frozen=True)
class Action:
    type: Literal["create", "update", "delete"]
    description: str
    resource: Proposal | None = None  # create / update: what the resource is to be
    resource_id: str | None = None  # delete: "Type/id"


@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...]
    is_recommended: bool = False


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"
    app_context: str | None = None  # smart links only


@dataclass(frozen=True)
class Card:
    kind: str  # the concern, e.g. "eligibility", "dose", "interaction:fluconazole"; used by feedback
    summary: str
    indicator: Indicator
    detail: str
    source_label: str
    source_url: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: Literal["at-most-one", "any"] | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    # The rule's decision in a few machine-readable words ("above-maximum", "out-of-scope", ...):
    # what tests assert; never rendered.
    verdict: str = ""

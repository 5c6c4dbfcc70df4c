"""The state one extraction accumulates, shared by the readers of each resource family."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from cards.facts import BloodPressure, ConditionFact, Measurement, MedicationFact, TransferPlan, UnusableResource
from cards.vocab import ORDER_SIGN
from service.hooks.base import HookRequest
from service.hooks.extract.codes import CodeIndex
from service.hooks.extract.common import _describe, _ref_of


class _Reader:
    """What has been read so far; each resource family's reader adds to it."""

    def __init__(self, request: HookRequest, index: CodeIndex) -> None:
        self.request = request
        self.index = index
        self.labs: dict[str, list[Measurement]] = {}
        self.blood_pressure: list[BloodPressure] = []
        self.singles: list[Any] = []  # observations._Single, waiting to be paired
        self.conditions: list[ConditionFact] = []
        self.transfers: list[TransferPlan] = []
        # When each embryo transfer happened or is planned, completed ones included: a pregnancy test
        # from before the latest past transfer says nothing about the current cycle.
        self.transfer_times: list[datetime] = []
        self.medications: list[MedicationFact] = []
        self.ended_medications: list[MedicationFact] = []
        self.other_patient = 0  # resources whose subject is another patient: refused
        self.unusable: list[UnusableResource] = []
        self.specimen: dict[str, str] = {}
        # Every resource of the call, draft orders first (set by the extraction before reading any),
        # for ``medication_resources``.
        self.resources: tuple[list[Any], list[Any]] = ([], [])
        self._medication_resources: dict[str, dict[str, Any]] | None = None
        # Each medication fact's key -> the resource it was read from, for the render step to apply a
        # suggested change to (an order without an id has no reference of its own).
        self.orders: dict[str, Mapping[str, Any]] = {}
        self.selections = set(request.selections)
        self.sex: str | None = None
        self.birth_date: date | None = None

    @property
    def medication_resources(self) -> dict[str, dict[str, Any]]:
        """The call's Medications by reference ("Medication/<id>", the first of an id), for the orders
        that name their drug by ``medicationReference``: worked out at the first such order, as most
        calls have none."""
        if self._medication_resources is None:
            self._medication_resources = {}
            for part in self.resources:
                for resource in part:
                    if (
                        isinstance(resource, dict)
                        and resource.get("resourceType") == "Medication"
                        and isinstance(resource.get("id"), str)
                    ):
                        self._medication_resources.setdefault(f"Medication/{resource['id']}", resource)
        return self._medication_resources

    def _keep(self, resource: Mapping[str, Any], source: str) -> str:
        """A key for ``resource`` unique in this call (its reference, numbered when taken), kept in ``orders``."""
        key = source
        n = 1
        while key in self.orders:
            n += 1
            key = f"{source}#{n}"
        self.orders[key] = resource
        return key

    def _unusable(self, resource: Mapping[str, Any], draft: bool, reason: str) -> None:
        source = _ref_of(resource)
        in_focus = draft and (self.request.hook == ORDER_SIGN or source in self.selections)
        self.unusable.append(UnusableResource(source, reason, what=_describe(resource), order_in_focus=in_focus))

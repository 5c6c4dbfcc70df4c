"""The patient, her Conditions and her embryo transfers (ServiceRequest, Procedure, Appointment)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cards.facts import PREGNANCY, PREGNANCY_OUTCOME, ConditionFact, TransferPlan
from service.hooks.extract.common import (
    APPOINTMENT_EXCLUDED,
    COUNTED_CLINICAL,
    REJECTED_VERIFICATION,
    TRANSFER_PROCEDURE_STATUSES,
    TRANSFER_REQUEST_STATUSES,
    _codings,
    _obj,
    _parse_date,
    _ref_of,
    _status,
    _status_code,
    _Unusable,
    parse_fhir_datetime,
)
from service.hooks.extract.reader import _Reader


class RecordReader(_Reader):
    """Reads the Patient, Conditions and transfer plans."""

    def _patient(self, res: dict[str, Any], draft: bool) -> None:
        """Sex and birth date of the patient of the call (another Patient in the data is not hers)."""
        rid = res.get("id")
        if isinstance(rid, str) and rid and rid != self.request.patient_id:
            return
        gender = res.get("gender")
        if isinstance(gender, str) and gender in ("female", "male", "other", "unknown"):
            self.sex = gender
        try:
            self.birth_date = _parse_date(res.get("birthDate"))
        except ValueError as exc:
            raise _Unusable(f"birthDate: {exc}") from None

    # -- conditions --------------------------------------------------------------------------------

    def _condition(self, res: dict[str, Any], draft: bool) -> None:
        codings = _codings(res.get("code"))
        if not codings:
            raise _Unusable("Condition without a code")
        matched = self.index.condition_concepts(codings)
        if not matched:
            return
        verification = _status_code(res.get("verificationStatus"))
        if verification in REJECTED_VERIFICATION:
            return
        clinical = _status_code(res.get("clinicalStatus"))
        onset = self._lenient_time(res.get("onsetDateTime")) or self._lenient_time(
            _obj(res.get("onsetPeriod")).get("start")
        )
        recorded = self._lenient_time(res.get("recordedDate"))
        abated = self._lenient_time(res.get("abatementDateTime")) or self._lenient_time(
            _obj(res.get("abatementPeriod")).get("start")
        )
        for concept, coding in matched:
            if concept == PREGNANCY and (abated is not None or clinical in ("inactive", "resolved", "remission")):
                # A closed pregnancy is an outcome: it ends the pregnancy it records, it is no current one.
                if abated is None and onset is None and recorded is None:
                    continue  # closed, with no date to place it: says nothing about now
                concept = PREGNANCY_OUTCOME
            elif concept != PREGNANCY_OUTCOME:
                # An outcome (delivery, loss) is an event whatever its status; anything else must be current.
                if clinical is None:
                    raise _Unusable("Condition without clinicalStatus: cannot tell whether it is active")
                if clinical not in COUNTED_CLINICAL:
                    continue
            self.conditions.append(
                ConditionFact(
                    concept=concept,
                    source=_ref_of(res),
                    code=f"{coding.get('system')}|{coding['code']}",
                    display=str(coding.get("display") or (res.get("code") or {}).get("text") or coding["code"]),
                    recorded=recorded or onset,
                    onset=onset,
                    abated=abated,
                )
            )

    @staticmethod
    def _lenient_time(raw: Any) -> datetime | None:
        """A date shown or used to order events; a bad one is ignored rather than losing the resource."""
        try:
            return parse_fhir_datetime(raw)
        except ValueError:
            return None

    # -- embryo transfer ---------------------------------------------------------------------------

    def _transfer(
        self, res: Mapping[str, Any], concepts: Any, status: str, raw_when: Any, label: str, draft: bool
    ) -> None:
        kind = self.index.transfer_kind(concepts)
        if kind is None:
            return
        try:
            when = parse_fhir_datetime(raw_when)
        except ValueError as exc:
            raise _Unusable(f"{label}: {exc}") from None
        if when is not None:
            self.transfer_times.append(when)
        if status == "completed":
            return  # done: it dates the cycle (pregnancy tests) but is no plan for the rules
        self.transfers.append(
            TransferPlan(source=_ref_of(res), status=status, when=when, euploid=kind[0], from_draft_orders=draft)
        )

    def _service_request(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "draft" if draft else "unknown")
        if status not in TRANSFER_REQUEST_STATUSES and status != "completed":
            return
        raw, label = _date_time_or_period_start(res, "occurrence")
        self._transfer(res, res.get("code"), status, raw, label, draft)

    def _procedure(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "preparation" if draft else "unknown")
        if status not in TRANSFER_PROCEDURE_STATUSES and status != "completed":
            return
        raw, label = _date_time_or_period_start(res, "performed")
        self._transfer(res, res.get("code"), status, raw, label, draft)

    def _appointment(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "unknown")
        if status in APPOINTMENT_EXCLUDED:
            return
        self._transfer(res, res.get("serviceType"), status, res.get("start"), "start", draft)


def _date_time_or_period_start(res: dict[str, Any], element: str) -> tuple[Any, str]:
    """A FHIR ``<element>[x]`` that is a dateTime or a Period: the dateTime when the resource has
    one, else the period's start; with the path read, for a message naming it."""
    if f"{element}DateTime" in res:
        return res[f"{element}DateTime"], f"{element}DateTime"
    return _obj(res.get(f"{element}Period")).get("start"), f"{element}Period.start"

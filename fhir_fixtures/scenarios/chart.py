"""The chart builder: a ``Scenario`` is one synthetic patient whose record a recipe writes
(observations, conditions, the transfer plan, medications, draft orders), and which turns itself
into ``patient.json`` and ``scenario.json``. ``Dose`` is one dosage instruction.

Resource ids are ``<scenario>-<kind><n>``, unique across scenarios, so loading every scenario into
one FHIR server is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .codes import (
    AS_OF,
    CLINICAL,
    CONDITION_CATEGORY,
    DRUGS,
    LOCAL,
    OBS,
    OBS_CATEGORY,
    PRACTITIONER,
    SCT,
    UCUM,
    VERIFICATION,
    at,
    concept,
    on,
    quantity,
)


@dataclass
class Dose:
    """One dosage instruction: ``amount`` ``unit`` ``per_day`` times a day from ``start`` (days
    relative to AS_OF) for ``days`` days (open-ended when None)."""

    amount: float
    unit: str = "mg"
    per_day: int = 1
    start: int | None = None
    days: int | None = None
    text: str | None = None
    as_object: bool = False  # doseAndRate as an object, as some EHRs send it (not valid FHIR)

    def fhir(self) -> dict[str, Any]:
        repeat: dict[str, Any] = {"frequency": self.per_day, "period": 1, "periodUnit": "d"}
        if self.start is not None:
            bounds = {"start": on(self.start)}
            if self.days is not None:
                bounds["end"] = on(self.start + self.days - 1)
            repeat["boundsPeriod"] = bounds
        dose_q = {"value": self.amount, "unit": self.unit.strip("{}"), "system": UCUM, "code": self.unit}
        dose_and_rate: Any = {"doseQuantity": dose_q}
        instruction: dict[str, Any] = {
            "sequence": 1,
            "text": self.text or f"{self.amount:g} {self.unit.strip('{}')} by mouth {self.per_day} time(s) a day",
            "timing": {"repeat": repeat},
            "route": concept(SCT, "26643006", "Oral route"),
            "doseAndRate": dose_and_rate if self.as_object else [dose_and_rate],
        }
        return instruction


@dataclass
class Scenario:
    """One synthetic patient and the hook requests around her."""

    name: str
    description: str
    given: str
    family: str
    birth_date: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    drafts: list[dict[str, Any]] = field(default_factory=list)
    selections: list[str] = field(default_factory=list)
    encounter: bool = True
    draft_bundle_type: str | None = "collection"
    gender: str = "female"
    _n: int = 0

    # ---- helpers ---------------------------------------------------------------------------

    @property
    def patient_ref(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.name}"}

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{self.name}-{kind}{self._n}"

    def _add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.resources.append(resource)
        return resource

    def resource(self, rid: str) -> dict[str, Any]:
        """The recorded resource ``rid``, for a recipe to reshape it as a real EHR sends it."""
        return next(r for r in self.resources if r.get("id") == rid)

    # ---- record ------------------------------------------------------------------------------

    def obs(
        self,
        key: str,
        value: float | None,
        unit: str | None = None,
        *,
        days: int,
        status: str = "final",
        high: float | None = None,
        components: list[tuple[str, float, str]] | None = None,
        coded: tuple[str, str, str] | None = None,
        hour: int = 8,
    ) -> str:
        """An Observation of ``OBS[key]``; returns its id."""
        system, code, display, category = OBS[key]
        rid = self._id("obs")
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": status,
            "category": [concept(OBS_CATEGORY, category, "Laboratory" if category == "laboratory" else "Vital Signs")],
            "code": concept(system, code, display),
            "subject": self.patient_ref,
            "effectiveDateTime": at(days, hour),
            "issued": at(days, min(hour + 4, 23)),
        }
        if value is not None and unit is not None:
            res["valueQuantity"] = quantity(value, unit)
        if coded is not None:
            res["valueCodeableConcept"] = concept(*coded)
        if high is not None and unit is not None:
            res["referenceRange"] = [{"high": quantity(high, unit)}]
        if components:
            res["component"] = [
                {"code": concept(*OBS[k][:3]), "valueQuantity": quantity(v, u)} for k, v, u in components
            ]
        self._add(res)
        return rid

    def ratio(self, ratio: float | None, th1: float, th2: float, *, days: int, status: str = "final") -> str:
        """Th1/Th2 panel: the ratio with Th1 % and Th2 % as components."""
        return self.obs(
            "ratio", ratio, "{ratio}", days=days, status=status, components=[("th1", th1, "%"), ("th2", th2, "%")]
        )

    def bp(self, systolic: float, diastolic: float, *, days: int, hour: int = 8) -> str:
        return self.obs(
            "bp",
            None,
            None,
            days=days,
            hour=hour,
            components=[("systolic", systolic, "mm[Hg]"), ("diastolic", diastolic, "mm[Hg]")],
        )

    def baseline(
        self, *, days: int = -14, creatinine: float = 0.68, potassium: float = 4.1, glucose: float = 88
    ) -> None:
        """A complete, normal baseline work-up (CBC, liver, kidney, glucose, potassium)."""
        self.obs("hemoglobin", 12.9, "g/dL", days=days)
        self.obs("wbc", 6.2, "10*3/uL", days=days)
        self.obs("platelets", 245, "10*3/uL", days=days)
        self.obs("alt", 18, "U/L", days=days, high=35)
        self.obs("ast", 21, "U/L", days=days, high=35)
        self.obs("bilirubin", 0.6, "mg/dL", days=days, high=1.2)
        self.obs("creatinine", creatinine, "mg/dL", days=days, high=1.1)
        self.obs("glucose", glucose, "mg/dL", days=days)
        self.obs("potassium", potassium, "mmol/L", days=days, high=5.0)

    def condition(
        self,
        system: str,
        code: str,
        display: str,
        *,
        days: int = -200,
        clinical: str = "active",
        verification: str = "confirmed",
    ) -> str:
        rid = self._id("cond")
        self._add(
            {
                "resourceType": "Condition",
                "id": rid,
                "clinicalStatus": concept(CLINICAL, clinical, clinical.capitalize()),
                "verificationStatus": concept(VERIFICATION, verification, verification.capitalize()),
                "category": [concept(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
                "code": concept(system, code, display),
                "subject": self.patient_ref,
                "onsetDateTime": at(days),
                "recordedDate": at(days),
            }
        )
        return rid

    def rif(self) -> str:
        return self.condition(LOCAL, "recurrent-implantation-failure", "Recurrent implantation failure")

    def pregnant(self, days: int = -20) -> str:
        return self.condition(SCT, "77386006", "Pregnancy", days=days)

    def transfer(self, days: int, *, euploid: bool = False, kind: str = "ServiceRequest") -> str:
        """The planned embryo transfer, as a ServiceRequest, Procedure or Appointment."""
        code = (
            ("euploid-blastocyst-transfer", "Euploid blastocyst transfer (PGT-A tested)")
            if euploid
            else ("embryo-transfer", "Embryo transfer")
        )
        cc = concept(LOCAL, *code)
        rid = self._id(kind[:4].lower())
        res: dict[str, Any]
        if kind == "ServiceRequest":
            res = {
                "resourceType": "ServiceRequest",
                "id": rid,
                "status": "active",
                "intent": "order",
                "code": cc,
                "subject": self.patient_ref,
                "occurrenceDateTime": at(days, 10),
                "authoredOn": at(-30),
                "requester": {"reference": PRACTITIONER},
            }
        elif kind == "Procedure":
            res = {
                "resourceType": "Procedure",
                "id": rid,
                "status": "preparation",
                "code": cc,
                "subject": self.patient_ref,
                "performedDateTime": at(days, 10),
            }
        else:
            res = {
                "resourceType": "Appointment",
                "id": rid,
                "status": "booked",
                "serviceType": [cc],
                "description": code[1],
                "start": at(days, 10),
                "end": at(days, 10, 30),
                "participant": [{"actor": self.patient_ref, "status": "accepted"}],
            }
        self._add(res)
        return rid

    def medication(
        self,
        drug: str | None,
        dose: Dose | None,
        *,
        status: str = "active",
        authored: int = -30,
        text: str | None = None,
        contained: bool = False,
        draft: bool = False,
        select: bool = False,
        resource_type: str = "MedicationRequest",
    ) -> str:
        """A MedicationRequest (or MedicationStatement) on the record, or a draft order."""
        rid = self._id("draft" if draft else "med")
        res: dict[str, Any] = {"resourceType": resource_type, "id": rid, "status": status}
        if resource_type == "MedicationRequest":
            res["intent"] = "order"
        if drug is not None or text is not None:
            if drug is None:
                cc: dict[str, Any] = {"text": text}
            else:
                cc = concept(*DRUGS[drug], text=text)
            if contained:
                res["contained"] = [{"resourceType": "Medication", "id": "med", "code": cc}]
                res["medicationReference"] = {"reference": "#med", "display": text or DRUGS[drug or ""][2]}
            else:
                res["medicationCodeableConcept"] = cc
        res["subject"] = self.patient_ref
        if resource_type == "MedicationRequest":
            res["authoredOn"] = at(authored, 9)
            res["requester"] = {"reference": PRACTITIONER}
            if dose is not None:
                res["dosageInstruction"] = [dose.fhir()]
        else:
            res["effectivePeriod"] = {"start": at(authored, 9)}
            if dose is not None:
                res["dosage"] = [dose.fhir()]
        if draft:
            res["status"] = "draft"
            res["authoredOn"] = at(0, 9)
            self.drafts.append(res)
            if select:
                self.selections.append(f"{resource_type}/{rid}")
        else:
            self._add(res)
        return rid

    def draft_service(self, code: tuple[str, str, str], *, select: bool = False) -> str:
        """A draft ServiceRequest (a lab order) in the ordering session."""
        rid = self._id("draft")
        self.drafts.append(
            {
                "resourceType": "ServiceRequest",
                "id": rid,
                "status": "draft",
                "intent": "order",
                "code": concept(*code),
                "subject": self.patient_ref,
                "authoredOn": at(0, 9),
            }
        )
        if select:
            self.selections.append(f"ServiceRequest/{rid}")
        return rid

    # ---- output ------------------------------------------------------------------------------

    def patient_resource(self) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": self.name,
            "active": True,
            "identifier": [{"system": "http://example.org/fhir/sid/fixtures-mrn", "value": self.name}],
            "name": [{"use": "official", "family": self.family, "given": [self.given]}],
            "gender": self.gender,
            "birthDate": self.birth_date,
        }

    def patient_bundle(self) -> dict[str, Any]:
        entries = [self.patient_resource(), *self.resources]
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in entries
            ],
        }

    def scenario_file(self) -> dict[str, Any]:
        drafts: dict[str, Any] = {"resourceType": "Bundle"}
        if self.draft_bundle_type:
            drafts["type"] = self.draft_bundle_type
        drafts["entry"] = [{"resource": d} for d in self.drafts]
        base: dict[str, Any] = {"userId": PRACTITIONER, "patientId": self.name}
        if self.encounter:
            base["encounterId"] = f"{self.name}-enc"
        hooks: dict[str, Any] = {"patient-view": {"context": dict(base)}}
        if self.drafts:
            hooks["order-select"] = {
                "context": {
                    **base,
                    "selections": self.selections or [f"{self.drafts[0]['resourceType']}/{self.drafts[0]['id']}"],
                    "draftOrders": drafts,
                }
            }
            hooks["order-sign"] = {"context": {**base, "draftOrders": drafts}}
        return {
            "asOf": AS_OF.isoformat(),
            "description": self.description,
            "hooks": {h: hooks[h] for h in ("order-select", "order-sign", "patient-view") if h in hooks},
        }

"""The clinical scenarios, written once as small Python recipes and turned into ``patient.json`` /
``scenario.json`` by ``python -m fhir_fixtures.build``.

Every date is relative to ``AS_OF`` (2026-11-25), so a recipe reads like a chart: "creatinine
0.70 mg/dL 30 days ago, 0.95 mg/dL 2 days ago". Resource ids are ``<scenario>-<kind><n>``, unique
across scenarios, so loading every scenario into one FHIR server is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

AS_OF = date(2026, 11, 25)

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
PRACTITIONER = "Practitioner/fixtures-dr-ito"

# key -> (system, code, display, category)
OBS: dict[str, tuple[str, str, str, str]] = {
    "ratio": (LOCAL, "th1-th2-ratio", "Th1/Th2 ratio (CD4+IFN-gamma+ / CD4+IL-4+)", "laboratory"),
    "th1": (LOCAL, "th1-cd4-ifng-pct", "Th1 cells (CD4+IFN-gamma+) %", "laboratory"),
    "th2": (LOCAL, "th2-cd4-il4-pct", "Th2 cells (CD4+IL-4+) %", "laboratory"),
    "nk": (LOINC, "9728-7", "Natural killer cells [#/volume] in Blood", "laboratory"),
    "trough": (LOINC, "77348-1", "Tacrolimus [Mass/volume] in Blood --trough", "laboratory"),
    "tacro_level": (LOINC, "11253-2", "Tacrolimus [Mass/volume] in Blood", "laboratory"),
    "creatinine": (LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "laboratory"),
    "creatinine_si": (LOINC, "14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "laboratory"),
    "glucose": (LOINC, "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "laboratory"),
    "glucose_si": (LOINC, "14749-6", "Glucose [Moles/volume] in Serum or Plasma", "laboratory"),
    "glucose_fasting": (LOINC, "1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma", "laboratory"),
    "hba1c": (LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory"),
    "potassium": (LOINC, "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "laboratory"),
    "hemoglobin": (LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood", "laboratory"),
    "wbc": (LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "laboratory"),
    "platelets": (LOINC, "777-3", "Platelets [#/volume] in Blood by Automated count", "laboratory"),
    "alt": (LOINC, "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "laboratory"),
    "ast": (LOINC, "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "laboratory"),
    "bilirubin": (LOINC, "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "laboratory"),
    "bp": (LOINC, "85354-9", "Blood pressure panel with all children optional", "vital-signs"),
    "systolic": (LOINC, "8480-6", "Systolic blood pressure", "vital-signs"),
    "diastolic": (LOINC, "8462-4", "Diastolic blood pressure", "vital-signs"),
    "urine_hcg": (LOINC, "2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine", "laboratory"),
    "serum_hcg": (LOINC, "21198-7", "Choriogonadotropin.beta subunit [Units/volume] in Serum or Plasma", "laboratory"),
}

# UCUM code -> human spelling
UNITS = {
    "{ratio}": "{ratio}",
    "%": "%",
    "/uL": "/µL",
    "ng/mL": "ng/mL",
    "ug/L": "µg/L",
    "mg/dL": "mg/dL",
    "umol/L": "µmol/L",
    "mmol/L": "mmol/L",
    "10*3/uL": "10*3/µL",
    "g/dL": "g/dL",
    "U/L": "U/L",
    "mm[Hg]": "mmHg",
    "[IU]/L": "IU/L",
}

# Drug key -> (system, code, display). Ingredient codes from docs/clinical-basis.md;
# product codes from docs/data-profile.md.
DRUGS: dict[str, tuple[str, str, str]] = {
    "tacrolimus": (RXNORM, "42316", "tacrolimus"),
    "tacrolimus_1mg": (RXNORM, "198377", "tacrolimus 1 MG Oral Capsule"),
    "tacrolimus_er": (RXNORM, "1431971", "tacrolimus extended release oral capsule"),
    "fluconazole": (RXNORM, "4450", "fluconazole"),
    "clarithromycin": (RXNORM, "21212", "clarithromycin"),
    "mycophenolate_mofetil": (RXNORM, "68149", "mycophenolate mofetil"),
    "spironolactone": (RXNORM, "9997", "spironolactone"),
    "rifampin": (RXNORM, "9384", "rifampin"),
    "tacrolimus_0_5mg": (RXNORM, "313190", "tacrolimus 0.5 MG Oral Capsule"),
    "mmr_vaccine": ("http://hl7.org/fhir/sid/cvx", "03", "measles, mumps and rubella virus vaccine"),
}


def at(days: int, hour: int = 8, minute: int = 0) -> str:
    """A FHIR dateTime ``days`` after AS_OF (negative: before), in UTC."""
    moment = datetime.combine(AS_OF + timedelta(days=days), time(hour, minute), tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def on(days: int) -> str:
    """A FHIR date ``days`` after AS_OF."""
    return (AS_OF + timedelta(days=days)).isoformat()


def quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": UNITS.get(ucum, ucum), "system": UCUM, "code": ucum}


def concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


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


# ---------------------------------------------------------------------------------------------
# The scenarios. Standard candidate timeline: transfer 9 days ahead, tacrolimus drafted to start
# 2 days before it and run 16 days.
# ---------------------------------------------------------------------------------------------

RECIPES: list[Callable[[], Scenario]] = []


def recipe(fn: Callable[[], Scenario]) -> Callable[[], Scenario]:
    RECIPES.append(fn)
    return fn


def _candidate(
    s: Scenario,
    *,
    ratio: float | None,
    th1: float = 24.0,
    transfer_in: int | None = 9,
    euploid: bool = False,
    transfer_kind: str = "ServiceRequest",
    baseline: bool = True,
) -> None:
    s.rif()
    if ratio is not None:
        s.ratio(ratio, th1, round(th1 / ratio, 2), days=-21)
    if transfer_in is not None:
        s.transfer(transfer_in, euploid=euploid, kind=transfer_kind)
    if baseline:
        s.baseline()


def _tacro_draft(s: Scenario, *, mg: float = 2, transfer_in: int = 9, drug: str = "tacrolimus", **kw: Any) -> str:
    dose = kw.pop("dose", None) or Dose(mg, start=transfer_in - 2, days=16)
    return s.medication(drug, dose, draft=True, select=True, **kw)


def _on_tacrolimus(
    s: Scenario,
    *,
    mg: float = 2,
    started: int = -10,
    trough: float | None = 6.1,
    trough_days: int = -3,
    creatinine: float = 0.68,
) -> str:
    """RIF, eligible ratio, a transfer 2 days after the start, tacrolimus active since ``started``
    (within the 16-day course unless she is pregnant)."""
    s.rif()
    s.ratio(12.6, 25.2, 2.0, days=started - 25)
    s.transfer(started + 2)
    s.baseline(days=started - 10, creatinine=creatinine)
    rid = s.medication(
        "tacrolimus_1mg",
        Dose(mg, "{capsule}" if mg == int(mg) else "mg", start=started, text=f"{mg:g} mg once daily after dinner"),
        authored=started - 1,
        text="tacrolimus 1 mg capsule",
    )
    if trough is not None:
        # Drawn just before the evening dose: a true trough of once-daily dosing after dinner.
        s.obs("trough", trough, "ng/mL", days=trough_days, hour=19)
    return rid


@recipe
def rif_eligible() -> Scenario:
    s = Scenario(
        "rif-eligible",
        "Eligible RIF candidate: Th1/Th2 12.4 (cut-off 10.3), transfer in 9 days, "
        "tacrolimus 2 mg/day drafted to start 2 days before it for 16 days",
        "Aiko",
        "Fixture-Tanaka",
        "1988-04-12",
    )
    _candidate(s, ratio=12.4)
    _tacro_draft(s, text="tacrolimus 1 mg capsule")
    return s


@recipe
def below_cutoff() -> Scenario:
    s = Scenario(
        "below-cutoff",
        "Th1/Th2 ratio 8.6, below the 10.3 cut-off; tacrolimus drafted anyway "
        "(transfer planned as a Procedure in preparation)",
        "Beatriz",
        "Fixture-Silva",
        "1986-09-03",
    )
    _candidate(s, ratio=8.6, transfer_kind="Procedure")
    _tacro_draft(s)
    return s


@recipe
def euploid_transfer() -> Scenario:
    s = Scenario(
        "euploid-transfer",
        "Th1/Th2 11.2: above 10.3 but below the 11.8 cut-off for a booked euploid blastocyst transfer (Appointment)",
        "Chloe",
        "Fixture-Martin",
        "1985-01-27",
    )
    _candidate(s, ratio=11.2, euploid=True, transfer_kind="Appointment")
    _tacro_draft(s)
    return s


@recipe
def derived_ratio_th1_high() -> Scenario:
    s = Scenario(
        "derived-ratio-th1-high",
        "No ratio result, only Th1 % 30.2 and Th2 % 2.4 on the same day "
        "(derived ratio 12.6, Th1 % high); no transfer plan on record",
        "Dana",
        "Fixture-Cohen",
        "1987-06-18",
    )
    s.rif()
    s.obs("th1", 30.2, "%", days=-18)
    s.obs("th2", 2.4, "%", days=-18, hour=9)
    s.baseline()
    s.medication("tacrolimus", Dose(3), draft=True, select=True)
    return s


@recipe
def ratio_stale() -> Scenario:
    s = Scenario(
        "ratio-stale",
        "Th1/Th2 ratio 12.0 measured 420 days ago (older than the look-back window)",
        "Elif",
        "Fixture-Yilmaz",
        "1984-11-30",
    )
    s.rif()
    s.ratio(12.0, 24.0, 2.0, days=-420)
    s.transfer(9)
    s.baseline()
    _tacro_draft(s)
    return s


@recipe
def ratio_preliminary() -> Scenario:
    s = Scenario(
        "ratio-preliminary",
        "Only a preliminary Th1/Th2 ratio (13.1): shown, not acted on",
        "Farah",
        "Fixture-Haddad",
        "1989-02-14",
    )
    s.rif()
    s.ratio(13.1, 26.2, 2.0, days=-2, status="preliminary")
    s.transfer(9)
    s.baseline()
    _tacro_draft(s)
    return s


@recipe
def autoimmune_raised_nk() -> Scenario:
    s = Scenario(
        "autoimmune-raised-nk",
        "Eligible candidate (ratio 11.9) with autoimmune disease on the problem list and raised NK cells (720/µL)",
        "Greta",
        "Fixture-Lindqvist",
        "1983-08-08",
    )
    _candidate(s, ratio=11.9)
    s.condition(SCT, "85828009", "Autoimmune disease", days=-900)
    s.obs("nk", 720, "/uL", days=-21, high=490)
    _tacro_draft(s)
    return s


@recipe
def trough_high() -> Scenario:
    s = Scenario(
        "trough-high",
        "On tacrolimus 3 mg/day for 12 days; trough 16.2 ng/mL 2 days ago (7.1 on day 6)",
        "Hana",
        "Fixture-Novak",
        "1987-03-21",
    )
    _on_tacrolimus(s, mg=3, started=-12, trough=7.1, trough_days=-6)
    s.obs("trough", 16.2, "ng/mL", days=-2, hour=19)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def trough_critical() -> Scenario:
    s = Scenario(
        "trough-critical",
        "On tacrolimus 4 mg/day; trough 21.5 ng/mL yesterday (critical tier)",
        "Ines",
        "Fixture-Costa",
        "1986-12-01",
    )
    _on_tacrolimus(s, mg=4, trough=21.5, trough_days=-1)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def trough_low() -> Scenario:
    s = Scenario(
        "trough-low",
        "On tacrolimus 1 mg/day for 11 days; trough 2.8 ng/mL 3 days ago",
        "Jana",
        "Fixture-Dvorak",
        "1990-07-09",
    )
    _on_tacrolimus(s, mg=1, started=-11, trough=2.8)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def trough_in_range() -> Scenario:
    s = Scenario(
        "trough-in-range",
        "On tacrolimus 2 mg/day for 10 days; trough 6.0 ng/mL 3 days ago; next trough drafted",
        "Kira",
        "Fixture-Petrova",
        "1988-10-15",
    )
    _on_tacrolimus(s, mg=2, started=-10, trough=6.0)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def trough_pre_steady_state() -> Scenario:
    s = Scenario(
        "trough-pre-steady-state",
        "Tacrolimus started 3 days ago; trough 9.5 ng/mL drawn on day 2 (before steady state)",
        "Lena",
        "Fixture-Keller",
        "1985-05-05",
    )
    _on_tacrolimus(s, mg=2, started=-3, trough=9.5, trough_days=-1)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def level_timing_unknown() -> Scenario:
    s = Scenario(
        "level-timing-unknown",
        "On tacrolimus; only a level of unknown timing (LOINC 11253-2, 10.4 ng/mL), no trough",
        "Mira",
        "Fixture-Horvat",
        "1986-02-19",
    )
    _on_tacrolimus(s, mg=2, started=-9, trough=None)
    s.obs("tacro_level", 10.4, "ng/mL", days=-2, hour=15)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def creatinine_rising() -> Scenario:
    s = Scenario(
        "creatinine-rising",
        "On tacrolimus; creatinine 0.70 → 0.95 mg/dL (+36 % from baseline)",
        "Nora",
        "Fixture-Berg",
        "1987-09-27",
    )
    _on_tacrolimus(s, mg=3, started=-12, creatinine=0.70)
    s.obs("creatinine", 0.95, "mg/dL", days=-2, high=1.1)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


@recipe
def creatinine_aki() -> Scenario:
    s = Scenario(
        "creatinine-aki",
        "On tacrolimus; creatinine 0.70 → 1.10 mg/dL in 2 days (KDIGO AKI)",
        "Olga",
        "Fixture-Ivanova",
        "1984-04-04",
    )
    _on_tacrolimus(s, mg=3, started=-12, creatinine=0.70)
    s.obs("creatinine", 0.70, "mg/dL", days=-3, high=1.1)
    s.obs("creatinine", 1.10, "mg/dL", days=-1, high=1.1)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


@recipe
def hyperkalaemia() -> Scenario:
    s = Scenario(
        "hyperkalaemia",
        "On tacrolimus, potassium 5.8 mmol/L; spironolactone drafted",
        "Paula",
        "Fixture-Rossi",
        "1986-06-06",
    )
    _on_tacrolimus(s, mg=2, started=-11)
    s.obs("potassium", 5.8, "mmol/L", days=-1, high=5.0)
    s.medication("spironolactone", Dose(25), draft=True, select=True)
    return s


@recipe
def hypertension() -> Scenario:
    s = Scenario(
        "hypertension",
        "On tacrolimus; blood pressure 152/96 today (138/88 a week ago)",
        "Rosa",
        "Fixture-Garcia",
        "1985-03-13",
    )
    _on_tacrolimus(s, mg=2, started=-12)
    s.bp(138, 88, days=-7)
    s.bp(152, 96, days=0, hour=7)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


@recipe
def liver_enzymes() -> Scenario:
    s = Scenario(
        "liver-enzymes",
        "On tacrolimus; ALT 96 U/L and AST 74 U/L (upper limit 35)",
        "Sara",
        "Fixture-Nilsen",
        "1988-01-22",
    )
    _on_tacrolimus(s, mg=2, started=-12)
    s.obs("alt", 96, "U/L", days=-2, high=35)
    s.obs("ast", 74, "U/L", days=-2, high=35)
    s.draft_service(OBS["alt"][:3], select=True)
    return s


@recipe
def gestational_glucose() -> Scenario:
    s = Scenario(
        "gestational-glucose",
        "Pregnant (serum beta-hCG 1450 IU/L) on tacrolimus; fasting glucose 97 mg/dL (GDM criterion 92), HbA1c 5.6 %",
        "Tara",
        "Fixture-Murphy",
        "1986-10-10",
    )
    _on_tacrolimus(s, mg=2, started=-40)
    s.pregnant(days=-25)
    s.obs("serum_hcg", 1450, "[IU]/L", days=-26)
    s.obs("glucose_fasting", 97, "mg/dL", days=-1, hour=7)
    s.obs("hba1c", 5.6, "%", days=-1, hour=7)
    s.draft_service(OBS["glucose_fasting"][:3], select=True)
    return s


@recipe
def rif_rpl_pregnant() -> Scenario:
    s = Scenario(
        "rif-rpl-pregnant",
        "RIF and recurrent pregnancy loss (ICD-10-CM N96), pregnant by urine "
        "hCG; on tacrolimus 2 mg/day, trough 5.5 ng/mL; renewal drafted",
        "Uma",
        "Fixture-Sato",
        "1984-12-24",
    )
    _on_tacrolimus(s, mg=2, started=-40, trough=5.5, trough_days=-4)
    s.condition(ICD10, "N96", "Recurrent pregnancy loss", days=-700)
    s.obs("urine_hcg", None, days=-24, coded=(SCT, "10828004", "Positive"))
    s.pregnant(days=-24)
    s.medication(
        "tacrolimus_1mg",
        Dose(2, "{capsule}", start=1, days=60),
        draft=True,
        select=True,
        text="tacrolimus 1 mg capsule",
    )
    return s


@recipe
def azole_fluconazole() -> Scenario:
    s = Scenario(
        "azole-fluconazole",
        "On tacrolimus 3 mg/day; fluconazole 150 mg drafted for candidiasis",
        "Vera",
        "Fixture-Kowalska",
        "1987-08-16",
    )
    _on_tacrolimus(s, mg=3, started=-9)
    s.medication("fluconazole", Dose(150, start=0, days=1), draft=True, select=True)
    return s


@recipe
def azole_course_on_active_order() -> Scenario:
    s = Scenario(
        "azole-course-on-active-order",
        "On tacrolimus 1 mg capsules, 2 mg once daily after dinner (an active order with a business "
        "identifier); fluconazole 200 mg daily for 7 days drafted: the cut needs a fresh draft and the "
        "0.5 mg capsule",
        "Wilma",
        "Fixture-Nakamura",
        "1986-02-14",
    )
    rid = _on_tacrolimus(s, mg=2, started=-9)
    for res in s.resources:
        if res.get("id") == rid:
            res["identifier"] = [{"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": "RX-448812"}]
    s.medication(
        "fluconazole", Dose(200, start=0, days=7, text="200 mg by mouth daily x 1 week"), draft=True, select=True
    )
    return s


@recipe
def macrolide_clarithromycin() -> Scenario:
    s = Scenario(
        "macrolide-clarithromycin",
        "On tacrolimus 2 mg/day; clarithromycin 500 mg twice daily drafted",
        "Wen",
        "Fixture-Li",
        "1985-11-11",
    )
    _on_tacrolimus(s, mg=2, started=-9)
    s.medication("clarithromycin", Dose(500, per_day=2, start=0, days=7), draft=True, select=True)
    return s


@recipe
def inducer_rifampin() -> Scenario:
    s = Scenario(
        "inducer-rifampin",
        "On tacrolimus 2 mg/day; rifampin 600 mg daily drafted (inducer)",
        "Xena",
        "Fixture-Papadopoulou",
        "1986-04-30",
    )
    _on_tacrolimus(s, mg=2, started=-9)
    s.medication("rifampin", Dose(600, start=0), draft=True, select=True)
    return s


@recipe
def mycophenolate() -> Scenario:
    s = Scenario(
        "mycophenolate",
        "On tacrolimus, transfer 8 days ago (pregnancy test pending); mycophenolate mofetil 500 mg twice daily drafted",
        "Yara",
        "Fixture-Almeida",
        "1988-05-25",
    )
    _on_tacrolimus(s, mg=2, started=-10)
    s.medication("mycophenolate_mofetil", Dose(500, per_day=2, start=0), draft=True, select=True)
    return s


@recipe
def missing_baseline_labs() -> Scenario:
    s = Scenario(
        "missing-baseline-labs",
        "Eligible candidate (ratio 13.0), transfer in 9 days, no baseline labs at all (a creatinine from 400 days ago)",
        "Zoe",
        "Fixture-Dubois",
        "1989-09-09",
    )
    _candidate(s, ratio=13.0, baseline=False)
    s.obs("creatinine", 0.7, "mg/dL", days=-400, high=1.1)
    _tacro_draft(s)
    return s


@recipe
def units_si() -> Scenario:
    s = Scenario(
        "units-si",
        "On tacrolimus, labs in SI units: creatinine 62 → 80 µmol/L, glucose 5.4 mmol/L, "
        "potassium 4.6 mmol/L, trough 6.5 µg/L, blood pressure as separate readings",
        "Anna",
        "Fixture-Schmidt",
        "1985-07-07",
    )
    s.rif()
    s.ratio(12.2, 24.4, 2.0, days=-40)
    s.transfer(-8)
    s.obs("hemoglobin", 12.7, "g/dL", days=-30)
    s.obs("wbc", 5.9, "10*3/uL", days=-30)
    s.obs("platelets", 230, "10*3/uL", days=-30)
    s.obs("alt", 20, "U/L", days=-30, high=35)
    s.obs("ast", 22, "U/L", days=-30, high=35)
    s.obs("creatinine_si", 62, "umol/L", days=-30, high=97)
    s.obs("glucose_si", 5.4, "mmol/L", days=-2)
    s.obs("potassium", 4.6, "mmol/L", days=-2, high=5.0)
    s.obs("creatinine_si", 80, "umol/L", days=-2, high=97)
    s.obs("trough", 6.5, "ug/L", days=-2, hour=7)
    s.obs("systolic", 124, "mm[Hg]", days=-2)
    s.obs("diastolic", 78, "mm[Hg]", days=-2)
    s.medication("tacrolimus", Dose(2, start=-10), authored=-11)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


@recipe
def product_code_only() -> Scenario:
    s = Scenario(
        "product-code-only",
        "Eligible candidate; tacrolimus drafted by RxNorm product code 198377 only, "
        "dose 2 {pill} once daily, doseAndRate as an object (as some EHRs send it)",
        "Bella",
        "Fixture-Moreau",
        "1987-12-12",
    )
    _candidate(s, ratio=12.9)
    _tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(2, "{pill}", start=7, days=16, as_object=True))
    return s


@recipe
def text_only() -> Scenario:
    s = Scenario(
        "text-only",
        "Eligible candidate; tacrolimus drafted as free text only ('Tacrolimus 0.5 mg capsules'), 1 mg twice daily",
        "Clara",
        "Fixture-Weber",
        "1986-03-03",
    )
    _candidate(s, ratio=12.1)
    s.medication(None, Dose(1, per_day=2, start=7, days=16), text="Tacrolimus 0.5 mg capsules", draft=True, select=True)
    return s


@recipe
def medication_reference() -> Scenario:
    s = Scenario(
        "medication-reference",
        "Eligible candidate already on fluconazole; tacrolimus drafted via "
        "medicationReference to a contained Medication (RxNorm 198377)",
        "Delia",
        "Fixture-Popescu",
        "1988-08-28",
    )
    _candidate(s, ratio=12.3)
    s.medication("fluconazole", Dose(50, start=-5), authored=-6)
    _tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(2, "{capsule}", start=7, days=16), contained=True)
    return s


@recipe
def release_switch() -> Scenario:
    s = Scenario(
        "release-switch",
        "Pregnant, on immediate-release tacrolimus 2 mg/day; extended-release capsule (RxNorm 1431971) drafted",
        "Eva",
        "Fixture-Hoffmann",
        "1985-10-20",
    )
    _on_tacrolimus(s, mg=2, started=-40)
    s.pregnant(days=-25)
    s.medication("tacrolimus_er", Dose(2, start=1, days=30), draft=True, select=True)
    return s


@recipe
def sandbox_incomplete_draft() -> Scenario:
    s = Scenario(
        "sandbox-incomplete-draft",
        "The public sandbox's first call: a draft MedicationRequest with no "
        "medication, intent or dosage, draftOrders without type, no encounterId",
        "Fiona",
        "Fixture-Walsh",
        "1990-01-01",
    )
    s.encounter = False
    s.draft_bundle_type = None
    s.rif()
    rid = s._id("draft")
    s.drafts.append({"resourceType": "MedicationRequest", "id": rid, "status": "draft", "subject": s.patient_ref})
    s.selections.append(f"MedicationRequest/{rid}")
    return s


@recipe
def medication_statement() -> Scenario:
    s = Scenario(
        "medication-statement",
        "Tacrolimus known only from a MedicationStatement (prescribed elsewhere); clarithromycin drafted",
        "Gina",
        "Fixture-Conti",
        "1987-07-17",
    )
    s.rif()
    s.ratio(12.8, 25.6, 2.0, days=-45)
    s.baseline(days=-40)
    s.medication("tacrolimus", Dose(2, start=-14), authored=-14, resource_type="MedicationStatement")
    s.medication("clarithromycin", Dose(500, per_day=2, start=0, days=7), draft=True, select=True)
    return s


# ---------------------------------------------------------------------------------------------
# Charts as a clinic's own look: each one broke a rule on the happy path's edge.
# ---------------------------------------------------------------------------------------------


@recipe
def scope_transplant() -> Scenario:
    s = Scenario(
        "scope-transplant",
        "Kidney-transplant recipient (Z94.0), no RIF, no Th1/Th2 result, on "
        "tacrolimus 3 mg twice daily with a trough of 9 ng/mL; renewal drafted",
        "Hana",
        "Fixture-Novak",
        "1979-02-11",
    )
    s.condition(ICD10, "Z94.0", "Kidney transplant status", days=-2000)
    s.baseline(days=-30, creatinine=1.1)
    active = s.medication(
        "tacrolimus_1mg", Dose(3, "{capsule}", per_day=2, start=-400, text="3 mg twice daily"), authored=-400
    )
    s.obs("trough", 9.0, "ng/mL", days=-5, hour=7)
    s.medication(
        "tacrolimus_1mg",
        Dose(3, "{capsule}", per_day=2, start=1, days=90, text="3 mg twice daily"),
        draft=True,
        select=True,
    )
    s.drafts[-1]["priorPrescription"] = {"reference": f"MedicationRequest/{active}"}
    return s


@recipe
def scope_male_rif() -> Scenario:
    s = Scenario(
        "scope-male-rif",
        "A man coded with recurrent implantation failure (the couple's diagnosis on "
        "his chart) and a Th1/Th2 ratio of 12.0; tacrolimus drafted",
        "Ivan",
        "Fixture-Petrov",
        "1984-05-30",
    )
    s.gender = "male"
    _candidate(s, ratio=12.0)
    _tacro_draft(s)
    return s


@recipe
def sig_text_dose_update() -> Scenario:
    s = Scenario(
        "sig-text-dose-update",
        "Candidate (Th1/Th2 14.2) with tacrolimus drafted at 5 mg once daily "
        "after dinner, above the 4 mg/day maximum: the suggested order must not keep the old sig",
        "Julia",
        "Fixture-Meyer",
        "1986-12-02",
    )
    _candidate(s, ratio=14.2, th1=29.5)
    _tacro_draft(
        s, drug="tacrolimus_1mg", dose=Dose(5, "{capsule}", start=7, days=16, text="5 mg once daily after dinner")
    )
    return s


@recipe
def dose_total_two_drafts() -> Scenario:
    s = Scenario(
        "dose-total-two-drafts",
        "Candidate (Th1/Th2 12.9): 1 mg capsules x3 and 0.5 mg capsules x4 drafted together, 5 mg/day in total",
        "Kaori",
        "Fixture-Sato",
        "1987-03-08",
    )
    _candidate(s, ratio=12.9)
    _tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(3, "{capsule}", start=7, days=16, text="3 capsules (3 mg) daily"))
    s.medication("tacrolimus_0_5mg", Dose(4, "{capsule}", start=7, days=16, text="4 capsules (2 mg) daily"), draft=True)
    return s


@recipe
def potassium_high_spironolactone() -> Scenario:
    s = Scenario(
        "potassium-high-spironolactone",
        "On tacrolimus 2 mg/day; potassium 5.8 mmol/L yesterday; spironolactone drafted",
        "Lena",
        "Fixture-Berg",
        "1985-08-14",
    )
    _on_tacrolimus(s, mg=2, started=-10)
    s.obs("potassium", 5.8, "mmol/L", days=-1, high=5.0)
    s.medication("spironolactone", Dose(25, start=0, days=30), draft=True, select=True)
    return s


@recipe
def creatinine_baseline_before_course() -> Scenario:
    s = Scenario(
        "creatinine-baseline-before-course",
        "On tacrolimus for 10 days: creatinine 1.0 mg/dL 300 days "
        "ago, 0.6 before the course, 0.85 now (+42 % on tacrolimus)",
        "Maya",
        "Fixture-Levi",
        "1988-10-09",
    )
    s.obs("creatinine", 1.0, "mg/dL", days=-300, high=1.1)
    _on_tacrolimus(s, mg=2, started=-10, creatinine=0.6)
    s.obs("creatinine", 0.85, "mg/dL", days=-1, high=1.1)
    return s


@recipe
def potassium_conflicting() -> Scenario:
    s = Scenario(
        "potassium-conflicting",
        "On tacrolimus; two potassium results at the same time, 4.3 and 6.4 mmol/L (a haemolysed sample re-run?)",
        "Nora",
        "Fixture-Quinn",
        "1986-04-21",
    )
    _on_tacrolimus(s, mg=2, started=-12)
    s.obs("potassium", 4.3, "mmol/L", days=-1, high=5.0)
    s.obs("potassium", 6.4, "mmol/L", days=-1, high=5.0)
    return s


@recipe
def pregnancy_known_from_hcg() -> Scenario:
    s = Scenario(
        "pregnancy-known-from-hcg",
        "Pregnant since a positive serum hCG 134 days ago (no pregnancy "
        "Condition), on tacrolimus; fasting glucose 96 mg/dL and BP 142/92 this week",
        "Olga",
        "Fixture-Ivanova",
        "1984-07-07",
    )
    _on_tacrolimus(s, mg=2, started=-152, trough=6.0, trough_days=-6)
    s.obs("serum_hcg", 820, "[IU]/L", days=-134)
    s.obs("glucose_fasting", 96, "mg/dL", days=-2)
    s.bp(142, 92, days=-1)
    return s


@recipe
def pregnant_new_start() -> Scenario:
    s = Scenario(
        "pregnant-new-start",
        "8 weeks pregnant (Condition), not on tacrolimus, Th1/Th2 8.0; tacrolimus 3 mg/day drafted",
        "Paula",
        "Fixture-Rossi",
        "1987-09-25",
    )
    s.rif()
    s.ratio(8.0, 20.0, 2.5, days=-60)
    s.pregnant(days=-42)
    s.medication("tacrolimus_1mg", Dose(3, "{capsule}", start=1, text="3 mg once daily"), draft=True, select=True)
    return s


@recipe
def live_vaccine_on_tacrolimus() -> Scenario:
    s = Scenario(
        "live-vaccine-on-tacrolimus",
        "On tacrolimus 2 mg/day; MMR vaccine (CVX 03) drafted",
        "Rita",
        "Fixture-Costa",
        "1989-11-30",
    )
    _on_tacrolimus(s, mg=2, started=-8)
    s.medication(
        "mmr_vaccine", Dose(0.5, "mL", start=0, days=1, text="0.5 mL subcutaneously once"), draft=True, select=True
    )
    return s


# ---- real-world shapes: the newest result used or named, data the rules need asked for ---------------


def _last(s: Scenario, rid: str) -> dict[str, Any]:
    return next(r for r in s.resources if r.get("id") == rid)


@recipe
def trough_above_limit() -> Scenario:
    s = Scenario(
        "trough-above-limit",
        "On tacrolimus 3 mg/day; yesterday's trough reported as '>30 ng/mL' (above the assay's range)",
        "Ada",
        "Fixture-Lind",
        "1986-03-14",
    )
    _on_tacrolimus(s, mg=3, started=-12, trough=6.4, trough_days=-5)
    level = _last(s, s.obs("trough", 30, "ng/mL", days=-1, hour=7))
    level["valueQuantity"]["comparator"] = ">"
    return s


@recipe
def potassium_as_text() -> Scenario:
    s = Scenario(
        "potassium-as-text",
        "On tacrolimus 2 mg/day; newest potassium sent as text ('6.9'), an older one 4.1 mmol/L",
        "Bea",
        "Fixture-Moreau",
        "1988-08-08",
    )
    _on_tacrolimus(s, mg=2, started=-11)
    k = _last(s, s.obs("potassium", 6.9, "mmol/L", days=-1, high=5.0))
    del k["valueQuantity"], k["referenceRange"]
    k["valueString"] = "6.9"
    return s


@recipe
def trough_preliminary_critical() -> Scenario:
    s = Scenario(
        "trough-preliminary-critical",
        "On tacrolimus 4 mg/day; a preliminary trough of 21.5 ng/mL this morning (final pending), 6.1 before",
        "Cleo",
        "Fixture-Santos",
        "1985-01-21",
    )
    _on_tacrolimus(s, mg=4, started=-12, trough=6.1, trough_days=-4)
    s.obs("trough", 21.5, "ng/mL", days=0, hour=7, status="preliminary")
    return s


@recipe
def trough_timed_by_period() -> Scenario:
    s = Scenario(
        "trough-timed-by-period",
        "On tacrolimus 4 mg/day; trough 21.5 ng/mL yesterday, timed by effectivePeriod.start only",
        "Dora",
        "Fixture-Weber",
        "1987-05-30",
    )
    _on_tacrolimus(s, mg=4, trough=None)
    level = _last(s, s.obs("trough", 21.5, "ng/mL", days=-1, hour=7))
    level["effectivePeriod"] = {"start": level.pop("effectiveDateTime")}
    del level["issued"]
    return s


@recipe
def azole_recently_stopped() -> Scenario:
    s = Scenario(
        "azole-recently-stopped",
        "On tacrolimus 2 mg/day; a 7-day fluconazole course stopped 2 days ago (status stopped)",
        "Eva",
        "Fixture-Nagy",
        "1989-02-17",
    )
    _on_tacrolimus(s, mg=2, started=-14)
    s.medication("fluconazole", Dose(150, start=-8, days=7), status="stopped", authored=-9)
    return s


@recipe
def live_vaccine_given() -> Scenario:
    s = Scenario(
        "live-vaccine-given",
        "On tacrolimus 2 mg/day; an MMR vaccine given 5 days ago, recorded as an Immunization",
        "Fay",
        "Fixture-Olsen",
        "1990-12-03",
    )
    _on_tacrolimus(s, mg=2, started=-10)
    s._add(
        {
            "resourceType": "Immunization",
            "id": s._id("imm"),
            "status": "completed",
            "vaccineCode": concept(*DRUGS["mmr_vaccine"]),
            "patient": s.patient_ref,
            "occurrenceDateTime": at(-5, 10),
            "primarySource": True,
        }
    )
    return s


def build_all() -> list[Scenario]:
    """Every scenario, in recipe order."""
    return [fn() for fn in RECIPES]

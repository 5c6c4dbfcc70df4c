"""The shapes real EHRs record orders and results in, which the service must still read.

Labs in SI units, tacrolimus named only by a product code or in free text, a contained Medication,
a MedicationStatement from elsewhere, and the public sandbox's incomplete draft.
"""

from __future__ import annotations

from .chart import Dose, Scenario
from .codes import OBS
from .timelines import candidate, tacro_draft


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


def product_code_only() -> Scenario:
    s = Scenario(
        "product-code-only",
        "Eligible candidate; tacrolimus drafted by RxNorm product code 198377 only, "
        "dose 2 {pill} once daily, doseAndRate as an object (as some EHRs send it)",
        "Bella",
        "Fixture-Moreau",
        "1987-12-12",
    )
    candidate(s, ratio=12.9)
    tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(2, "{pill}", start=7, days=16, as_object=True))
    return s


def text_only() -> Scenario:
    s = Scenario(
        "text-only",
        "Eligible candidate; tacrolimus drafted as free text only ('Tacrolimus 0.5 mg capsules'), 1 mg twice daily",
        "Clara",
        "Fixture-Weber",
        "1986-03-03",
    )
    candidate(s, ratio=12.1)
    s.medication(None, Dose(1, per_day=2, start=7, days=16), text="Tacrolimus 0.5 mg capsules", draft=True, select=True)
    return s


def medication_reference() -> Scenario:
    s = Scenario(
        "medication-reference",
        "Eligible candidate already on fluconazole; tacrolimus drafted via "
        "medicationReference to a contained Medication (RxNorm 198377)",
        "Delia",
        "Fixture-Popescu",
        "1988-08-28",
    )
    candidate(s, ratio=12.3)
    s.medication("fluconazole", Dose(50, start=-5), authored=-6)
    tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(2, "{capsule}", start=7, days=16), contained=True)
    return s


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

"""The vocabulary the scenario charts are written in: the day they are set (``AS_OF``), code
systems, the observation and drug codes a recipe names by key, and the date and value helpers.

Every date is relative to ``AS_OF`` (2026-11-25), so a recipe reads like a chart: "creatinine
0.70 mg/dL 30 days ago, 0.95 mg/dL 2 days ago".
"""

from __future__ import annotations

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

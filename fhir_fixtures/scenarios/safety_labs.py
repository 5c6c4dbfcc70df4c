"""The safety monitoring a course is watched by: kidney, potassium, blood pressure, liver, glucose.

Creatinine rising, in AKI, or against a baseline older than the course; potassium high with
spironolactone drafted, two conflicting results, the newest sent as text; a blood pressure rise;
raised liver enzymes; glucose in pregnancy; and a candidate with no baseline work-up at all.
"""

from __future__ import annotations

from .chart import Dose, Scenario
from .codes import OBS
from .timelines import candidate, on_tacrolimus, tacro_draft


def creatinine_rising() -> Scenario:
    s = Scenario(
        "creatinine-rising",
        "On tacrolimus; creatinine 0.70 → 0.95 mg/dL (+36 % from baseline)",
        "Nora",
        "Fixture-Berg",
        "1987-09-27",
    )
    on_tacrolimus(s, mg=3, started=-12, creatinine=0.70)
    s.obs("creatinine", 0.95, "mg/dL", days=-2, high=1.1)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


def creatinine_aki() -> Scenario:
    s = Scenario(
        "creatinine-aki",
        "On tacrolimus; creatinine 0.70 → 1.10 mg/dL in 2 days (KDIGO AKI)",
        "Olga",
        "Fixture-Ivanova",
        "1984-04-04",
    )
    on_tacrolimus(s, mg=3, started=-12, creatinine=0.70)
    s.obs("creatinine", 0.70, "mg/dL", days=-3, high=1.1)
    s.obs("creatinine", 1.10, "mg/dL", days=-1, high=1.1)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


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
    on_tacrolimus(s, mg=2, started=-10, creatinine=0.6)
    s.obs("creatinine", 0.85, "mg/dL", days=-1, high=1.1)
    return s


def hyperkalaemia() -> Scenario:
    s = Scenario(
        "hyperkalaemia",
        "On tacrolimus, potassium 5.8 mmol/L; spironolactone drafted",
        "Paula",
        "Fixture-Rossi",
        "1986-06-06",
    )
    on_tacrolimus(s, mg=2, started=-11)
    s.obs("potassium", 5.8, "mmol/L", days=-1, high=5.0)
    s.medication("spironolactone", Dose(25), draft=True, select=True)
    return s


def potassium_high_spironolactone() -> Scenario:
    s = Scenario(
        "potassium-high-spironolactone",
        "On tacrolimus 2 mg/day; potassium 5.8 mmol/L yesterday; spironolactone drafted",
        "Lena",
        "Fixture-Berg",
        "1985-08-14",
    )
    on_tacrolimus(s, mg=2, started=-10)
    s.obs("potassium", 5.8, "mmol/L", days=-1, high=5.0)
    s.medication("spironolactone", Dose(25, start=0, days=30), draft=True, select=True)
    return s


def potassium_conflicting() -> Scenario:
    s = Scenario(
        "potassium-conflicting",
        "On tacrolimus; two potassium results at the same time, 4.3 and 6.4 mmol/L (a haemolysed sample re-run?)",
        "Nora",
        "Fixture-Quinn",
        "1986-04-21",
    )
    on_tacrolimus(s, mg=2, started=-12)
    s.obs("potassium", 4.3, "mmol/L", days=-1, high=5.0)
    s.obs("potassium", 6.4, "mmol/L", days=-1, high=5.0)
    return s


def potassium_as_text() -> Scenario:
    s = Scenario(
        "potassium-as-text",
        "On tacrolimus 2 mg/day; newest potassium sent as text ('6.9'), an older one 4.1 mmol/L",
        "Bea",
        "Fixture-Moreau",
        "1988-08-08",
    )
    on_tacrolimus(s, mg=2, started=-11)
    k = s.resource(s.obs("potassium", 6.9, "mmol/L", days=-1, high=5.0))
    del k["valueQuantity"], k["referenceRange"]
    k["valueString"] = "6.9"
    return s


def hypertension() -> Scenario:
    s = Scenario(
        "hypertension",
        "On tacrolimus; blood pressure 152/96 today (138/88 a week ago)",
        "Rosa",
        "Fixture-Garcia",
        "1985-03-13",
    )
    on_tacrolimus(s, mg=2, started=-12)
    s.bp(138, 88, days=-7)
    s.bp(152, 96, days=0, hour=7)
    s.draft_service(OBS["creatinine"][:3], select=True)
    return s


def liver_enzymes() -> Scenario:
    s = Scenario(
        "liver-enzymes",
        "On tacrolimus; ALT 96 U/L and AST 74 U/L (upper limit 35)",
        "Sara",
        "Fixture-Nilsen",
        "1988-01-22",
    )
    on_tacrolimus(s, mg=2, started=-12)
    s.obs("alt", 96, "U/L", days=-2, high=35)
    s.obs("ast", 74, "U/L", days=-2, high=35)
    s.draft_service(OBS["alt"][:3], select=True)
    return s


def gestational_glucose() -> Scenario:
    s = Scenario(
        "gestational-glucose",
        "Pregnant (serum beta-hCG 1450 IU/L) on tacrolimus; fasting glucose 97 mg/dL (GDM criterion 92), HbA1c 5.6 %",
        "Tara",
        "Fixture-Murphy",
        "1986-10-10",
    )
    on_tacrolimus(s, mg=2, started=-40)
    s.pregnant(days=-25)
    s.obs("serum_hcg", 1450, "[IU]/L", days=-26)
    s.obs("glucose_fasting", 97, "mg/dL", days=-1, hour=7)
    s.obs("hba1c", 5.6, "%", days=-1, hour=7)
    s.draft_service(OBS["glucose_fasting"][:3], select=True)
    return s


def missing_baseline_labs() -> Scenario:
    s = Scenario(
        "missing-baseline-labs",
        "Eligible candidate (ratio 13.0), transfer in 9 days, no baseline labs at all (a creatinine from 400 days ago)",
        "Zoe",
        "Fixture-Dubois",
        "1989-09-09",
    )
    candidate(s, ratio=13.0, baseline=False)
    s.obs("creatinine", 0.7, "mg/dL", days=-400, high=1.1)
    tacro_draft(s)
    return s

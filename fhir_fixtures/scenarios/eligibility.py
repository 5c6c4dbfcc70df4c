"""Eligibility and scope: who a tacrolimus start is for, and when the service stays out of it.

The Th1/Th2 cut-off (and the euploid transfer's higher one); a ratio that is derived, stale or
preliminary; the transfer plan as a ServiceRequest, Procedure or Appointment; other indications
(a transplant recipient, a man coded with the couple's diagnosis); pregnancy before or during a course.
"""

from __future__ import annotations

from .chart import Dose, Scenario
from .codes import ICD10, SCT
from .timelines import candidate, on_tacrolimus, tacro_draft


def rif_eligible() -> Scenario:
    s = Scenario(
        "rif-eligible",
        "Eligible RIF candidate: Th1/Th2 12.4 (cut-off 10.3), transfer in 9 days, "
        "tacrolimus 2 mg/day drafted to start 2 days before it for 16 days",
        "Aiko",
        "Fixture-Tanaka",
        "1988-04-12",
    )
    candidate(s, ratio=12.4)
    tacro_draft(s, text="tacrolimus 1 mg capsule")
    return s


def below_cutoff() -> Scenario:
    s = Scenario(
        "below-cutoff",
        "Th1/Th2 ratio 8.6, below the 10.3 cut-off; tacrolimus drafted anyway "
        "(transfer planned as a Procedure in preparation)",
        "Beatriz",
        "Fixture-Silva",
        "1986-09-03",
    )
    candidate(s, ratio=8.6, transfer_kind="Procedure")
    tacro_draft(s)
    return s


def euploid_transfer() -> Scenario:
    s = Scenario(
        "euploid-transfer",
        "Th1/Th2 11.2: above 10.3 but below the 11.8 cut-off for a booked euploid blastocyst transfer (Appointment)",
        "Chloe",
        "Fixture-Martin",
        "1985-01-27",
    )
    candidate(s, ratio=11.2, euploid=True, transfer_kind="Appointment")
    tacro_draft(s)
    return s


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
    tacro_draft(s)
    return s


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
    tacro_draft(s)
    return s


def autoimmune_raised_nk() -> Scenario:
    s = Scenario(
        "autoimmune-raised-nk",
        "Eligible candidate (ratio 11.9) with autoimmune disease on the problem list and raised NK cells (720/µL)",
        "Greta",
        "Fixture-Lindqvist",
        "1983-08-08",
    )
    candidate(s, ratio=11.9)
    s.condition(SCT, "85828009", "Autoimmune disease", days=-900)
    s.obs("nk", 720, "/uL", days=-21, high=490)
    tacro_draft(s)
    return s


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
    candidate(s, ratio=12.0)
    tacro_draft(s)
    return s


def rif_rpl_pregnant() -> Scenario:
    s = Scenario(
        "rif-rpl-pregnant",
        "RIF and recurrent pregnancy loss (ICD-10-CM N96), pregnant by urine "
        "hCG; on tacrolimus 2 mg/day, trough 5.5 ng/mL; renewal drafted",
        "Uma",
        "Fixture-Sato",
        "1984-12-24",
    )
    on_tacrolimus(s, mg=2, started=-40, trough=5.5, trough_days=-4)
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


def pregnancy_known_from_hcg() -> Scenario:
    s = Scenario(
        "pregnancy-known-from-hcg",
        "Pregnant since a positive serum hCG 134 days ago (no pregnancy "
        "Condition), on tacrolimus; fasting glucose 96 mg/dL and BP 142/92 this week",
        "Olga",
        "Fixture-Ivanova",
        "1984-07-07",
    )
    on_tacrolimus(s, mg=2, started=-152, trough=6.0, trough_days=-6)
    s.obs("serum_hcg", 820, "[IU]/L", days=-134)
    s.obs("glucose_fasting", 96, "mg/dL", days=-2)
    s.bp(142, 92, days=-1)
    return s


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

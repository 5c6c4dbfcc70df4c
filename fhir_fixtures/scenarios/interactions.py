"""Drugs and vaccines that meet tacrolimus.

Azoles (drafted, against an active order whose dose must be cut, stopped two days ago), a
macrolide, an inducer, mycophenolate, and a live vaccine drafted or already given.
"""

from __future__ import annotations

from .chart import Dose, Scenario
from .codes import DRUGS, at, concept
from .timelines import on_tacrolimus


def azole_fluconazole() -> Scenario:
    s = Scenario(
        "azole-fluconazole",
        "On tacrolimus 3 mg/day; fluconazole 150 mg drafted for candidiasis",
        "Vera",
        "Fixture-Kowalska",
        "1987-08-16",
    )
    on_tacrolimus(s, mg=3, started=-9)
    s.medication("fluconazole", Dose(150, start=0, days=1), draft=True, select=True)
    return s


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
    rid = on_tacrolimus(s, mg=2, started=-9)
    for res in s.resources:
        if res.get("id") == rid:
            res["identifier"] = [{"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": "RX-448812"}]
    s.medication(
        "fluconazole", Dose(200, start=0, days=7, text="200 mg by mouth daily x 1 week"), draft=True, select=True
    )
    return s


def azole_recently_stopped() -> Scenario:
    s = Scenario(
        "azole-recently-stopped",
        "On tacrolimus 2 mg/day; a 7-day fluconazole course stopped 2 days ago (status stopped)",
        "Eva",
        "Fixture-Nagy",
        "1989-02-17",
    )
    on_tacrolimus(s, mg=2, started=-14)
    s.medication("fluconazole", Dose(150, start=-8, days=7), status="stopped", authored=-9)
    return s


def macrolide_clarithromycin() -> Scenario:
    s = Scenario(
        "macrolide-clarithromycin",
        "On tacrolimus 2 mg/day; clarithromycin 500 mg twice daily drafted",
        "Wen",
        "Fixture-Li",
        "1985-11-11",
    )
    on_tacrolimus(s, mg=2, started=-9)
    s.medication("clarithromycin", Dose(500, per_day=2, start=0, days=7), draft=True, select=True)
    return s


def inducer_rifampin() -> Scenario:
    s = Scenario(
        "inducer-rifampin",
        "On tacrolimus 2 mg/day; rifampin 600 mg daily drafted (inducer)",
        "Xena",
        "Fixture-Papadopoulou",
        "1986-04-30",
    )
    on_tacrolimus(s, mg=2, started=-9)
    s.medication("rifampin", Dose(600, start=0), draft=True, select=True)
    return s


def mycophenolate() -> Scenario:
    s = Scenario(
        "mycophenolate",
        "On tacrolimus, transfer 8 days ago (pregnancy test pending); mycophenolate mofetil 500 mg twice daily drafted",
        "Yara",
        "Fixture-Almeida",
        "1988-05-25",
    )
    on_tacrolimus(s, mg=2, started=-10)
    s.medication("mycophenolate_mofetil", Dose(500, per_day=2, start=0), draft=True, select=True)
    return s


def live_vaccine_on_tacrolimus() -> Scenario:
    s = Scenario(
        "live-vaccine-on-tacrolimus",
        "On tacrolimus 2 mg/day; MMR vaccine (CVX 03) drafted",
        "Rita",
        "Fixture-Costa",
        "1989-11-30",
    )
    on_tacrolimus(s, mg=2, started=-8)
    s.medication(
        "mmr_vaccine", Dose(0.5, "mL", start=0, days=1, text="0.5 mL subcutaneously once"), draft=True, select=True
    )
    return s


def live_vaccine_given() -> Scenario:
    s = Scenario(
        "live-vaccine-given",
        "On tacrolimus 2 mg/day; an MMR vaccine given 5 days ago, recorded as an Immunization",
        "Fay",
        "Fixture-Olsen",
        "1990-12-03",
    )
    on_tacrolimus(s, mg=2, started=-10)
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

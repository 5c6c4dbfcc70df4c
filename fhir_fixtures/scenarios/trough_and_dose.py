"""The tacrolimus level and the dose.

Troughs high, critical, low and in range, before steady state or of unknown timing, reported above
the assay's range, preliminary, or timed by a period only; the daily dose read from the sig text or
summed over two drafts; a switch from immediate to extended release.
"""

from __future__ import annotations

from .chart import Dose, Scenario
from .codes import OBS
from .timelines import candidate, on_tacrolimus, tacro_draft


def trough_high() -> Scenario:
    s = Scenario(
        "trough-high",
        "On tacrolimus 3 mg/day for 12 days; trough 16.2 ng/mL 2 days ago (7.1 on day 6)",
        "Hana",
        "Fixture-Novak",
        "1987-03-21",
    )
    on_tacrolimus(s, mg=3, started=-12, trough=7.1, trough_days=-6)
    s.obs("trough", 16.2, "ng/mL", days=-2, hour=19)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def trough_critical() -> Scenario:
    s = Scenario(
        "trough-critical",
        "On tacrolimus 4 mg/day; trough 21.5 ng/mL yesterday (critical tier)",
        "Ines",
        "Fixture-Costa",
        "1986-12-01",
    )
    on_tacrolimus(s, mg=4, trough=21.5, trough_days=-1)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def trough_low() -> Scenario:
    s = Scenario(
        "trough-low",
        "On tacrolimus 1 mg/day for 11 days; trough 2.8 ng/mL 3 days ago",
        "Jana",
        "Fixture-Dvorak",
        "1990-07-09",
    )
    on_tacrolimus(s, mg=1, started=-11, trough=2.8)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def trough_in_range() -> Scenario:
    s = Scenario(
        "trough-in-range",
        "On tacrolimus 2 mg/day for 10 days; trough 6.0 ng/mL 3 days ago; next trough drafted",
        "Kira",
        "Fixture-Petrova",
        "1988-10-15",
    )
    on_tacrolimus(s, mg=2, started=-10, trough=6.0)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def trough_pre_steady_state() -> Scenario:
    s = Scenario(
        "trough-pre-steady-state",
        "Tacrolimus started 3 days ago; trough 9.5 ng/mL drawn on day 2 (before steady state)",
        "Lena",
        "Fixture-Keller",
        "1985-05-05",
    )
    on_tacrolimus(s, mg=2, started=-3, trough=9.5, trough_days=-1)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def level_timing_unknown() -> Scenario:
    s = Scenario(
        "level-timing-unknown",
        "On tacrolimus; only a level of unknown timing (LOINC 11253-2, 10.4 ng/mL), no trough",
        "Mira",
        "Fixture-Horvat",
        "1986-02-19",
    )
    on_tacrolimus(s, mg=2, started=-9, trough=None)
    s.obs("tacro_level", 10.4, "ng/mL", days=-2, hour=15)
    s.draft_service(OBS["trough"][:3], select=True)
    return s


def trough_above_limit() -> Scenario:
    s = Scenario(
        "trough-above-limit",
        "On tacrolimus 3 mg/day; yesterday's trough reported as '>30 ng/mL' (above the assay's range)",
        "Ada",
        "Fixture-Lind",
        "1986-03-14",
    )
    on_tacrolimus(s, mg=3, started=-12, trough=6.4, trough_days=-5)
    level = s.resource(s.obs("trough", 30, "ng/mL", days=-1, hour=7))
    level["valueQuantity"]["comparator"] = ">"
    return s


def trough_preliminary_critical() -> Scenario:
    s = Scenario(
        "trough-preliminary-critical",
        "On tacrolimus 4 mg/day; a preliminary trough of 21.5 ng/mL this morning (final pending), 6.1 before",
        "Cleo",
        "Fixture-Santos",
        "1985-01-21",
    )
    on_tacrolimus(s, mg=4, started=-12, trough=6.1, trough_days=-4)
    s.obs("trough", 21.5, "ng/mL", days=0, hour=7, status="preliminary")
    return s


def trough_timed_by_period() -> Scenario:
    s = Scenario(
        "trough-timed-by-period",
        "On tacrolimus 4 mg/day; trough 21.5 ng/mL yesterday, timed by effectivePeriod.start only",
        "Dora",
        "Fixture-Weber",
        "1987-05-30",
    )
    on_tacrolimus(s, mg=4, trough=None)
    level = s.resource(s.obs("trough", 21.5, "ng/mL", days=-1, hour=7))
    level["effectivePeriod"] = {"start": level.pop("effectiveDateTime")}
    del level["issued"]
    return s


def sig_text_dose_update() -> Scenario:
    s = Scenario(
        "sig-text-dose-update",
        "Candidate (Th1/Th2 14.2) with tacrolimus drafted at 5 mg once daily "
        "after dinner, above the 4 mg/day maximum: the suggested order must not keep the old sig",
        "Julia",
        "Fixture-Meyer",
        "1986-12-02",
    )
    candidate(s, ratio=14.2, th1=29.5)
    tacro_draft(
        s, drug="tacrolimus_1mg", dose=Dose(5, "{capsule}", start=7, days=16, text="5 mg once daily after dinner")
    )
    return s


def dose_total_two_drafts() -> Scenario:
    s = Scenario(
        "dose-total-two-drafts",
        "Candidate (Th1/Th2 12.9): 1 mg capsules x3 and 0.5 mg capsules x4 drafted together, 5 mg/day in total",
        "Kaori",
        "Fixture-Sato",
        "1987-03-08",
    )
    candidate(s, ratio=12.9)
    tacro_draft(s, drug="tacrolimus_1mg", dose=Dose(3, "{capsule}", start=7, days=16, text="3 capsules (3 mg) daily"))
    s.medication("tacrolimus_0_5mg", Dose(4, "{capsule}", start=7, days=16, text="4 capsules (2 mg) daily"), draft=True)
    return s


def release_switch() -> Scenario:
    s = Scenario(
        "release-switch",
        "Pregnant, on immediate-release tacrolimus 2 mg/day; extended-release capsule (RxNorm 1431971) drafted",
        "Eva",
        "Fixture-Hoffmann",
        "1985-10-20",
    )
    on_tacrolimus(s, mg=2, started=-40)
    s.pregnant(days=-25)
    s.medication("tacrolimus_er", Dose(2, start=1, days=30), draft=True, select=True)
    return s

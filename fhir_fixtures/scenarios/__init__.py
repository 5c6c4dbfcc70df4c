"""The clinical scenarios, written once as small Python recipes and turned into ``patient.json`` /
``scenario.json`` by ``python -m fhir_fixtures.build``.

``codes`` holds the vocabulary and the dates (all relative to ``AS_OF``), ``chart`` the builder a
recipe writes a patient's record with, ``timelines`` the candidate and on-a-course starts most
recipes share; the recipes themselves live in one module per clinical family. ``RECIPES`` keeps
the order the scenarios have always been built in.
"""

from __future__ import annotations

from collections.abc import Callable

from . import eligibility, interactions, record_shapes, safety_labs, trough_and_dose
from .chart import Dose, Scenario
from .codes import AS_OF

__all__ = ["AS_OF", "RECIPES", "Dose", "Scenario", "build_all"]

RECIPES: tuple[Callable[[], Scenario], ...] = (
    eligibility.rif_eligible,
    eligibility.below_cutoff,
    eligibility.euploid_transfer,
    eligibility.derived_ratio_th1_high,
    eligibility.ratio_stale,
    eligibility.ratio_preliminary,
    eligibility.autoimmune_raised_nk,
    trough_and_dose.trough_high,
    trough_and_dose.trough_critical,
    trough_and_dose.trough_low,
    trough_and_dose.trough_in_range,
    trough_and_dose.trough_pre_steady_state,
    trough_and_dose.level_timing_unknown,
    safety_labs.creatinine_rising,
    safety_labs.creatinine_aki,
    safety_labs.hyperkalaemia,
    safety_labs.hypertension,
    safety_labs.liver_enzymes,
    safety_labs.gestational_glucose,
    eligibility.rif_rpl_pregnant,
    interactions.azole_fluconazole,
    interactions.azole_course_on_active_order,
    interactions.macrolide_clarithromycin,
    interactions.inducer_rifampin,
    interactions.mycophenolate,
    safety_labs.missing_baseline_labs,
    record_shapes.units_si,
    record_shapes.product_code_only,
    record_shapes.text_only,
    record_shapes.medication_reference,
    trough_and_dose.release_switch,
    record_shapes.sandbox_incomplete_draft,
    record_shapes.medication_statement,
    # Charts in a clinic's own shape: each one broke a rule on the happy path's edge.
    eligibility.scope_transplant,
    eligibility.scope_male_rif,
    trough_and_dose.sig_text_dose_update,
    trough_and_dose.dose_total_two_drafts,
    safety_labs.potassium_high_spironolactone,
    safety_labs.creatinine_baseline_before_course,
    safety_labs.potassium_conflicting,
    eligibility.pregnancy_known_from_hcg,
    eligibility.pregnant_new_start,
    interactions.live_vaccine_on_tacrolimus,
    # Real-world shapes: the newest result used or named, data the rules need asked for.
    trough_and_dose.trough_above_limit,
    safety_labs.potassium_as_text,
    trough_and_dose.trough_preliminary_critical,
    trough_and_dose.trough_timed_by_period,
    interactions.azole_recently_stopped,
    interactions.live_vaccine_given,
)


def build_all() -> list[Scenario]:
    """Every scenario, in recipe order."""
    return [fn() for fn in RECIPES]

"""protocol.yaml: the clinical numbers behind cards 1-6, each with its source."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from .base import Cited, Count, Flag, IndicatorEntry, Number, Order, OverrideReason, Positive, Table, Text


class OtherIndications(Table):
    """Indications that put a tacrolimus order outside the RIF protocol."""

    code_prefixes: list[Text]
    words: list[Text]
    rif_words: list[Text] = []
    rif_codes: list[Text] = []
    source: Text
    note: str | None = None
    section: str | None = None


class Scope(Table):
    """Who the protocol is for."""

    min_age_years: Count
    max_age_years: Count
    other_indications: OtherIndications | None = None


class RatioCutoff(Table):
    """The Th1/Th2 ratio from which a patient is eligible."""

    standard: Positive
    euploid_blastocyst: Positive


class Eligibility(Table):
    """Card 1: who is eligible for tacrolimus."""

    ratio_cutoff: RatioCutoff
    ratio_max_age_days: Count
    transfer_recent_days: Count
    th1_th2_order: Order


class DoseBand(Table):
    """One row of the dose-band table: ratios from ``ratio_min`` to below ``ratio_below``."""

    ratio_min: float = Field(ge=0)
    ratio_below: float | None = Field(default=None, gt=0)
    daily_mg: float = Field(gt=0)


class DoseBands(Table):
    """The daily dose by the Th1/Th2 ratio."""

    source: Text
    section: str | None = None
    note: str | None = None
    site_default: bool = False
    table: list[DoseBand] = Field(min_length=1)


class Th1HighAddon(Table):
    """The extra dose when the Th1 percentage is high."""

    th1_pct_min: Positive
    add_mg: Number


class Dose(Table):
    """Card 2: the dose."""

    bands: DoseBands
    th1_high_addon: Th1HighAddon
    max_daily_mg: Positive


class Timing(Table):
    """Card 3: when the course starts and how long it runs."""

    start_days_before_transfer: Count
    min_duration_days: Count
    continue_through_pregnancy: Flag
    pregnancy_test_course_day: Count


class SteadyStateDays(Table):
    """Days to steady state by release."""

    immediate: Count
    extended: Count


class MorningDrawHours(Cited):
    """The hours of a morning draw (from ``from`` to before ``before``)."""

    from_: int = Field(alias="from", ge=0, le=23)
    before: int = Field(ge=1, le=24)


class Trough(Table):
    """Card 5: trough monitoring."""

    target_low: Positive
    target_high: Positive
    below_target_indicator: IndicatorEntry
    above_target_indicator: IndicatorEntry
    critical_at: Positive
    steady_state_days: SteadyStateDays
    interval_days: Count
    order: Order
    evening_dose_from_hour: Count
    morning_draw_hours: MorningDrawHours


class Creatinine(Table):
    """Kidney thresholds (KDIGO acute kidney injury; pre-eclampsia)."""

    unit: str
    baseline_window_days: Count
    rise_warning_fraction: Positive
    aki_ratio: Positive
    aki_absolute_rise: Positive
    aki_absolute_hours: Positive
    pregnancy_above: Positive
    order: Order


class Potassium(Table):
    """Potassium thresholds (hyperkalaemia tiers)."""

    unit: str
    advisory_above: Positive
    warning_at: Positive
    critical_at: Positive
    severe_at: Positive
    order: Order
    ecg_order: Order


class Glucose(Table):
    """Glucose thresholds (gestational and overt diabetes)."""

    unit: str
    gdm_fasting_at: Positive
    overt_fasting_at: Positive
    overt_random_at: Positive
    overt_hba1c_at: Positive
    order: Order


class BloodPressure(Table):
    """Blood-pressure thresholds (hypertension in pregnancy)."""

    warning_systolic_at: Positive
    warning_diastolic_at: Positive
    critical_systolic_at: Positive
    critical_diastolic_at: Positive
    preeclampsia_from_weeks: Count


class DefaultUln(Table):
    """Upper limits of normal used when a result carries no reference range."""

    alt: Positive
    ast: Positive


class Liver(Table):
    """Liver thresholds."""

    uln_multiple: Positive
    default_uln: DefaultUln
    order: Order


class Safety(Table):
    """Card 6: safety monitoring."""

    stale_after_days: Count
    creatinine: Creatinine
    potassium: Potassium
    glucose: Glucose
    blood_pressure: BloodPressure
    liver: Liver


class BaselineTest(Table):
    """One baseline test and the concepts that satisfy it."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z_]+$")]
    label: Text
    concepts: list[Text] = Field(min_length=1)
    order: Order


class BaselineLabs(Table):
    """Card 4: the tests due before the course starts."""

    lookback_days: Count
    source: Text
    section: str | None = None
    tests: list[BaselineTest] = Field(min_length=1)


class Outcome(Table):
    """A published outcome, shown to clinicians beside the protocol."""

    measure: Text
    value: Text
    population: str | None = None
    source: Text


class ProtocolOverrideReason(OverrideReason):
    """An override reason of the protocol cards."""

    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]


class ProtocolOverrideReasons(Table):
    """The override reasons of the protocol cards."""

    system: Text
    source: Text
    codes: list[ProtocolOverrideReason] = Field(min_length=1)


class SourceRef(Table):
    """A publication or document the entries cite by id."""

    citation: Text
    url: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    label: Annotated[str, StringConstraints(min_length=1, max_length=60)]


class ProtocolTable(Table):
    """protocol.yaml: the clinical numbers behind cards 1-6."""

    model_config = ConfigDict(title="tacro-cds protocol knowledge (cards 1-6)")

    scope: Scope | None = None
    eligibility: Eligibility
    dose: Dose
    timing: Timing
    trough: Trough
    safety: Safety
    baseline_labs: BaselineLabs
    outcomes: list[Outcome]
    override_reasons: ProtocolOverrideReasons
    sources: dict[str, SourceRef] = Field(min_length=1)

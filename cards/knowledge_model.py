"""The knowledge tables as typed models: what each YAML file may hold, and what the rules read.

The tables are merged with a site file as plain mappings (``cards.site_merge``); the effective tables
are then validated into these models once, at load. Rules read attributes
(``kb.protocol.trough.target_low.value``) that mypy checks, never dotted strings. The JSON Schemas
published beside the YAML files are generated from these models (``python -m cards.knowledge_schema``).

Extra keys are refused everywhere: a misspelt key in a site file would otherwise be ignored silently.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

# --- shared building blocks -----------------------------------------------------------------------

Text = Annotated[str, StringConstraints(min_length=1)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
EntryId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
Digits = Annotated[str, StringConstraints(pattern=r"^[0-9]+$")]
Name = Annotated[str, StringConstraints(min_length=2)]
IndicatorValue = Literal["info", "warning", "critical"]
Release = Literal["immediate", "extended"]
Route = Literal["oral", "intravenous", "topical", "vaginal", "ophthalmic", "other"]


def _unique(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice")
        seen.append(item)
    return items


Keys = Annotated[list[Key], Field(min_length=1, json_schema_extra={"uniqueItems": True}), AfterValidator(_unique)]


class Table(BaseModel):
    """A part of a knowledge table: immutable, no key the model does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Cited(Table):
    """Where an entry comes from, and whether the clinic must still confirm it."""

    source: Text
    section: str | None = None
    note: str | None = None
    site_default: bool = Field(
        default=False, description="Not settled in the literature: a clinician at the site must confirm it."
    )


class Number(Cited):
    """A clinical number with its unit and source."""

    value: float
    unit: str | None = None


class Positive(Number):
    """A number above zero."""

    value: float = Field(gt=0)


class Count(Cited):
    """A whole number of days, hours or years."""

    value: int = Field(ge=0)
    unit: str | None = None


class Flag(Cited):
    """A yes/no setting with its source."""

    value: bool


class IndicatorEntry(Cited):
    """The indicator a card shows in a given case."""

    value: IndicatorValue


class Order(Table):
    """A coded order a card suggests (a laboratory test, an ECG)."""

    system: Text = Field(json_schema_extra={"format": "uri"})
    code: Text
    display: Text
    source: Text | None = None
    section: str | None = None
    note: str | None = None


class OverrideReason(Table):
    """A coded reason a clinician may give for overriding a card."""

    code: Text
    display: Text
    system: Text | None = Field(
        default=None, description="This code's system when not the block's (e.g. HL7's suggested override reasons)"
    )


class OverrideReasons(Table):
    """The override reasons a card offers."""

    system: Text
    codes: list[OverrideReason] = Field(min_length=1)


# --- protocol.yaml --------------------------------------------------------------------------------


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


# --- codes.yaml -----------------------------------------------------------------------------------


class Coding(Table):
    """A code of a code system."""

    system: Text
    code: Text
    display: str | None = None


class ObservationCoding(Coding):
    """An observation code, with what it says about the sample."""

    timing: Literal["trough", "unknown"] | None = None
    fasting: bool | None = None
    role: Literal["systolic", "diastolic", "panel"] | None = None


class ObservationCodes(Table):
    """The codes of one observation concept."""

    group: Text
    canonical_unit: str | None
    codes: list[ObservationCoding] = Field(min_length=1)
    coded_values: dict[Literal["positive", "negative"], list[Coding]] | None = None
    value_set: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    source: Text
    note: Text | None = None


class CodePrefix(Table):
    """Every code of a system that starts with ``prefix``."""

    system: Text
    prefix: Text


class ConditionCodes(Table):
    """The codes of one condition."""

    codes: list[Coding]
    code_prefixes: list[CodePrefix] | None = None
    source: Text
    note: Text | None = None


class TransferCodes(Table):
    """Embryo-transfer procedure codes."""

    standard: list[Coding]
    euploid: list[Coding]
    source: Text | None = None


class Drug(Table):
    """A drug the service recognises by code or name."""

    rxnorm: list[Digits]
    names: list[Name] = Field(min_length=1)
    max_daily_mg: float | None = Field(default=None, gt=0)
    source: Text
    note: Text | None = None


class Product(Table):
    """An RxNorm product and its ingredients."""

    rxnorm: Digits
    ingredients: list[Key] = Field(min_length=1)
    strength_mg: float | None = Field(default=None, gt=0)
    release: Release | None = None
    dose_form: Text | None = None
    display: Text
    source: Text
    note: Text | None = None


class ReleaseNames(Table):
    """Brand or form names that say a product's release."""

    ingredient: Key
    release: Release
    names: list[Name] = Field(min_length=1)
    source: Text
    note: Text | None = None


class RouteCode(Table):
    """A route code and the route it means."""

    system: Text
    code: Text
    route: Route
    display: str | None = None


class RouteWords(Table):
    """Words of a dosage text that mean a route."""

    route: Route
    words: list[Name] = Field(min_length=1)


class Routes(Table):
    """How a route of administration is recognised."""

    codes: list[RouteCode]
    words: list[RouteWords]
    source: Text
    note: Text | None = None


class VaccineCode(Table):
    """A vaccine code and the drug key it stands for."""

    code: Text
    drug: Key
    display: str | None = None


class Vaccines(Table):
    """Vaccine codes (CVX)."""

    system: Text
    codes: list[VaccineCode]
    source: Text
    note: Text | None = None


class Limits(Table):
    """A plausible range; at least one end."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _one_end(self) -> Limits:
        if self.low is None and self.high is None:
            raise ValueError("a range needs `low`, `high` or both")
        return self


class Plausibility(Table):
    """Values outside these ranges are taken for entry errors."""

    observations: dict[Key, Limits]
    daily_dose_mg: dict[Key, Limits] | None = None
    source: Text
    note: Text | None = None


class PregnancyTestMaxAge(Table):
    """How old a pregnancy test may be and still count."""

    value: int = Field(ge=1, le=3650)
    site_default: bool = False
    source: Text
    note: Text | None = None


class CodesTable(Table):
    """codes.yaml: the codes the service recognises."""

    model_config = ConfigDict(title="codes.yaml: the codes the service recognises (docs/data-profile.md)")

    observations: dict[Key, ObservationCodes] = Field(min_length=1)
    conditions: dict[Key, ConditionCodes]
    transfer: TransferCodes
    drugs: dict[Key, Drug]
    products: list[Product]
    release_names: list[ReleaseNames] = []
    routes: Routes | None = None
    vaccines: Vaccines | None = None
    plausibility: Plausibility | None = None
    hcg_positive_iu_per_l: float = Field(gt=0)
    pregnancy_test_max_age_days: PregnancyTestMaxAge | None = None


# --- interactions.yaml ----------------------------------------------------------------------------

DayRange = tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class SourceLink(Table):
    """A link a card shows."""

    label: Text
    url: Annotated[str, StringConstraints(pattern=r"^https://")]


class LabTest(Table):
    """A laboratory test an interaction card may suggest."""

    label: Text
    loinc: Annotated[str, StringConstraints(pattern=r"^[0-9]+-[0-9]$")]
    display: Text
    source: Text


class DoseRounding(Table):
    """How a reduced dose is rounded."""

    step_mg: float = Field(
        gt=0, multiple_of=0.5, description="per-dose step; whole 0.5 mg capsules, the smallest tacrolimus capsule"
    )
    max_deviation: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="how far a rounded fractional dose (one third) may be from the exact one, as a fraction of it",
    )
    site_default: bool = False
    source: Text


class DefaultChecks(Table):
    """How many follow-up levels a card suggests by default."""

    count: int = Field(ge=1, le=20)
    site_default: bool = False
    source: Text


class LabCheck(Table):
    """How recent a laboratory result must be for an interaction check."""

    recent_days: int = Field(ge=1, le=90)
    note: str | None = None


class LabChecks(Table):
    """Laboratory checks some interactions need."""

    potassium: LabCheck | None = None
    creatinine: LabCheck | None = None


class ReduceBy(Table):
    """Reduce the dose by a fraction range."""

    reduce_by: tuple[Fraction, Fraction]


class MultiplyBy(Table):
    """Multiply the dose by a fraction, shown in words."""

    multiply_by: Fraction
    as_text: Text


class NotFor(Table):
    """Patients for whom the alternative is not suggested."""

    shown: Text
    words: list[Text] = []
    codes: list[Annotated[str, StringConstraints(pattern=r"^[^|]+[|][^|]+$")]] = []


class PreferInstead(Table):
    """An alternative drug a card suggests."""

    ingredient: Key
    rxnorm: Digits
    display: Text
    not_for: NotFor | None = None


class FetalRisk(Table):
    """A risk to the fetus the card names."""

    text: Text
    drugs: list[Key] = []
    first_trimester_only: bool = False
    avoid_pregnancy_days: int | None = Field(default=None, ge=1)


class OutsideIvfCourse(Table):
    """How the entry reads for a patient on tacrolimus outside an IVF course."""

    severity: IndicatorValue
    summary: Text
    handling: Text


class Monitor(Table):
    """A test to repeat while the drugs are taken together."""

    test: Key
    every_days: DayRange | None = None
    first_within_days: DayRange | None = None
    checks: int | None = Field(default=None, ge=1, le=20)


InteractionClass = Literal[
    "azole",
    "macrolide",
    "mycophenolate",
    "inducer",
    "inhibitor",
    "calcineurin-inhibitor",
    "nephrotoxic",
    "potassium-raiser",
    "tacrolimus-formulation",
    "vaccine",
]
EffectDirection = Literal[
    "raises-levels",
    "lowers-levels",
    "contraindicated",
    "never-together",
    "nephrotoxic",
    "hyperkalaemia",
    "not-interchangeable",
    "immunosuppression",
]


class Interaction(Table):
    """One interaction of tacrolimus with a drug or class."""

    id: EntryId
    drugs: Keys
    class_: InteractionClass = Field(alias="class")
    effect_direction: EffectDirection
    severity: IndicatorValue
    summary: Text
    effect: Text
    handling: Text
    dose_change: ReduceBy | MultiplyBy | None = None
    prefer_instead: PreferInstead | None = None
    lab_check: (
        Annotated[
            list[Literal["potassium", "creatinine"]],
            Field(json_schema_extra={"uniqueItems": True}),
            AfterValidator(_unique),
        ]
        | None
    ) = None
    contraindicated_in_hyperkalaemia: bool = False
    fetal_risk: FetalRisk | None = None
    pregnancy_only: bool = False
    outside_ivf_course: OutsideIvfCourse | None = None
    remove_draft: bool = False
    monitor: list[Monitor] = []
    after_stop_days: DayRange | None = None
    gap_hours: float | None = Field(default=None, gt=0)
    washout_weeks: float | None = Field(default=None, gt=0)
    drug_display: dict[Key, Text] = {}
    sources: list[Text] = Field(min_length=1)


class InteractionsTable(Table):
    """interactions.yaml: the tacrolimus interaction table (card 7)."""

    model_config = ConfigDict(title="Tacrolimus interaction table (card 7)")

    source_label: Text
    links: list[SourceLink] = []
    override_reasons: OverrideReasons
    lab_tests: dict[Key, LabTest] = Field(min_length=1)
    dose_rounding: DoseRounding
    default_checks: DefaultChecks
    lab_checks: LabChecks | None = None
    entries: list[Interaction] = Field(min_length=1)


# --- care.yaml ------------------------------------------------------------------------------------


class CareNumber(Table):
    """A number a care card quotes."""

    value: float | Text | tuple[float, float]
    unit: Text | None = None
    source: Text


class CareWhen(Table):
    """When a care card applies."""

    tacrolimus: Literal["started", "in-focus", "continuing"]
    pregnancy: Literal["pregnant", "not-known-pregnant"] | None = None
    conditions: Keys | None = None
    unless_taking: Keys | None = None


class CarePoint(Table):
    """One point of a care card, possibly for some patients only."""

    text: Text
    if_conditions: Keys | None = None
    unless_taking: Keys | None = None


class CareCard(Table):
    """An administration or care card."""

    id: EntryId
    kind: Annotated[str, StringConstraints(pattern=r"^care:[a-z0-9-]+$")]
    indicator: IndicatorValue
    hooks: Annotated[
        list[Literal["patient-view", "order-select", "order-sign"]],
        Field(min_length=1, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ]
    when: CareWhen
    summary: Text
    points: list[CarePoint] = Field(min_length=1)
    sources: list[Text] = Field(min_length=1)


class CareTable(Table):
    """care.yaml: administration and care cards (card 8)."""

    model_config = ConfigDict(title="Administration and care cards (card 8)")

    source_label: Text
    override_reasons: OverrideReasons
    numbers: dict[Key, CareNumber]
    cards: list[CareCard]


# --- the whole knowledge base ---------------------------------------------------------------------

TABLE_MODELS: dict[str, type[Table]] = {
    "protocol": ProtocolTable,
    "codes": CodesTable,
    "interactions": InteractionsTable,
    "care": CareTable,
}


class KnowledgeBase(Table):
    """The effective knowledge, every table validated."""

    protocol: ProtocolTable
    codes: CodesTable
    interactions: InteractionsTable
    care: CareTable


class KnowledgeTables(dict[str, Any]):
    """The effective tables as plain mappings (what the site merge, the diff and the reviewers' views
    read), carrying their typed model (what the rules read).

    The model is built once, at load; a copy of the tables (a test's modified knowledge) builds its own
    on first use, so a change made to the copy before it is read is seen.
    """

    _model: KnowledgeBase | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> KnowledgeTables:

        return KnowledgeTables({key: copy.deepcopy(value, memo) for key, value in self.items()})

    def model_built(self, model: KnowledgeBase) -> None:
        """Keep the model the loader validated these tables into."""
        self._model = model

    @property
    def model(self) -> KnowledgeBase:
        """The tables as a validated ``KnowledgeBase``."""
        if self._model is None:
            self._model = KnowledgeBase.model_validate(dict(self))
        return self._model


def typed(kb: Mapping[str, Any]) -> KnowledgeBase:
    """The typed knowledge of effective tables: the model built at load, or (for tables made by hand)
    a new one."""
    if isinstance(kb, KnowledgeTables):
        return kb.model
    return KnowledgeBase.model_validate(dict(kb))

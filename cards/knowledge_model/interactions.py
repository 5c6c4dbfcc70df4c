"""interactions.yaml: the tacrolimus interaction table (card 7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from .base import Digits, EntryId, IndicatorValue, Key, Keys, OverrideReasons, Table, Text, unique_items

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
            AfterValidator(unique_items),
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

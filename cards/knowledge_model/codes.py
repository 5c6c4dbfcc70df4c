"""codes.yaml: the codes and names the service recognises."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from .base import Digits, Key, Name, Release, Route, Table, Text


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

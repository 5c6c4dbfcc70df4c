"""What every knowledge table is built from: text and key types, cited entries, orders, override
reasons."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(min_length=1)]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
EntryId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
Digits = Annotated[str, StringConstraints(pattern=r"^[0-9]+$")]
Name = Annotated[str, StringConstraints(min_length=2)]
IndicatorValue = Literal["info", "warning", "critical"]
Release = Literal["immediate", "extended"]
Route = Literal["oral", "intravenous", "topical", "vaginal", "ophthalmic", "other"]


def unique_items(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            raise ValueError(f"{item!r} is listed twice")
        seen.append(item)
    return items


Keys = Annotated[list[Key], Field(min_length=1, json_schema_extra={"uniqueItems": True}), AfterValidator(unique_items)]


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

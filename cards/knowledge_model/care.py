"""care.yaml: the administration and care cards (card 8)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from .base import EntryId, IndicatorValue, Key, Keys, OverrideReasons, Table, Text, unique_items


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
        AfterValidator(unique_items),
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

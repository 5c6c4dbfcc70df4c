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
from typing import Any

from .base import (
    Cited,
    Count,
    Flag,
    IndicatorEntry,
    Number,
    Order,
    OverrideReason,
    OverrideReasons,
    Positive,
    Table,
)
from .care import CareCard, CareNumber, CarePoint, CareTable, CareWhen
from .codes import CodesTable
from .interactions import Interaction, InteractionsTable
from .protocol import BaselineTest, ProtocolOverrideReasons, ProtocolTable, SourceRef

__all__ = [
    "TABLE_MODELS",
    "BaselineTest",
    "CareCard",
    "CareNumber",
    "CarePoint",
    "CareTable",
    "CareWhen",
    "Cited",
    "CodesTable",
    "Count",
    "Flag",
    "IndicatorEntry",
    "Interaction",
    "InteractionsTable",
    "KnowledgeBase",
    "KnowledgeTables",
    "Number",
    "Order",
    "OverrideReason",
    "OverrideReasons",
    "Positive",
    "ProtocolOverrideReasons",
    "ProtocolTable",
    "SourceRef",
    "Table",
    "typed",
]


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

"""The rules' shared vocabulary: hook names (from ``cards.vocab``), the tacrolimus drug key, tolerant
comparisons, the one override-reason shape and the one card builder.

Every rule decides first and renders second: the card carries its ``verdict`` (a short,
machine-readable outcome such as ``"above-maximum"``), so tests assert the decision, not the English.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..facts import TACROLIMUS as _TACROLIMUS_CONCEPT
from ..knowledge_model import OverrideReasons, ProtocolOverrideReasons
from ..model import Card, Coding, Indicator, Link, Suggestion
from ..text import clip_summary, plain_summary

# Hooks this service answers (defined in cards.vocab; imported here for the rules).
from ..vocab import HOOKS, ORDER_SELECT, ORDER_SIGN, ORDERING_HOOKS, PATIENT_VIEW

__all__ = ["HOOKS", "ORDER_SELECT", "ORDER_SIGN", "ORDERING_HOOKS", "PATIENT_VIEW"]

# The drug key of tacrolimus in codes.yaml / interactions.yaml (also its lab concept key).
TACROLIMUS = _TACROLIMUS_CONCEPT

# Order statuses that mean "she is taking it".
ACTIVE_STATUSES = frozenset({"active", "on-hold"})

# Comparisons of measured or computed values with thresholds tolerate float noise
# (0.96 / 0.8 == 1.1999...). Every rule compares through these helpers.
EPSILON = 1e-9


def at_least(value: float, threshold: float) -> bool:
    """value >= threshold, tolerant of binary floating point."""
    return value >= threshold - EPSILON


def above(value: float, threshold: float) -> bool:
    """value > threshold by more than float noise."""
    return value > threshold + EPSILON


def below(value: float, threshold: float) -> bool:
    """value < threshold by more than float noise."""
    return value < threshold - EPSILON


def same(a: float, b: float) -> bool:
    """Equal within float noise (e.g. a drafted and a recommended daily dose)."""
    return abs(a - b) <= EPSILON


def override_codings(table: Mapping[str, Any]) -> tuple[Coding, ...]:
    """The override reasons of a knowledge table. One shape in every table:
    ``override_reasons: {system: ..., codes: [{code, display, system?}, ...]}``; a code names its
    own system when it is not the block's (HL7's suggested override reasons)."""
    reasons = table["override_reasons"]
    return tuple(
        Coding(system=str(c.get("system", reasons["system"])), code=str(c["code"]), display=str(c["display"]))
        for c in reasons["codes"]
    )


def reason_codings(reasons: OverrideReasons | ProtocolOverrideReasons) -> tuple[Coding, ...]:
    """``override_codings`` of a validated table's ``override_reasons`` block."""
    return tuple(Coding(system=c.system or reasons.system, code=c.code, display=c.display) for c in reasons.codes)


def build_card(
    *,
    kind: str,
    verdict: str,
    indicator: Indicator,
    summary: str,
    detail: str,
    source_label: str,
    source_url: str | None = None,
    suggestions: Iterable[Suggestion] = (),
    override_reasons: tuple[Coding, ...] = (),
    links: tuple[Link, ...] = (),
) -> Card:
    """The one way a rule makes a card: summary kept under the CDS Hooks limit, one suggestion at
    most chosen when there are several, the decision kept beside the text."""
    suggestions = tuple(suggestions)
    return Card(
        kind=kind,
        verdict=verdict,
        summary=clip_summary(plain_summary(summary)),
        indicator=indicator,
        detail=detail,
        source_label=source_label,
        source_url=source_url,
        suggestions=suggestions,
        selection_behavior="at-most-one" if suggestions else None,
        override_reasons=override_reasons,
        links=links,
    )

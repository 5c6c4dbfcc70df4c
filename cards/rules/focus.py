"""What a hook is about, and how the rules describe orders and fill knowledge-base text.

Hook focus (CDS-HOOKS-NOTES.md, "Contexts"): on order-select the selections are what is new and the
other drafts are context; on order-sign every draft is new; on patient-view the active medications are
reviewed (there are no drafts).
"""

from __future__ import annotations

import string
from typing import Any, Mapping

from ..facts import MedicationFact
from ..model import Coding
from ..text import fmt_number

ORDER_SELECT = "order-select"
ORDER_SIGN = "order-sign"
PATIENT_VIEW = "patient-view"
ORDERING_HOOKS = frozenset({ORDER_SELECT, ORDER_SIGN})


def in_focus(hook: str, med: MedicationFact) -> bool:
    """True when the order is what this hook call is about."""
    if hook == ORDER_SELECT:
        return med.is_selected
    if hook == ORDER_SIGN:
        return med.is_draft
    return not med.is_draft


def order_state(med: MedicationFact) -> str:
    """"draft, selected", "draft" or the record's status ("active")."""
    if med.is_draft:
        return "draft, selected" if med.is_selected else "draft"
    return med.status or "status unknown"


def recognition(med: MedicationFact) -> str:
    """How the drug was recognised; a text-only match is stated as such, in bold."""
    matched = med.matched or "?"
    if med.recognised_by == "rxnorm-ingredient":
        return f"recognised by RxNorm ingredient code ({matched})"
    if med.recognised_by == "rxnorm-product":
        return f"recognised by RxNorm product code ({matched})"
    if med.recognised_by == "text":
        return f"**recognised only by the text \"{matched}\", not by a code: check that this is the drug meant**"
    return "recognition not recorded"


def describe_order(med: MedicationFact) -> str:
    """One Markdown line: what the order says, where it is, its state, what matched and its dose."""
    if med.daily_dose_mg is not None:
        dose = f"{fmt_number(med.daily_dose_mg)} mg/day"
    else:
        dose = f"daily dose unknown ({med.dose_problem})" if med.dose_problem else "daily dose unknown"
    release = f", {med.release}-release" if med.release else ""
    return f"\"{med.display}\" — {med.source} ({order_state(med)}{release}); {recognition(med)}; {dose}"


def override_codings(table: Mapping[str, Any]) -> tuple[Coding, ...]:
    """The override reasons of a knowledge table as Codings (display always present); a code
    names its own system when it is not the table's."""
    reasons = table["override_reasons"]
    return tuple(Coding(system=c.get("system", reasons["system"]), code=c["code"], display=c["display"])
                 for c in reasons["codes"])


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill {placeholders} of knowledge-base text; an unknown one is left visible, never an error."""
    return string.Formatter().vformat(template, (), _KeepUnknown(values))


def span(values: Any, scale: float = 1.0) -> str:
    """[2, 3] → "2–3"; [0.5, 0.75] with scale 100 → "50–75"; 37 → "37"."""
    if isinstance(values, (list, tuple)):
        low, high = (fmt_number(v * scale) for v in values)
        return low if low == high else f"{low}–{high}"
    if isinstance(values, (int, float)):
        return fmt_number(values * scale)
    return str(values)


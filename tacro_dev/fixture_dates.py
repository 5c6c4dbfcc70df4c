"""Date shifting for the synthetic fixtures: every FHIR date and dateTime moved by a number of days,
so a chart written as of its ``asOf`` day reads the same relative to today (a transfer "in five
days" stays five days away)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

# FHIR date (YYYY-MM-DD) and dateTime/instant (with a time and an offset). Partial dates (YYYY,
# YYYY-MM) are left alone: they are not precise enough to move by days.
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")


def days_to_today(as_of: date, today: date) -> int:
    return (today - as_of).days


def shift_value(value: str, days: int) -> str:
    match = _DATE.match(value)
    if not match or days == 0:
        return value
    try:
        moved = datetime.strptime(match.group(1), "%Y-%m-%d").date() + timedelta(days=days)
    except ValueError:
        return value
    return moved.isoformat() + (match.group(2) or "")


def shift_dates(node: Any, days: int) -> Any:
    """A copy of ``node`` (FHIR JSON) with every date and dateTime string moved by ``days``."""
    if isinstance(node, dict):
        return {k: shift_dates(v, days) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_dates(v, days) for v in node]
    if isinstance(node, str):
        return shift_value(node, days)
    return node

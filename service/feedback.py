"""Validate a CDS Hooks feedback body (``POST /cds-services/{id}/feedback``)."""

from __future__ import annotations

from typing import Any, Mapping

from .errors import SchemaError
from .store import parse_timestamp
from .validation import check_schema


def validate_feedback(body: Any) -> list[Mapping[str, Any]]:
    """The feedback entries of a body valid against schemas/feedback.json, else SchemaError."""
    check_schema(body, "feedback.json")
    entries: list[Mapping[str, Any]] = body["feedback"]
    for i, entry in enumerate(entries):
        # The schema's date-time format admits a few forms (leap second 60) Python cannot hold.
        try:
            parse_timestamp(entry["outcomeTimestamp"])
        except ValueError:
            path = f"$.feedback[{i}].outcomeTimestamp"
            raise SchemaError(f"{path}: not a valid RFC 3339 date-time", location=[path]) from None
    return entries

"""Validate a CDS Hooks feedback body (``POST /cds-services/{id}/feedback``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import LimitExceededError, SchemaError
from service.hooks.validation import check_schema
from service.storage.store import parse_timestamp

MAX_ENTRIES = 1000  # as schemas/feedback.json says


def validate_feedback(body: Any) -> list[Mapping[str, Any]]:
    """The feedback entries of a body valid against schemas/feedback.json, else SchemaError."""
    if isinstance(body, dict) and isinstance(body.get("feedback"), list) and len(body["feedback"]) > MAX_ENTRIES:
        # Counted before the schema walks them (its maxItems would still check every entry).
        raise LimitExceededError(
            f"$.feedback: {len(body['feedback'])} entries, at most {MAX_ENTRIES}", location=["$.feedback"]
        )
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

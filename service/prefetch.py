"""Prefetch resolution: use what the client sent, fetch what is missing from fhirServer.

(First version: uses the prefetch as sent. The data-layer issue adds the fallback fetch.)
"""

from __future__ import annotations

from typing import Any, Mapping

from .validation import HookRequest


def resources_of(value: Any) -> list[dict[str, Any]]:
    """The resources in one prefetch value: a Bundle's entries, a single resource, or none."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                and e["resource"].get("resourceType") != "OperationOutcome"]
    if value.get("resourceType") == "OperationOutcome":
        return []
    return [value]


class PrefetchResolver:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def resolve(self, request: HookRequest, templates: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
        """Every template key mapped to its resources."""
        return {key: resources_of(request.prefetch.get(key)) for key in templates}

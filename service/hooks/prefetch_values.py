"""What a prefetch value says: the resources it holds, whether the server marked it incomplete,
whether it must be fetched instead, and how a key that could not be had is reported (CDS Hooks 2.0
prefetch; FHIR R4 Bundle.entry.search.mode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cards.vocab import MEDICATIONS
from service.errors import PrefetchUnavailableError
from service.fhir.client import FhirTimeoutError


@dataclass(frozen=True)
class MissingData:
    """One piece of data that could not be had, and why (safe to show: no URL, token or PHI)."""

    key: str
    reason: str
    issue_type: str = "incomplete"
    code: str = "prefetch-unavailable"
    # Part of the key's data was had and is used (a first page, a searchset the server marked
    # incomplete): the checks reading it run on it, and the missing-data card says it is partial.
    partial: bool = False

    def issue(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.issue_type,
            "details": {"text": f"{self.key}: {self.reason}"},
            "diagnostics": self.code,
        }
        if self.key != MEDICATIONS:
            issue["location"] = [f"$.prefetch.{self.key}"]
        return issue


def unavailable_error(missing: list[MissingData]) -> PrefetchUnavailableError:
    """The 412 naming every key that could not be had, one OperationOutcome issue each."""
    keys = ", ".join(dict.fromkeys(m.key for m in missing))
    timed_out = ", ".join(dict.fromkeys(m.key for m in missing if m.code == FhirTimeoutError.code))
    # A timeout is said as such: the data may well be there, on a server that answered too slowly.
    why = f" The FHIR server timed out (no answer within the timeout) for: {timed_out}." if timed_out else ""
    return PrefetchUnavailableError(
        f"data the rules need was neither prefetched nor fetchable: {keys}.{why} Send these prefetch "
        "keys, or a reachable fhirServer with a valid fhirAuthorization.",
        location=[f"$.prefetch.{m.key}" for m in missing if m.key != MEDICATIONS],
        issues=[m.issue() for m in missing],
    )


def resources_of(value: Any, resource_type: str | None = None) -> list[dict[str, Any]]:
    """The resources in one prefetch value: a Bundle's entries, a single resource, or none.

    OperationOutcome entries are never data; with ``resource_type`` only that type is kept."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        found = [
            e["resource"]
            for e in value.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
    else:
        found = [value]
    return [
        r
        for r in found
        if r.get("resourceType") != "OperationOutcome"
        and (resource_type is None or r.get("resourceType") == resource_type)
    ]


# OperationOutcome severities that say a searchset is not the whole answer ("results truncated", "some
# results suppressed"); an "information" outcome (timings, hints) does not.
_INCOMPLETE_SEVERITIES = frozenset({"fatal", "error", "warning"})


def searchset_incomplete(value: Any) -> str | None:
    """Why a searchset is not the whole answer, from its OperationOutcome entries (``search.mode``
    "outcome", FHIR R4 Bundle.entry.search.mode); None when nothing says so. Plain words only: the
    diagnostics of an outcome are not shown (they may quote the query)."""
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return None
    entries = value.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            continue
        issues = resource.get("issue")
        for issue in issues if isinstance(issues, list) else []:
            if isinstance(issue, dict) and issue.get("severity") in _INCOMPLETE_SEVERITIES:
                code = issue.get("code") if isinstance(issue.get("code"), str) else "incomplete"
                return f"the server marked its answer incomplete ({issue['severity']}: {code})"
    return None


def needs_fetch(value: Any, resource_type: str | None) -> bool:
    """True when a prefetch value is not an answer: an OperationOutcome, a resource of another
    type, or not a resource at all. ``None`` is an answer ("no such data")."""
    if value is None:
        return False
    if not isinstance(value, dict):
        return True
    kind = value.get("resourceType")
    if resource_type is None:  # a read whose type only the context names, and it cannot say
        return kind == "OperationOutcome" or not isinstance(kind, str)
    return kind != "Bundle" and kind != resource_type

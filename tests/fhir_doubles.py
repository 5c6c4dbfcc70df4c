"""Test doubles for FHIR I/O: `responses` helpers that assert the Authorization header and hook request
bodies. The raw socket server on 127.0.0.1, for faults `responses` cannot fake (hangs, resets,
trickles, truncated bodies), is ``fault_server.FaultServer``; ``RawServer``, ``http_head`` and
``chunks`` are re-exported from there."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests
from fault_server import FHIR_JSON, RawServer, chunks, http_head

__all__ = [
    "BASE",
    "TOKEN",
    "PATIENT",
    "FHIR_JSON",
    "OUTCOME",
    "RawServer",
    "auth_matcher",
    "bundle",
    "chunks",
    "fhir_get",
    "hook_body",
    "http_head",
    "observation",
    "url",
]

BASE = "https://fhir.example.org/r4"
TOKEN = "access-token-7f3a9c"
PATIENT = "pat-8812"


def auth_matcher(token: str | None) -> Callable[[requests.PreparedRequest], tuple[bool, str]]:
    """A `responses` matcher: the call carries ``Bearer <token>``, or no Authorization at all."""

    def match(request: requests.PreparedRequest) -> tuple[bool, str]:
        got = request.headers.get("Authorization")
        want = f"Bearer {token}" if token else None
        return got == want, "" if got == want else "Authorization header is not the expected one"

    return match


def url(path_regex: str, base: str = BASE) -> re.Pattern[str]:
    """A URL pattern for ``{base}/{path_regex}`` (query string allowed after it)."""
    return re.compile(re.escape(base) + "/" + path_regex + r"(\?.*)?$")


def fhir_get(
    rsps: Any,
    path_regex: str,
    resource: Any = None,
    *,
    token: str | None = TOKEN,
    status: int = 200,
    base: str = BASE,
    **kwargs: Any,
) -> Any:
    """Register one GET answered with FHIR JSON, matching the Authorization header."""
    kwargs.setdefault("content_type", FHIR_JSON)
    if resource is not None:
        kwargs["json"] = resource
    return rsps.get(url(path_regex, base), status=status, match=[auth_matcher(token)], **kwargs)


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return out


def observation(oid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "valueQuantity": {"value": 0.8, "unit": "mg/dL"},
    }


OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "exception", "diagnostics": "query failed"}],
}


def hook_body(
    prefetch: dict[str, Any] | None = None,
    *,
    hook: str = "patient-view",
    fhir_server: str | None = BASE,
    token: str | None = TOKEN,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context or {"userId": "Practitioner/doc-1", "patientId": PATIENT},
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
    if fhir_server and token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body

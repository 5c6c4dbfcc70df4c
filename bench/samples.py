"""Sample CDS Hooks requests: every ``fhir_fixtures/*/requests/*.json`` when present, else built-in
ones with identifiable (invented) patient data and a fake FHIR access token.

The built-in data is deliberately easy to spot in a log line: the log tests search for it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fhir_fixtures"

SERVICE_FOR_HOOK = {
    "order-select": "tacrolimus-order-select",
    "order-sign": "tacrolimus-order-sign",
    "patient-view": "tacrolimus-patient-view",
}

# Identifiable data a log must never show. Unusual values so a substring search has no false hits.
PATIENT_ID = "pt-Qz7341-Hardening"
FAMILY_NAME = "Vasquez-Okonkwo"
GIVEN_NAME = "Marisol"
BIRTH_DATE = "1987-03-14"
ACCESS_TOKEN = "fhir-at-9f8e7d6c5b4a3210-SECRET"
# Looks like a JWT (three base64url parts); sent in the Authorization header.
FAKE_JWT = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImhhcmRlbmluZyJ9."
    "eyJpc3MiOiJodHRwczovL2Voci5leGFtcGxlIiwiYXVkIjoiaHR0cDovL2xvY2FsaG9zdCIsImp0aSI6IjEyMyJ9."
    "c2lnbmF0dXJlLW5vdC1yZWFsLWhhcmRlbmluZy10ZXN0"
)
SECRETS = (PATIENT_ID, FAMILY_NAME, GIVEN_NAME, BIRTH_DATE, ACCESS_TOKEN, FAKE_JWT)

LOINC = "http://loinc.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "gender": "female",
        "birthDate": BIRTH_DATE,
        "name": [{"family": FAMILY_NAME, "given": [GIVEN_NAME]}],
    }


def _obs(oid: str, system: str, code: str, value: float, unit: str, when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _tacrolimus_draft() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "draft-tac-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "198377", "display": "tacrolimus 1 MG Oral Capsule"}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": {"doseQuantity": {"value": 1, "unit": "{pill}"}},
            }
        ],
        "category": {"text": "outpatient"},
    }


def _prefetch() -> dict[str, Any]:
    return {
        "patient": _patient(),
        "immunology": _searchset(_obs("th-1", LOCAL, "th1-th2-ratio", 12.4, "{ratio}", "2026-11-01")),
        "tacrolimusLevels": _searchset(),
        "chemistry": _searchset(
            _obs("cr-1", LOINC, "2160-0", 0.8, "mg/dL", "2026-11-02"),
            _obs("k-1", LOINC, "2823-3", 4.1, "mmol/L", "2026-11-02"),
            _obs("glu-1", LOINC, "2345-7", 92, "mg/dL", "2026-11-02"),
        ),
        "cbc": _searchset(),
        "vitals": _searchset(),
        "pregnancyTests": _searchset(),
        "conditions": _searchset(
            {
                "resourceType": "Condition",
                "id": "rif-1",
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {"coding": [{"system": LOCAL, "code": "recurrent-implantation-failure"}]},
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
            }
        ),
        "medicationRequests": _searchset(),
        "endedMedicationRequests": _searchset(),
        "medicationStatements": _searchset(),
        "immunizations": _searchset(),
        "transferRequests": _searchset(
            {
                "resourceType": "ServiceRequest",
                "id": "et-1",
                "status": "active",
                "intent": "order",
                "code": {"coding": [{"system": LOCAL, "code": "embryo-transfer"}]},
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "occurrenceDateTime": "2026-12-03",
            }
        ),
        "transferProcedures": _searchset(),
        "transferAppointments": _searchset(),
    }


def builtin_request(hook: str, *, with_token: bool = True) -> dict[str, Any]:
    """A complete, prefetched request for ``hook`` about the invented patient."""
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-hardening",
        "patientId": PATIENT_ID,
        "encounterId": "enc-hardening-1",
    }
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": _tacrolimus_draft()}]}
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-tac-1"]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": f"d1577c69-dfbe-44ad-ba6d-3e05e953b2{len(hook):02d}",
        "context": context,
        "prefetch": _prefetch(),
    }
    if with_token:
        # fhirServer: a closed local port (discard); the prefetch is complete, so nothing should be fetched.
        body["fhirServer"] = "https://127.0.0.1:9/fhir"
        body["fhirAuthorization"] = {
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
            "patient": PATIENT_ID,
        }
    return body


def fixture_requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, service id, body) for every fixture scenario request, if the fixtures exist."""
    for path in sorted(FIXTURES.glob("*/requests/*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        service = SERVICE_FOR_HOOK.get(body.get("hook", "")) if isinstance(body, dict) else None
        if service:
            yield f"{path.parent.parent.name}/{path.stem}", service, body


def fixture_resources() -> Iterator[dict[str, Any]]:
    """Every resource of every fixture patient's record (fhir_fixtures/*/patient.json)."""
    for path in sorted(FIXTURES.glob("*/patient.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource")
            if isinstance(resource, dict) and "resourceType" in resource and "id" in resource:
                yield resource


def builtin_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(name, service id, body) for the three built-in requests."""
    return [(f"builtin/{hook}", SERVICE_FOR_HOOK[hook], builtin_request(hook)) for hook in SERVICE_FOR_HOOK]


def all_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """Fixture scenarios when present, else the built-in requests."""
    found = list(fixture_requests())
    return found or builtin_requests()


def with_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` carrying the access token (and fhirServer, which the token requires)."""
    out = copy.deepcopy(body)
    auth = dict(
        out.get("fhirAuthorization")
        or {"token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "tacro-cds"}
    )
    auth["access_token"] = ACCESS_TOKEN
    out["fhirAuthorization"] = auth
    out.setdefault("fhirServer", "https://127.0.0.1:9/fhir")
    return out

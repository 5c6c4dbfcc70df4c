"""Prefetch templates (CDS Hooks 2.0 token syntax, R4 search syntax), one key per data group."""

from __future__ import annotations

from typing import Any, Mapping

LOINC = "http://loinc.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
P = "{{context.patientId}}"


def _codes(*pairs: tuple[str, str]) -> str:
    return ",".join(f"{system}|{code}" for system, code in pairs)


def prefetch_templates(knowledge: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Bounded queries for everything the rules read (see DATA-PROFILE.md)."""
    def obs(codes: str, count: int) -> str:
        return f"Observation?patient={P}&code={codes}&_sort=-date&_count={count}"

    return {
        "patient": f"Patient/{P}",
        "immunology": obs(_codes((LOCAL, "th1-th2-ratio"), (LOCAL, "th1-cd4-ifng-pct"),
                                 (LOCAL, "th2-cd4-il4-pct"), (LOINC, "9728-7")), 50),
        "tacrolimusLevels": obs(_codes((LOINC, "77348-1"), (LOINC, "11253-2"), (LOINC, "74096-9"),
                                       (LOINC, "74097-7")), 50),
        "chemistry": obs(_codes(*((LOINC, c) for c in ("2160-0", "38483-4", "14682-9", "2345-7", "2339-0",
                                                         "14749-6", "1558-6", "4548-4", "2823-3", "6298-4",
                                                         "1742-6", "1920-8", "1975-2"))), 200),
        "cbc": obs(_codes(*((LOINC, c) for c in ("58410-2", "718-7", "6690-2", "777-3"))), 50),
        "vitals": obs(_codes((LOINC, "85354-9"), (LOINC, "8480-6"), (LOINC, "8462-4")), 50),
        "pregnancyTests": obs(_codes((LOINC, "2106-3"), (LOINC, "21198-7")), 20),
        "conditions": f"Condition?patient={P}&_count=100",
        "medicationRequests": f"MedicationRequest?patient={P}&status=active,on-hold&_count=100",
        "medicationStatements": f"MedicationStatement?patient={P}&status=active&_count=100",
        "transferRequests": (f"ServiceRequest?patient={P}&code="
                             f"{_codes((LOCAL, 'embryo-transfer'), (LOCAL, 'euploid-blastocyst-transfer'))}"
                             "&status=draft,active,on-hold&_count=20"),
        "transferProcedures": (f"Procedure?patient={P}&code="
                               f"{_codes((LOCAL, 'embryo-transfer'), (LOCAL, 'euploid-blastocyst-transfer'))}"
                               "&status=preparation,in-progress&_count=20"),
        "transferAppointments": (f"Appointment?patient={P}&service-type="
                                 f"{_codes((LOCAL, 'embryo-transfer'), (LOCAL, 'euploid-blastocyst-transfer'))}"
                                 "&_sort=-date&_count=20"),
    }

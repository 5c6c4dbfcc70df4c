"""The words the service and the rules share, each written once: the hooks answered, the service ids,
the data groups (prefetch keys) and the card families.

Everything else imports these names: the registry, the prefetch templates, the rules, the render step
and the metric label sets. ``tests/test_vocabulary.py`` fails when one of these words is written as a
literal anywhere else in ``service/`` or ``cards/``.
"""

from __future__ import annotations

from typing import Final

# -- hooks (CDS Hooks Library names) -----------------------------------------------------------------

ORDER_SELECT: Final = "order-select"
ORDER_SIGN: Final = "order-sign"
PATIENT_VIEW: Final = "patient-view"
HOOKS: Final = (ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW)
ORDERING_HOOKS: Final = frozenset({ORDER_SELECT, ORDER_SIGN})

# -- service ids (kebab-case, in the URL /cds-services/<id>): one service per hook --------------------

SERVICE_ORDER_SELECT: Final = "tacrolimus-order-select"
SERVICE_ORDER_SIGN: Final = "tacrolimus-order-sign"
SERVICE_PATIENT_VIEW: Final = "tacrolimus-patient-view"
SERVICE_IDS: Final = {
    ORDER_SELECT: SERVICE_ORDER_SELECT,
    ORDER_SIGN: SERVICE_ORDER_SIGN,
    PATIENT_VIEW: SERVICE_PATIENT_VIEW,
}

# -- data groups: the prefetch keys, one bounded query each -------------------------------------------

PATIENT: Final = "patient"
# Observations, grouped by what the rules read together (codes.yaml names each concept's group).
IMMUNOLOGY: Final = "immunology"
TACROLIMUS_LEVELS: Final = "tacrolimusLevels"
CHEMISTRY: Final = "chemistry"
CBC: Final = "cbc"
VITALS: Final = "vitals"
PREGNANCY_TESTS: Final = "pregnancyTests"
OBSERVATION_GROUPS: Final = (IMMUNOLOGY, TACROLIMUS_LEVELS, CHEMISTRY, CBC, VITALS, PREGNANCY_TESTS)
CONDITIONS: Final = "conditions"
MEDICATION_REQUESTS: Final = "medicationRequests"
MEDICATION_STATEMENTS: Final = "medicationStatements"
ENDED_MEDICATION_REQUESTS: Final = "endedMedicationRequests"  # stopped or completed, newest first
IMMUNIZATIONS: Final = "immunizations"
TRANSFER_REQUESTS: Final = "transferRequests"
TRANSFER_PROCEDURES: Final = "transferProcedures"
TRANSFER_APPOINTMENTS: Final = "transferAppointments"
TRANSFERS: Final = (TRANSFER_REQUESTS, TRANSFER_PROCEDURES, TRANSFER_APPOINTMENTS)
# Not a prefetch template: the Medication resources that orders reference, read from the orders'
# bundles or fetched by reference. Reported missing like a prefetch key.
MEDICATIONS: Final = "medications"
PREFETCH_KEYS: Final = (
    PATIENT,
    *OBSERVATION_GROUPS,
    CONDITIONS,
    MEDICATION_REQUESTS,
    ENDED_MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    IMMUNIZATIONS,
    *TRANSFERS,
)
DATA_GROUPS: Final = (*PREFETCH_KEYS, MEDICATIONS)

# -- card families: a card's kind is "<family>" or "<family>:<detail>" ("interaction:fluconazole") ----

FAMILY_ELIGIBILITY: Final = "eligibility"
FAMILY_DOSE: Final = "dose"
FAMILY_TIMING: Final = "timing"
FAMILY_BASELINE_LABS: Final = "baseline-labs"
FAMILY_TROUGH: Final = "trough"
FAMILY_SAFETY: Final = "safety"
FAMILY_INTERACTION: Final = "interaction"
FAMILY_CARE: Final = "care"
FAMILY_DATA_QUALITY: Final = "data-quality"
FAMILY_MISSING_DATA: Final = "missing-data"
CARD_FAMILIES: Final = (
    FAMILY_ELIGIBILITY,
    FAMILY_DOSE,
    FAMILY_TIMING,
    FAMILY_BASELINE_LABS,
    FAMILY_TROUGH,
    FAMILY_SAFETY,
    FAMILY_INTERACTION,
    FAMILY_CARE,
    FAMILY_DATA_QUALITY,
    FAMILY_MISSING_DATA,
)


def card_kind(family: str, detail: str | None = None) -> str:
    """A card's kind: its family, with the detail after ":" when there is one."""
    return family if detail is None else f"{family}:{detail}"


def card_family(kind: str) -> str:
    """The family of a card's kind ("interaction:fluconazole" -> "interaction")."""
    return kind.split(":", 1)[0]

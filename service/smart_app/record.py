"""Read one patient's record for the page, the way the CDS service reads it for a hook call.

The same prefetch templates (``service.hooks.templates``) are filled for the launch's patient and
fetched from the EHR's FHIR server with the app's access token by the service's own resolver
(``service.hooks.prefetch``); the same extraction (``service.hooks.extract.build_facts``) turns them into facts;
the same rules (``cards.evaluate``) give the cards, both run by the pipeline's ``evaluate_hook``, as
for every hook call. Nothing here parses FHIR clinical data itself.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cards.facts import PatientFacts
from cards.model import Card
from cards.vocab import ORDER_SELECT, PATIENT_VIEW
from service.errors import FhirServerRefusedError, PrefetchUnavailableError
from service.hooks.base import HookRequest
from service.hooks.pipeline import evaluate_hook
from service.hooks.prefetch import PrefetchResolver
from service.smart_app.errors import FhirAccessError, IssuerRefusedError, SessionExpiredError

ORDER_KEY = "appContextOrder"
_ORDER_REF = re.compile(r"^MedicationRequest/[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class PatientRecord:
    facts: PatientFacts
    cards: list[Card]
    patient: Mapping[str, Any] | None
    order_id: str | None  # the order named by appContext
    order_found: bool  # that order was read from the FHIR server
    order_draft: bool  # ... and is an unsigned draft (reviewed as order-select reviews it)
    today: date
    notes: list[str] = field(default_factory=list)


def app_context(token: Mapping[str, Any]) -> dict[str, str]:
    """The CDS Hooks appContext of the launch (a JSON string per SMART), as a dict of strings."""

    raw = token.get("appContext")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def load_record(
    token: Mapping[str, Any],
    resolver: PrefetchResolver,
    templates: Mapping[str, str],
    knowledge: Mapping[str, Any],
    today: date,
    *,
    gate_key: str | None = None,
) -> PatientRecord:
    """Fetch, extract and evaluate; the app's errors for a refused, expired or failed read.
    ``gate_key`` names whose share of the FHIR fallback gate the reads take (one per launch, so
    slow page loads of one launch never lock out the others)."""
    patient_id = str(token["patient"])
    context_ids = app_context(token)
    order_id = context_ids.get("orderId")
    if context_ids.get("patientId") not in (None, patient_id):
        order_id = None  # an appContext about another patient is not followed
    wanted = dict(templates)
    if order_id and _ORDER_REF.match(order_id):
        wanted[ORDER_KEY] = order_id
    else:
        order_id = None
    request = HookRequest(
        hook=PATIENT_VIEW,
        hook_instance=str(uuid.uuid4()),
        context={"patientId": patient_id, "userId": "Practitioner/smart-app-user"},
        fhir_server=str(token["iss"]).rstrip("/"),
        access_token=str(token["access_token"]),
    )
    try:
        # Under the allowlist entry that names this EHR (a per-caller entry of FHIR_SERVER_ALLOWLIST).
        issuer = token.get("allowlist_issuer")
        data = resolver.resolve(request, wanted, issuer=issuer if isinstance(issuer, str) else None, gate_key=gate_key)
    except FhirServerRefusedError:
        raise IssuerRefusedError("This deployment does not read from that FHIR server.") from None
    except PrefetchUnavailableError as exc:
        raise _fhir_failure(exc) from None
    found_order = data.pop(ORDER_KEY, None) or []
    order = found_order[0] if found_order else None
    notes: list[str] = []
    order_draft = bool(order and order.get("status") == "draft")
    if order_draft:
        # An unsigned order is reviewed the way order-select reviews it: as the selected draft.
        request = HookRequest(
            hook=ORDER_SELECT,
            hook_instance=request.hook_instance,
            context={
                **request.context,
                "selections": [order_id],
                "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
            },
            fhir_server=request.fhir_server,
            access_token=request.access_token,
        )
    elif order_id and order is None:
        notes.append(
            f"The order the card was about ({order_id}) is not on the FHIR server (an order not "
            "yet saved in the EHR); the cards below are for her record as stored."
        )
    decision = evaluate_hook(request, data, knowledge, today=today)
    patients = data.get("patient") or []
    return PatientRecord(
        facts=decision.facts,
        cards=decision.cards,
        patient=patients[0] if patients else None,
        order_id=order_id,
        order_found=order is not None,
        order_draft=order_draft,
        today=today,
        notes=notes,
    )


def _fhir_failure(exc: PrefetchUnavailableError) -> Exception:
    codes = {str(issue.get("diagnostics")) for issue in exc.extra_issues}
    if "fhir-unauthorized" in codes:
        return SessionExpiredError("The EHR's FHIR server no longer accepts this session's access token.")
    if "fhir-forbidden" in codes:
        return FhirAccessError(
            "The EHR's FHIR server refused to share part of this record with the app "
            "(HTTP 403). Ask your EHR administrator which scopes the app was granted."
        )
    if codes & {"fhir-timeout", "fhir-unreachable"}:
        err = FhirAccessError("The EHR's FHIR server did not answer in time. Try again in a moment.")
        err.status = 504
        return err
    return FhirAccessError(
        "The EHR's FHIR server could not give the data this page needs (" + ", ".join(sorted(codes)) + ")."
    )

"""The request model every hook stage shares: a validated CDS Hooks call.

Validation builds it; the prefetch resolver, the extract stage and the pipeline read it. It lives
apart from validation so that reading a request never depends on the JSON schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cards.vocab import ORDER_SELECT, ORDER_SIGN

ORDER_HOOKS = (ORDER_SELECT, ORDER_SIGN)


@dataclass(frozen=True)
class HookRequest:
    """A validated CDS Hooks call."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    fhir_server: str | None = None
    access_token: str | None = field(default=None, repr=False)
    prefetch: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def patient_id(self) -> str:
        return str(self.context["patientId"])

    @property
    def draft_orders(self) -> list[dict[str, Any]]:
        """Resources of context.draftOrders, tolerating a Bundle without type or fullUrl."""
        # patient-view has no draftOrders and its schema does not check one: a stray field of any
        # type is ignored rather than trusted to be a Bundle.
        bundle = self.context.get("draftOrders") if self.hook in ORDER_HOOKS else None
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        if not isinstance(entries, list):
            return []
        return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]

    @property
    def selections(self) -> tuple[str, ...]:
        """context.selections of order-select; other hooks have none (a stray field is ignored)."""
        value = self.context.get("selections") if self.hook == ORDER_SELECT else None
        if not isinstance(value, list):
            return ()
        return tuple(s for s in value if isinstance(s, str))

"""Pilot modes: who sees a service's cards while a site tries it out.

``live``: every caller gets the cards (as without a pilot). ``silent``: the cards are computed and
recorded with the data they quoted, and the EHR gets ``{"cards": []}``. ``shadow``: only the listed
practitioners get the cards, everyone else none; all are recorded. The mode is chosen per service
and per trusted issuer (``PILOT_MODES``); the most specific entry wins: issuer and service, issuer
and ``*``, service, ``*``, else ``live``.

A card is recorded with what it quoted, not the chart: the results whose reported value appears in
its text, and the orders it names or the hook drafted. Tokens are never recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cards.facts import PatientFacts
from cards.model import Card

Mode = Literal["live", "silent", "shadow"]
MODES: tuple[Mode, ...] = ("live", "silent", "shadow")
ANY = "*"


@dataclass(frozen=True)
class PilotPolicy:
    """The modes chosen per service and issuer, and the practitioners ``shadow`` shows cards to."""

    services: Mapping[str, Mode] = field(default_factory=dict)
    issuers: Mapping[str, Mapping[str, Mode]] = field(default_factory=dict)
    shadow_users: frozenset[str] = frozenset()

    def mode(self, service_id: str, issuer: str | None = None) -> Mode:
        """The mode of ``service_id`` for a call from ``issuer`` (None: authentication off)."""
        per_issuer = self.issuers.get(issuer or "", {})
        for table, key in ((per_issuer, service_id), (per_issuer, ANY), (self.services, service_id)):
            if key in table:
                return table[key]
        return self.services.get(ANY, "live")

    def modes_of(self, service_id: str) -> set[Mode]:
        """Every mode ``service_id`` can run in: for callers without an issuer entry, and per issuer."""
        return {self.mode(service_id)} | {self.mode(service_id, issuer) for issuer in self.issuers}

    def default_modes(self, service_ids: Iterable[str]) -> dict[str, Mode]:
        """Each service's mode for callers without an issuer entry (what /readyz reports)."""
        return {sid: self.mode(sid) for sid in service_ids}

    def shows(self, mode: Mode, users: Iterable[str | None]) -> bool:
        """Whether a caller with these practitioner references gets the cards."""
        if mode == "live":
            return True
        if mode == "silent":
            return False
        return any(practitioner_reference(user) in self.shadow_users for user in users if user)


def practitioner_reference(reference: str) -> str:
    """``Practitioner/123`` from itself or from an absolute ``fhirUser`` URL ending in it."""
    parts = reference.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference


def pilot_policy(modes: Mapping[str, Any], shadow_users: Sequence[str], service_ids: Iterable[str]) -> PilotPolicy:
    """The policy from the ``PILOT_MODES`` and ``PILOT_SHADOW_USERS`` settings; ValueError naming the
    entry when one is not a known service id or mode."""
    known = set(service_ids) | {ANY}

    def table(entries: Mapping[str, Any], where: str) -> dict[str, Mode]:
        checked: dict[str, Mode] = {}
        for key, value in entries.items():
            if key not in known:
                raise ValueError(
                    f"{where}{key!r} is neither a service id nor '*' (services: {', '.join(sorted(known))})"
                )
            if value not in MODES:
                raise ValueError(f"{where}{key!r}: mode must be one of {', '.join(MODES)}, not {value!r}")
            checked[key] = value
        return checked

    services = table({k: v for k, v in modes.items() if not isinstance(v, Mapping)}, "")
    issuers = {k: table(v, f"issuer {k}: ") for k, v in modes.items() if isinstance(v, Mapping)}
    users = frozenset(practitioner_reference(u) for u in shadow_users)
    for user in users:
        if not user.startswith("Practitioner/") or user == "Practitioner/":
            raise ValueError(f"shadow user {user!r} is not a Practitioner/<id> reference")
    return PilotPolicy(services=services, issuers=issuers, shadow_users=users)


def quoted_data(card: Card, facts: PatientFacts) -> dict[str, Any]:
    """What ``card`` quoted: results whose reported value its text names (with their dates) and the
    orders it names or the hook drafted; never the rest of the chart."""
    text = f"{card.summary}\n{card.detail}"
    values = []
    for concept, measurements in facts.labs.items():
        for m in measurements:
            if m.shown and m.shown in text:
                values.append(
                    {
                        "what": concept,
                        "value": m.shown,
                        "date": m.when.isoformat() if m.when else None,
                        "status": m.status,
                        "source": m.source,
                    }
                )
    orders = []
    for med in facts.medications:
        if med.is_draft or (med.display and med.display in text):
            orders.append(
                {
                    "order": med.display,
                    "status": med.status,
                    "draft": med.is_draft,
                    "daily_mg": med.daily_dose_mg,
                    "start": med.start.isoformat() if med.start else None,
                    "source": med.source,
                }
            )
    return {"values": values, "orders": orders}


def pilot_rows(
    *,
    service_id: str,
    hook: str,
    mode: Mode,
    shown: bool,
    cards: Sequence[Card],
    rendered: Sequence[Mapping[str, Any]],
    facts: PatientFacts,
    issuer: str | None,
    tenant: str | None,
) -> list[dict[str, Any]]:
    """The rows ``PilotRecords.record`` keeps for one call's cards."""
    return [
        {
            "card_uuid": str(out.get("uuid", "")),
            "service_id": service_id,
            "hook": hook,
            "mode": mode,
            "shown": shown,
            "kind": card.kind,
            "indicator": card.indicator,
            "summary": card.summary,
            "card": dict(out),
            "quoted": quoted_data(card, facts),
            "patient_id": facts.patient_id,
            "user_id": facts.user_id,
            "issuer": issuer or "",
            "tenant": tenant,
        }
        for card, out in zip(cards, rendered, strict=True)
    ]

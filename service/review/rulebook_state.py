"""The knowledge in use and its sign-off: the content hash a sign-off names, what the service reports
about it (start-up, /readyz, metrics), and why ``live`` mode may not start with it.

Apart from the rulebook document (``service.review.rulebook``), which is built only when a reviewer
asks for it: the service checks the sign-off at every start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards.knowledge import unconfirmed_entries


def knowledge_hash(tables: Mapping[str, Any]) -> str:
    """SHA-256 of the effective knowledge as canonical JSON (sorted keys): equal tables, equal hash."""
    text = json.dumps(tables, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RulebookState:
    """The knowledge in use and its sign-off, as the service reports it (start-up, /readyz, metrics)."""

    knowledge_hash: str
    unconfirmed: tuple[str, ...]
    records: Any  # service.storage.pilot.PilotRecords

    def signoffs(self) -> list[Any]:
        return list(self.records.signoffs(self.knowledge_hash))

    def report(self) -> dict[str, Any]:
        signed = self.signoffs()
        return {
            "hash": self.knowledge_hash,
            "signed": bool(signed),
            "status": "signed" if signed else "unsigned",
            "signedBy": [
                {"name": s.signed_by, "role": s.role, "at": s.signed_at.isoformat(timespec="seconds") + "Z"}
                for s in signed
            ],
            "unconfirmedSiteDefaults": len(self.unconfirmed),
        }

    def refusal(self) -> str | None:
        """Why ``live`` mode may not start with this knowledge (unsigned, or site defaults not
        confirmed), or None."""
        reasons = []
        if not self.signoffs():
            reasons.append(
                f"the rulebook of the knowledge in use (hash {self.knowledge_hash[:12]}) is unsigned: "
                "review `tacro-cds rulebook --out DIR` and record `tacro-cds rulebook sign --by NAME --role ROLE`"
            )
        if self.unconfirmed:
            reasons.append(
                f"{len(self.unconfirmed)} site default(s) are unconfirmed ({'; '.join(self.unconfirmed)}): "
                "confirm each in the site file with `site_default: false`"
            )
        return " and ".join(reasons) or None


def live_refusal(book: RulebookState, require_signed: bool, live_services: list[str]) -> str | None:
    """Why the service may not start: ``REQUIRE_SIGNED_RULEBOOK`` on, a service would run live, and
    the knowledge is unsigned or a site default unconfirmed; else None."""
    if not require_signed or not live_services:
        return None
    why = book.refusal()
    if why is None:
        return None
    return (
        f"TACRO_CDS_REQUIRE_SIGNED_RULEBOOK: {', '.join(live_services)} would run live, but {why} "
        "(or run them silent or shadow with TACRO_CDS_PILOT_MODES)"
    )


def refusal_at_start(settings: Any) -> str | None:
    """``live_refusal`` for a deployment's settings, checked once before the workers start (the
    knowledge loaded with the site file, the pilot modes, the sign-offs in the database)."""
    if not settings.require_signed_rulebook:
        return None
    from cards.knowledge import load_knowledge_report
    from service.config import database_url
    from service.hooks.pilot import pilot_policy
    from service.hooks.registry import build_registry
    from service.hooks.templates import prefetch_templates
    from service.storage.pilot import PilotRecords
    from service.storage.store import Store

    tables = load_knowledge_report(settings.site_config, settings.rxnorm_products).tables
    ids = [s.id for s in build_registry(prefetch_templates(tables))]
    pilot = pilot_policy(settings.pilot_modes, settings.pilot_shadow_users, ids)
    store = Store(database_url(settings), auto_upgrade=settings.db_auto_upgrade)
    try:
        book = RulebookState(knowledge_hash(tables), unconfirmed_entries(tables), PilotRecords(store))
        return live_refusal(book, True, [sid for sid in ids if "live" in pilot.modes_of(sid)])
    finally:
        store.dispose()

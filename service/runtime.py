"""The collaborators one app instance works with, built once in ``create_app``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from service.config import Settings
from service.hooks.pilot import PilotPolicy
from service.hooks.prefetch import PrefetchResolver
from service.hooks.registry import ServiceRegistry


@dataclass
class Runtime:
    settings: Settings
    knowledge: Mapping[str, Any]
    registry: ServiceRegistry
    resolver: PrefetchResolver
    verifier: Any  # service.api.auth.CallerVerifier
    store: Any  # service.storage.store.Store
    clock: Callable[[], datetime]
    new_uuid: Callable[[], str]
    pilot: PilotPolicy = field(default_factory=PilotPolicy)
    pilot_records: Any = None  # service.storage.pilot.PilotRecords: cards recorded in silent and shadow modes
    rulebook: Any = None  # service.review.rulebook_state.RulebookState: the knowledge hash and its sign-off

    def today(self) -> date:
        """The clinic's date now (the site time zone's), the "today" of every rule."""
        return self.settings.site_today(self.clock())

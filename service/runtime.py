"""The collaborators one app instance works with, built once in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from flask import current_app

from .config import Settings
from .prefetch import PrefetchResolver
from .services import ServiceRegistry


@dataclass
class Runtime:
    settings: Settings
    knowledge: Mapping[str, Any]
    registry: ServiceRegistry
    resolver: PrefetchResolver
    verifier: Any  # service.auth.CallerVerifier
    store: Any  # service.store.Store
    clock: Callable[[], datetime]
    new_uuid: Callable[[], str]


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["tacro_cds"]
    return rt

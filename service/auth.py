"""Caller authentication (CDS Hooks 2.0, "Trusting CDS Clients").

(First version: refuses every call when AUTH_REQUIRED; the service issue adds JWT verification.)
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import UnauthorizedError


class CallerVerifier:
    def __init__(self, config: Mapping[str, Any], store: Any) -> None:
        self.config = config
        self.store = store

    def verify(self, authorization: str | None, audience: str) -> Mapping[str, Any]:
        """Return the verified claims, or raise UnauthorizedError."""
        raise UnauthorizedError("JWT verification not configured")

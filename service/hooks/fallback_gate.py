"""The fallback gate: how many hook calls of one worker may fetch from FHIR servers at once."""

from __future__ import annotations

import logging
import threading

from service.errors import FallbackBusyError

log = logging.getLogger("tacro_cds.prefetch")


class FallbackGate:
    """How many hook calls of this worker may be fetching from FHIR at once, in all and per caller.
    A call that would exceed either is refused at once (FallbackBusyError), never queued: a queue
    would hold a serving thread as long as the slow FHIR server holds the others."""

    def __init__(self, total: int, per_issuer: int) -> None:
        self.total = max(1, total)
        self.per_issuer = max(1, per_issuer)
        self._lock = threading.Lock()
        self._running = 0
        self._by_issuer: dict[str | None, int] = {}

    def enter(self, issuer: str | None) -> None:
        with self._lock:
            mine = self._by_issuer.get(issuer, 0)
            if self._running >= self.total or mine >= self.per_issuer:
                log.warning(
                    "FHIR fallback refused: too many running",
                    extra={"keys": self._running, "iss": (issuer or "")[:128] or None},
                )
                raise FallbackBusyError(
                    "too many calls are fetching from FHIR servers right now; nothing was fetched. "
                    "Send the prefetch keys, or retry shortly"
                )
            self._running += 1
            self._by_issuer[issuer] = mine + 1

    def leave(self, issuer: str | None) -> None:
        with self._lock:
            self._running -= 1
            left = self._by_issuer.get(issuer, 1) - 1
            if left > 0:
                self._by_issuer[issuer] = left
            else:
                self._by_issuer.pop(issuer, None)

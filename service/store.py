"""Durable state: feedback, issued cards (for the feedback summary) and the JWT replay cache.

(First version: not yet durable; the service issue adds the SQLAlchemy store.)
"""

from __future__ import annotations

from typing import Any, Mapping


class Store:
    def __init__(self, url: str) -> None:
        self.url = url

    def record_cards(self, service_id: str, cards: list[Mapping[str, Any]], kinds: list[str]) -> None:
        """Remember which kind of card each issued uuid was."""

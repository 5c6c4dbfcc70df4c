"""Shared pytest fixtures: an app per test with injectable collaborators."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fault_server import fault_server, fault_server_module  # noqa: F401  (fixtures for every module)
from flask import Flask
from flask.testing import FlaskClient
from tmp_guard import (  # noqa: F401
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_unconfigure,  # a run's temporary folders: its own, and none left behind
)

from service import create_app

FIXED_NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite fhir_fixtures/<scenario>/expected/<hook>.response.json from the service",
    )


class SteppingClock:
    """A clock the test moves forward by hand (pass it as create_app's clock)."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def counting_uuids() -> Callable[[], str]:
    """Pinned uuids: 00000000-0000-4000-8000-000000000001, ...002, ..."""
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


@pytest.fixture
def make_app(tmp_path) -> Callable[..., Flask]:
    """``make_app(AUTH_REQUIRED=True, store=..., clock=...)``: upper-case keywords are settings, lower-case
    ones create_app's collaborators; a pinned clock and pinned uuids unless given."""

    def factory(**overrides: Any) -> Flask:
        config: dict[str, Any] = {
            "AUTH_REQUIRED": False,
            "FEEDBACK_DB": f"sqlite:///{tmp_path / 'feedback.sqlite'}",
            "DATA_DIR": str(tmp_path / "data"),
        }
        collaborators: dict[str, Any] = {"clock": lambda: FIXED_NOW, "uuid_factory": counting_uuids()}
        for key, value in overrides.items():
            (collaborators if key.islower() else config)[key] = value
        return create_app(config, **collaborators)

    return factory


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


def no_data_prefetch() -> dict[str, Any]:
    """A complete prefetch saying "no such data" for every key: null for reads, an empty searchset
    for searches (CDS Hooks 2.0: an answer, not a gap, so nothing is fetched)."""
    from cards.knowledge import load_knowledge
    from service.hooks.templates import prefetch_templates

    return {
        key: None if "?" not in query else {"resourceType": "Bundle", "type": "searchset", "total": 0}
        for key, query in prefetch_templates(load_knowledge()).items()
    }

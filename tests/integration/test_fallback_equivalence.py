"""A request with no prefetch at all, answered from the FHIR server with the client's token, gets
the same cards as the same request fully prefetched: for every scenario and hook."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_fixtures import hook_cases, load_request, scenario_clock
from service import create_app
from service.storage.store import Store

pytestmark = pytest.mark.integration

CASES = hook_cases()


class RecordingStore:
    """The real store, remembering the card kinds of the last call (the response does not carry them)."""

    def __init__(self, url: str) -> None:
        self._store = Store(url)
        self.kinds: list[str] = []

    def record_cards(self, service_id: str, cards: Any, kinds: list[str], **caller: Any) -> None:
        self.kinds = list(kinds)
        self._store.record_cards(service_id, cards, kinds, **caller)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _comparable(cards: list[dict[str, Any]], kinds: list[str]) -> list[tuple[Any, ...]]:
    """What must not depend on where the data came from (uuids and echoed server metadata aside)."""
    return [
        (
            kind,
            c["indicator"],
            c["summary"],
            tuple((s["label"], tuple(a["type"] for a in s.get("actions") or [])) for s in c.get("suggestions") or []),
        )
        for c, kind in zip(cards, kinds, strict=True)
    ]


def _answer(tmp_path, scenario: str, hook: str, body: dict[str, Any]) -> list[tuple[Any, ...]]:
    store = RecordingStore(f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    app = create_app(
        {"AUTH_REQUIRED": False, "ALLOW_HTTP_FHIR": "loopback", "LOG_LEVEL": "WARNING"},
        store=store,
        clock=lambda: scenario_clock(scenario),
    )
    services = {s["hook"]: s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}
    response = app.test_client().post(f"/cds-services/{services[hook]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return _comparable(response.get_json()["cards"], store.kinds)


@pytest.mark.parametrize(("scenario", "hook"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_no_prefetch_gives_the_same_cards_as_full_prefetch(fhir_server, tmp_path, scenario, hook):
    prefetched = load_request(scenario, hook)
    bare = copy.deepcopy(prefetched)
    del bare["prefetch"]
    bare["fhirServer"] = fhir_server.url
    bare["fhirAuthorization"] = {
        "access_token": fhir_server.token or "none",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tacro-cds",
    }
    assert _answer(tmp_path, scenario, hook, bare) == _answer(tmp_path, scenario, hook, prefetched)

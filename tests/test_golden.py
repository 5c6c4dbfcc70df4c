"""Golden request/response tests: every fixture scenario's request for every hook, answered by the
service with pinned uuids and the scenario's clock (asOf, 09:00 UTC), equals the committed
``fhir_fixtures/<scenario>/expected/<hook>.response.json``. ``pytest --update-goldens`` rewrites them
(review the diff: it is the change in what clinicians will see)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from conftest import counting_uuids

from fhir_fixtures import FIXTURES_DIR, hook_cases, load_request, scenario_clock
from service import create_app

CASES = hook_cases()
_warned: list[bool] = []


def _card_checker() -> Callable[[Any], None] | None:
    """tests/cardcheck.py's assert_valid_response, when that module exists on this branch."""
    try:
        from cardcheck import assert_valid_response  # type: ignore[import-not-found]
    except ImportError:
        return None
    return assert_valid_response  # type: ignore[no-any-return]


class PinnedUuids:
    """A uuid factory restarted at ...0001 for every request, so goldens do not depend on test order."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._next = counting_uuids()

    def __call__(self) -> str:
        return self._next()


@pytest.fixture(scope="module")
def golden_apps(tmp_path_factory):
    """One app per scenario clock, shared by the module."""
    apps: dict[Any, tuple[Any, PinnedUuids, dict[str, str]]] = {}

    def get(scenario: str):
        clock = scenario_clock(scenario)
        if clock not in apps:
            uuids = PinnedUuids()
            # The goldens pin what the rules say; the built-in app's smart link (its URL depends on the
            # host answering) is tested in test_smart_app.
            app = create_app(
                {
                    "AUTH_REQUIRED": False,
                    "LOG_LEVEL": "WARNING",
                    "SMART_APP_ENABLED": False,
                    "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('golden') / 'f.sqlite'}",
                },
                uuid_factory=uuids,
                clock=lambda: clock,
            )
            ids = {s["hook"]: s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}
            apps[clock] = (app, uuids, ids)
        return apps[clock]

    return get


@pytest.mark.parametrize(("scenario", "hook"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_golden_response(golden_apps, request, scenario, hook):
    app, uuids, services = golden_apps(scenario)
    uuids.restart()
    response = app.test_client().post(f"/cds-services/{services[hook]}", json=load_request(scenario, hook))
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    body = response.get_json()

    check = _card_checker()
    if check is None and not _warned:
        _warned.append(True)
        warnings.warn(
            "tests/cardcheck.py is absent: golden responses are not checked against the card rules", stacklevel=1
        )
    elif check is not None:
        check(body)

    path = FIXTURES_DIR / scenario / "expected" / f"{hook}.response.json"
    if request.config.getoption("--update-goldens"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    assert path.is_file(), f"no golden file {path.relative_to(FIXTURES_DIR)}: run pytest --update-goldens"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert body == expected, (
        f"{scenario} {hook}: the response differs from the golden file; if the change is "
        "intended, run pytest --update-goldens and review the diff"
    )

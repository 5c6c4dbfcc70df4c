"""The development EHR closes the loop: a card's suggestion accepted (applied to the draft it shows)
or the card overridden with one of its reasons, and the feedback sent to the service signed as an
EHR sends it; the service stores it under the cards it issued to that EHR."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from review_support import free_port
from werkzeug.serving import make_server

from bench.fhir_standin import FhirStandIn, replay_answers
from bench.samples import fixture_requests, fixture_resources
from cards.knowledge import load_knowledge
from fhir_fixtures import FIXTURES_DIR, scenario_clock
from service import create_app
from service.api.auth import CallerVerifier
from service.config import load_settings
from service.hooks.templates import prefetch_templates
from service.storage.store import Store
from tacro_dev.dev_ehr import DevEhrSettings, create_dev_ehr
from tacro_dev.dev_ehr.app import apply_suggestion


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Iterator[tuple[object, object]]:
    """(development EHR test client, service app): the EHR reads a FHIR stand-in replaying the
    fixtures and calls the service over HTTP with its signed JWTs."""
    answers = replay_answers(
        (body for _, _, body in fixture_requests()), prefetch_templates(load_knowledge()), fixture_resources()
    )
    work = tmp_path_factory.mktemp("loop")
    clock = scenario_clock("trough-high")
    with FhirStandIn(answers, token="standin-token") as fhir:
        port = free_port()
        cds_url = f"http://127.0.0.1:{port}"
        settings = DevEhrSettings(
            fhir_url=fhir.url,
            fhir_token="standin-token",
            cds_url=cds_url,
            public_url="http://127.0.0.1:9",
            fixtures_dir=FIXTURES_DIR,
            now=lambda: clock,
        )
        config = load_settings(
            {
                "TRUSTED_ISSUERS": {"http://127.0.0.1:9": {"jwks": {"keys": [settings.key.as_dict(private=False)]}}},
                "FEEDBACK_DB": f"sqlite:///{work / 'feedback.sqlite'}",
                "DATA_DIR": str(work / "data"),
                "SMART_APP_ENABLED": False,
                "LOG_LEVEL": "WARNING",
            }
        )
        # The rules and the store run on the scenario's day; the EHR's JWTs are checked against the
        # real clock they were signed by.
        store = Store(str(config.feedback_db), clock=lambda: clock)
        verifier = CallerVerifier(config, store, clock=lambda: datetime.now(UTC))
        service = create_app(config, store=store, verifier=verifier, clock=lambda: clock)
        server = make_server("127.0.0.1", port, service, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield create_dev_ehr(settings).test_client(), service
        finally:
            server.shutdown()
            thread.join(timeout=10)


def _chart(ehr, name: str, hook: str = "order-select") -> str:
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', ehr.get("/").get_data(as_text=True))
    page = ehr.post(f"/chart/{name}/{hook}", data={"csrf_token": token.group(1)})
    assert page.status_code == 200, page.get_data(as_text=True)[-700:]
    return page.get_data(as_text=True)


def _form(page: str, button: str) -> dict[str, str]:
    """The fields of the form holding ``button`` (its text)."""
    for form in re.findall(r'<form[^>]*action="/feedback"[^>]*>(.*?)</form>', page, re.S):
        if button in form:
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
            fields |= dict(
                re.findall(r'<input id="csrf_token" name="(csrf_token)" type="hidden" value="([^"]+)"', form)
            )
            return fields
    raise AssertionError(f"no feedback form with {button!r}")


def test_accepting_a_suggestion_changes_the_draft_and_is_stored(loop):
    ehr, service = loop
    page = _chart(ehr, "sig-text-dose-update")
    assert "Tacrolimus 5 mg/day exceeds the 4 mg/day maximum" in page
    fields = _form(page, "Accept: ")
    suggestion = re.search(r'name="suggestion" value="([^"]+)"[^>]*>Accept: [^<]*Change to 3 mg/day', page).group(1)
    done = ehr.post("/feedback", data={**fields, "suggestion": suggestion})
    assert done.status_code == 200, done.get_data(as_text=True)[:800]
    text = done.get_data(as_text=True)
    assert "Accepted: Change to 3 mg/day" in text
    assert "The service stored 1 feedback entry." in text
    draft = re.search(r'<ul id="draft">(.*?)</ul>', text, re.S).group(1)
    assert "3 mg" in draft and "5 mg" not in draft  # the update rewrote the drafted order's sig
    rows = service.extensions["tacro_cds"].store.feedback_summary(
        "tacrolimus-order-select", issuer="http://127.0.0.1:9"
    )
    assert rows["byKind"]["dose"] == {"accepted": 1}  # kept under the EHR's issuer


def test_overriding_with_a_reason_is_stored_with_that_reason(loop):
    ehr, service = loop
    page = _chart(ehr, "trough-high")
    fields = _form(page, "Override</button>")
    reason = re.search(r'<option value="([^"]*\|clinical-judgement)">', page).group(1)
    done = ehr.post("/feedback", data={**fields, "reason": reason, "comment": "drawn after the dose"})
    assert done.status_code == 200, done.get_data(as_text=True)[:800]
    assert "The service stored 1 feedback entry." in done.get_data(as_text=True)
    rows = service.extensions["tacro_cds"].store.feedback_summary(
        "tacrolimus-order-select", issuer="http://127.0.0.1:9"
    )
    assert rows["byKind"]["trough"] == {"overridden": 1}
    assert [r["code"] for r in rows["overrideReasons"]] == ["clinical-judgement"]


def test_a_reason_the_card_did_not_offer_is_refused_by_the_ehr(loop):
    ehr, _ = loop
    page = _chart(ehr, "trough-high")
    fields = _form(page, "Override</button>")
    assert ehr.post("/feedback", data={**fields, "reason": "|made-up"}).status_code == 400


def test_apply_suggestion_create_update_delete():
    draft = [{"resourceType": "MedicationRequest", "id": "a", "status": "draft"}]
    suggestion = {
        "actions": [
            {"type": "update", "resource": {"resourceType": "MedicationRequest", "id": "a", "status": "draft", "x": 1}},
            {"type": "create", "resource": {"resourceType": "ServiceRequest", "id": "b"}},
            {"type": "delete", "resourceId": "ServiceRequest/b"},
        ]
    }
    assert apply_suggestion(draft, suggestion) == [
        {"resourceType": "MedicationRequest", "id": "a", "status": "draft", "x": 1}
    ]
    assert draft == [{"resourceType": "MedicationRequest", "id": "a", "status": "draft"}]  # the input is unchanged

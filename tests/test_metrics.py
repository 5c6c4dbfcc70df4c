"""``GET /metrics`` in one process: who may scrape it, what each call counts, and which words labels
can hold.

The counters live in the process's default registry and grow across tests: every assertion compares
a value before and after the calls of its own test.
"""

from __future__ import annotations

import ast
import inspect
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from jwt_support import ISSUER, auth_config, bearer, ec_signer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bench.samples import ACCESS_TOKEN, FAKE_JWT, SECRETS, builtin_request, with_secrets
from cards.rules.data_quality import KIND as DATA_QUALITY_KIND
from cards.rules.data_quality import MISSING_KIND
from service.errors import CallerRejection
from service.fhir.client import FhirError
from service.hooks.render import TOPICS
from service.ops import metrics
from service.storage import feedback as feedback_log

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-token-6f1c2b"
SERVICE = "tacrolimus-patient-view"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Any) -> str:
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


@pytest.fixture
def metrics_client(make_app):
    return make_app(METRICS_TOKEN=METRICS_TOKEN).test_client()


# -- who may scrape -----------------------------------------------------------------------------------


def test_metrics_is_not_served_without_a_token_or_open_setting(make_app):
    response = make_app().test_client().get("/metrics")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "headers", [{}, bearer("wrong-token"), {"Authorization": f"Basic {METRICS_TOKEN}"}, {"Authorization": "Bearer "}]
)
def test_metrics_needs_the_metrics_token(metrics_client, headers):
    response = metrics_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_metrics_with_the_token_is_prometheus_text(metrics_client):
    families = {f.name for f in text_string_to_metric_families(scrape(metrics_client))}
    assert {
        "tacro_cds_http_requests",
        "tacro_cds_hook_calls",
        "tacro_cds_hook_call_duration_seconds",
        "tacro_cds_fhir_request_duration_seconds",
        "tacro_cds_fhir_request_failures",
        "tacro_cds_cards_issued",
        "tacro_cds_feedback_stored",
        "tacro_cds_jwt_rejections",
    } <= families


def test_metrics_open_serves_without_a_token(make_app):
    assert make_app(METRICS_OPEN=True).test_client().get("/metrics").status_code == 200


def test_metrics_token_is_not_a_cds_client_jwt(make_app):
    """With caller authentication on, a scraper sends the metrics token, not a JWT."""
    signer = ec_signer()
    client = make_app(METRICS_TOKEN=METRICS_TOKEN, **auth_config(signer)).test_client()
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/metrics", headers=bearer(signer.mint("http://localhost/metrics"))).status_code == 401


# -- what a call counts -------------------------------------------------------------------------------


def test_a_hook_call_is_counted_by_service_hook_and_status_with_its_time_and_cards(metrics_client):
    labels = {"service": SERVICE, "hook": "patient-view", "status": "200"}
    before = value("tacro_cds_hook_calls_total", **labels)
    timed = value("tacro_cds_hook_call_duration_seconds_count", service=SERVICE, hook="patient-view")
    body = builtin_request("patient-view")
    response = metrics_client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert cards
    expected: dict[tuple[str, str], int] = {}
    for card in cards:
        key = (card["source"].get("topic", {}).get("code", MISSING_KIND), card["indicator"])
        expected[key] = expected.get(key, 0) + 1
    issued_before = {
        key: value("tacro_cds_cards_issued_total", service=SERVICE, kind=key[0], indicator=key[1]) for key in expected
    }

    metrics_client.post(f"/cds-services/{SERVICE}", json=body)

    assert value("tacro_cds_hook_calls_total", **labels) == before + 2
    assert value("tacro_cds_hook_call_duration_seconds_count", service=SERVICE, hook="patient-view") == timed + 2
    for key, count in expected.items():
        assert (
            value("tacro_cds_cards_issued_total", service=SERVICE, kind=key[0], indicator=key[1])
            == issued_before[key] + count
        ), key
    text = scrape(metrics_client)
    assert f'tacro_cds_hook_call_duration_seconds_bucket{{hook="patient-view",le="0.5",service="{SERVICE}"}}' in text


def test_a_refused_call_is_counted_with_its_status(metrics_client):
    labels = {"service": SERVICE, "hook": "patient-view", "status": "400"}
    before = value("tacro_cds_hook_calls_total", **labels)
    assert metrics_client.post(f"/cds-services/{SERVICE}", json={"hook": "patient-view"}).status_code == 400
    assert value("tacro_cds_hook_calls_total", **labels) == before + 1


def _hook_calls() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "tacro_cds_hook_calls"
        for sample in family.samples
        if sample.name == "tacro_cds_hook_calls_total"
    )


def test_a_cors_preflight_is_not_a_hook_call(make_app):
    """A browser's OPTIONS before its POST is counted as an HTTP request, not as a call of the service."""
    client = make_app(METRICS_TOKEN=METRICS_TOKEN, CORS_ORIGINS=["https://ehr.example.org"]).test_client()
    calls = _hook_calls()
    preflights = value(
        "tacro_cds_http_requests_total", route="/cds-services/<service_id>", method="OPTIONS", status="200"
    )
    response = client.options(
        f"/cds-services/{SERVICE}",
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == "https://ehr.example.org"
    assert _hook_calls() == calls
    assert (
        value("tacro_cds_http_requests_total", route="/cds-services/<service_id>", method="OPTIONS", status="200")
        == preflights + 1
    )
    assert client.post(f"/cds-services/{SERVICE}", json=builtin_request("patient-view")).status_code == 200
    assert _hook_calls() == calls + 1


def test_an_unknown_service_id_never_becomes_a_label(metrics_client):
    before = value("tacro_cds_hook_calls_total", service="other", hook="other", status="404")
    response = metrics_client.post(f"/cds-services/{FAKE_JWT[:40]}", json=builtin_request("patient-view"))
    assert response.status_code == 404
    assert value("tacro_cds_hook_calls_total", service="other", hook="other", status="404") == before + 1
    unmatched = value("tacro_cds_http_requests_total", route="(unmatched)", method="GET", status="404")
    assert metrics_client.get("/no/such/path/pt-Qz7341").status_code == 404
    assert value("tacro_cds_http_requests_total", route="(unmatched)", method="GET", status="404") == unmatched + 1
    text = scrape(metrics_client)
    assert FAKE_JWT[:40] not in text and "pt-Qz7341" not in text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fhir_fetch_failures_are_counted_by_reason_with_their_time(make_app):
    client = make_app(METRICS_TOKEN=METRICS_TOKEN, ALLOW_HTTP_FHIR="loopback", FHIR_TIMEOUT_S=2.0).test_client()
    body = builtin_request("patient-view")
    del body["prefetch"]
    body["fhirServer"] = f"http://127.0.0.1:{_closed_port()}/fhir"  # nobody listens
    failures = value("tacro_cds_fhir_request_failures_total", reason="fhir-unreachable")
    timed = value("tacro_cds_fhir_request_duration_seconds_count", result="failed")
    unavailable = value("tacro_cds_prefetch_unavailable_total", reason="fhir-unreachable")
    response = client.post(f"/cds-services/{SERVICE}", json=body)
    assert response.status_code in (200, 412)
    fetched = value("tacro_cds_fhir_request_failures_total", reason="fhir-unreachable") - failures
    assert fetched >= 1
    assert value("tacro_cds_fhir_request_duration_seconds_count", result="failed") - timed == fetched
    assert value("tacro_cds_prefetch_unavailable_total", reason="fhir-unreachable") > unavailable


def test_feedback_is_counted_by_outcome_and_refusals_by_reason(metrics_client):
    response = metrics_client.post(f"/cds-services/{SERVICE}", json=builtin_request("patient-view"))
    card = response.get_json()["cards"][0]["uuid"]
    stored = value("tacro_cds_feedback_stored_total", service=SERVICE, outcome="overridden")
    refused = value("tacro_cds_feedback_refused_total", service=SERVICE, reason="unknown-card")
    entry = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:00:00Z"}
    answer = metrics_client.post(
        f"/cds-services/{SERVICE}/feedback", json={"feedback": [entry, {**entry, "card": "never-issued"}]}
    )
    assert answer.get_json() == {"stored": 1, "refused": {"unknown-card": 1}}
    assert value("tacro_cds_feedback_stored_total", service=SERVICE, outcome="overridden") == stored + 1
    assert value("tacro_cds_feedback_refused_total", service=SERVICE, reason="unknown-card") == refused + 1


def test_jwt_rejections_are_counted_by_reason(make_app):
    signer = ec_signer()
    client = make_app(**auth_config(signer)).test_client()
    url = f"/cds-services/{SERVICE}"
    cases = {
        "no-authorization-header": {},
        "malformed-token": bearer("not.a.jwt"),
        "untrusted-issuer": bearer(signer.mint(f"http://localhost{url}", iss="https://other.example")),
        "wrong-audience": bearer(signer.mint("https://elsewhere.example/cds-services")),
        "signature-or-claims-invalid": bearer(signer.mint(f"http://localhost{url}")[:-8] + "AAAAAAAA"),
    }
    for reason, headers in cases.items():
        before = value("tacro_cds_jwt_rejections_total", reason=reason)
        assert client.post(url, json=builtin_request("patient-view"), headers=headers).status_code == 401
        assert value("tacro_cds_jwt_rejections_total", reason=reason) == before + 1, reason


def test_no_patient_data_token_or_issuer_reaches_the_scrape(make_app):
    signer = ec_signer()
    client = make_app(METRICS_TOKEN=METRICS_TOKEN, **auth_config(signer)).test_client()
    for hook, service in (("patient-view", SERVICE), ("order-select", "tacrolimus-order-select")):
        body = with_secrets(builtin_request(hook))
        url = f"http://localhost/cds-services/{service}"
        assert client.post(f"/cds-services/{service}", json=body, headers=bearer(signer.mint(url))).status_code == 200
        client.post(f"/cds-services/{service}", json=body, headers=bearer(FAKE_JWT))  # refused
    text = scrape(client)
    for secret in (*SECRETS, ACCESS_TOKEN, ISSUER, METRICS_TOKEN, "dr-hardening", "draft-tac-1"):
        assert secret not in text, secret


# -- closed vocabularies ------------------------------------------------------------------------------


def test_label_words_outside_a_vocabulary_are_other():
    assert metrics.closed("tacrolimus-order-select", metrics.SERVICES) == "tacrolimus-order-select"
    assert metrics.closed("Patient/123", metrics.SERVICES) == "other"
    assert metrics.closed(None, metrics.HOOKS) == "other"
    assert metrics.reason_code("signature or claims invalid (InvalidSignatureError)") == "signature-or-claims-invalid"
    assert metrics.reason_code("jku not on the issuer's allowlist") == "jku-not-on-the-issuer-s-allowlist"


def test_every_jwt_rejection_reason_has_its_own_label():
    """Each reason a caller is refused with is counted under a label word of its own."""
    labels = [metrics.reason_code(rejection) for rejection in CallerRejection]
    assert len(labels) > 20
    assert len(set(labels)) == len(labels), "two reasons would share a label"
    for rejection in CallerRejection:
        assert metrics.closed(metrics.reason_code(rejection), metrics.JWT_REJECTIONS) != metrics.OTHER, rejection


def test_auth_refuses_a_caller_only_with_a_defined_reason():
    """A reason written as text in service.api.auth would be counted as ``other``: every refusal names
    a CallerRejection."""
    tree = ast.parse((ROOT / "service" / "api" / "auth.py").read_text(encoding="utf-8"))
    refusals = [
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_Rejected"
    ]
    assert len(refusals) > 20
    written = [node.lineno for node in refusals if isinstance(node.args[0], (ast.Constant, ast.JoinedStr))]
    assert not written, f"service/api/auth.py lines {written}: raise _Rejected(CallerRejection.<reason>)"


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_fhir_failure_code_has_its_own_label():
    codes = {FhirError.code} | {c.code for c in _subclasses(FhirError)}
    assert codes == metrics.FHIR_FAILURES
    prefetch_codes = {
        found
        for name in ("prefetch.py", "prefetch_values.py")
        for found in re.findall(
            r'code="([a-z-]+)"|"(prefetch-[a-z-]+)"',
            (ROOT / "service" / "hooks" / name).read_text(encoding="utf-8"),
        )
    }
    assert prefetch_codes  # the scan finds the codes where they are written
    assert {a or b for a, b in prefetch_codes} <= metrics.PREFETCH_REASONS


def test_every_feedback_refusal_and_card_family_has_its_own_label():
    returned = {
        node.value.id
        for node in ast.walk(ast.parse(inspect.getsource(feedback_log._refusal)))
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Name)
    }
    assert {getattr(feedback_log, name) for name in returned} == metrics.FEEDBACK_REFUSALS
    assert set(TOPICS) | {MISSING_KIND, DATA_QUALITY_KIND} == metrics.CARD_FAMILIES

"""`python -m tacro_dev fixtures load` and `python -m tacro_dev demo`, through the command line."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import requests
import responses

from fhir_fixtures import FIXTURES_DIR, load_request, read_json, scenario_dirs
from tacro_dev import demo
from tacro_dev.__main__ import main
from tacro_dev.demo import HOOK_ORDER, format_card
from tacro_dev.fixture_dates import shift_dates

BASE = "http://127.0.0.1:8999/fhir"
ALL = [d.name for d in scenario_dirs()]


def _transaction_response(request):
    bundle = json.loads(request.body)
    entries = [{"response": {"status": "200 OK"}} for _ in bundle["entry"]]
    return 200, {}, json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


# ---- fixtures load ---------------------------------------------------------------------------------


@responses.activate
def test_load_posts_every_scenario_with_the_token_and_shows_progress(capsys):
    responses.add_callback(responses.POST, BASE, callback=_transaction_response)
    assert main(["fixtures", "load", "--fhir-server", BASE + "/", "--token", "T0K"]) == 0
    assert len(responses.calls) == len(ALL)
    for call in responses.calls:
        assert call.request.headers["Authorization"] == "Bearer T0K"
        bundle = json.loads(call.request.body)
        assert bundle["type"] == "transaction"
        assert {e["request"]["method"] for e in bundle["entry"]} == {"PUT"}  # PUT with ids: idempotent
    out = capsys.readouterr().out
    assert f"[ 1/{len(ALL)}] {ALL[0]}" in out and f"all {len(ALL)} scenario(s) loaded" in out


@responses.activate
def test_load_one_scenario_without_token(capsys):
    responses.add_callback(responses.POST, BASE, callback=_transaction_response)
    assert main(["fixtures", "load", "--fhir-server", BASE, "--scenario", "units-si"]) == 0
    assert len(responses.calls) == 1 and "Authorization" not in responses.calls[0].request.headers
    assert "units-si" in capsys.readouterr().out


@responses.activate
def test_load_unreachable_server_fails_clearly_and_stops(capsys):
    responses.add(responses.POST, BASE, body=requests.ConnectionError("refused"))
    assert main(["fixtures", "load", "--fhir-server", BASE]) == 1
    assert len(responses.calls) == 1  # no point trying the other scenarios
    captured = capsys.readouterr()
    assert f"cannot reach the FHIR server at {BASE}" in captured.out
    assert f"{len(ALL)} of {len(ALL)} scenario(s) not loaded" in captured.err


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "structure", "diagnostics": "Entry 3: bad subject"}],
            },
            "HTTP 400: Entry 3: bad subject",
        ),
        (401, {"resourceType": "OperationOutcome", "issue": []}, "refused the upload (401)"),
        (500, None, "HTTP 500: not a FHIR response"),
        (
            200,
            {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [{"response": {"status": "400 Bad Request"}}],
            },
            "unexpected transaction response",
        ),
    ],
    ids=["operation-outcome", "unauthorised", "not-fhir", "short-response"],
)
@responses.activate
def test_load_failure_exits_non_zero_naming_the_scenario(capsys, status, body, message):
    responses.add(responses.POST, BASE, status=status, body=json.dumps(body) if body else "oops")
    assert main(["fixtures", "load", "--fhir-server", BASE, "--scenario", "rif-eligible"]) == 1
    out = capsys.readouterr().out
    assert "rif-eligible" in out and "FAILED" in out and message in out


@pytest.mark.parametrize(
    "args",
    [
        ["--fhir-server", "ftp://x"],
        ["--fhir-server", BASE, "--scenario", "nope"],
        ["--fhir-server", BASE, "--dir", "/nonexistent"],
    ],
    ids=["bad-url", "unknown-scenario", "missing-dir"],
)
def test_load_usage_errors_exit_2(capsys, args):
    assert main(["fixtures", "load", *args]) == 2
    assert capsys.readouterr().err.strip()


# ---- demo --------------------------------------------------------------------------------------------


def test_demo_in_process_prints_every_hook_of_the_scenario(capsys):
    assert main(["demo", "--scenario", "rif-eligible", "--scenario", "sandbox-incomplete-draft"]) == 0
    out = capsys.readouterr().out
    assert "2 scenario(s) against in-process service" in out
    for name in ("rif-eligible", "sandbox-incomplete-draft"):
        assert f"== {name}: " in out
    assert out.count("   order-select: ") == 2 and out.count("   patient-view: ") == 2


def test_demo_every_scenario_answers(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert all(f"== {name}: " in out for name in ALL) and "HTTP" not in out


CARD = {
    "uuid": "u1",
    "summary": "Fluconazole raises tacrolimus levels up to 5-fold",
    "indicator": "critical",
    "source": {"label": "tacro-cds"},
    "suggestions": [
        {
            "label": "Reduce tacrolimus to 1 mg/day",
            "uuid": "u2",
            "isRecommended": True,
            "actions": [
                {"type": "update", "description": "d", "resource": {"resourceType": "MedicationRequest"}},
                {"type": "create", "description": "d", "resource": {"resourceType": "ServiceRequest"}},
            ],
        },
        {
            "label": "Remove the fluconazole order",
            "uuid": "u3",
            "actions": [{"type": "delete", "description": "d", "resourceId": "MedicationRequest/x"}],
        },
    ],
    "links": [{"label": "Prograf label", "url": "https://example.org", "type": "absolute"}],
}


def test_format_card_shows_indicator_summary_and_suggestion_actions():
    assert format_card(CARD) == [
        "[CRITICAL] Fluconazole raises tacrolimus levels up to 5-fold",
        "             -> Reduce tacrolimus to 1 mg/day (recommended): update MedicationRequest, create ServiceRequest",
        "             -> Remove the fluconazole order: delete MedicationRequest/x",
        "             link: Prograf label (absolute)",
    ]


@responses.activate
def test_demo_over_http(capsys):
    url = "http://127.0.0.1:8998"
    responses.add(
        responses.GET,
        f"{url}/cds-services",
        json={
            "services": [
                {"hook": h, "id": f"svc-{h}", "description": "d"}
                for h in ("order-select", "order-sign", "patient-view")
            ]
        },
    )
    responses.add(responses.POST, f"{url}/cds-services/svc-order-select", json={"cards": [CARD]})
    responses.add(responses.POST, f"{url}/cds-services/svc-order-sign", json={"cards": []})
    responses.add(
        responses.POST,
        f"{url}/cds-services/svc-patient-view",
        status=412,
        json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "no data"}]},
    )
    assert main(["demo", "--url", url + "/cds-services", "--scenario", "azole-fluconazole"]) == 1
    out = capsys.readouterr().out
    assert "order-select: 1 card(s)" in out and "[CRITICAL] Fluconazole" in out
    assert "order-sign: no cards" in out and "patient-view: HTTP 412 no data" in out
    sent = json.loads(responses.calls[1].request.body)
    assert sent["hook"] == "order-select" and sent["context"]["patientId"] == "azole-fluconazole"


def _discovery_and_empty_answers(url: str) -> None:
    responses.add(
        responses.GET,
        f"{url}/cds-services",
        json={"services": [{"hook": h, "id": f"svc-{h}", "description": "d"} for h in HOOK_ORDER]},
    )
    for hook in HOOK_ORDER:
        responses.add(responses.POST, f"{url}/cds-services/svc-{hook}", json={"cards": []})


@responses.activate
def test_demo_over_http_moves_the_dates_to_today(monkeypatch, capsys):
    """A running service reads its own clock: every date of the request moves by today - asOf, as the
    dev EHR moves the charts, so the scenario reads as it was written."""
    url = "http://127.0.0.1:8998"
    _discovery_and_empty_answers(url)
    as_of = date.fromisoformat(read_json(FIXTURES_DIR / "azole-fluconazole" / "scenario.json")["asOf"])
    monkeypatch.setattr(demo, "today", lambda: as_of + timedelta(days=40))
    assert main(["demo", "--url", url, "--scenario", "azole-fluconazole"]) == 0
    assert "dates moved to read as of" in capsys.readouterr().out
    sent = {json.loads(c.request.body)["hook"]: json.loads(c.request.body) for c in responses.calls[1:]}
    for hook, body in sent.items():
        written = load_request("azole-fluconazole", hook)
        assert body == shift_dates(written, 40) != written, hook


@responses.activate
def test_demo_over_http_without_shift_sends_the_dates_as_written(monkeypatch):
    url = "http://127.0.0.1:8998"
    _discovery_and_empty_answers(url)
    monkeypatch.setattr(demo, "today", lambda: date(2099, 1, 1))
    assert main(["demo", "--url", url, "--scenario", "azole-fluconazole", "--no-shift"]) == 0
    for call in responses.calls[1:]:
        body = json.loads(call.request.body)
        assert body == load_request("azole-fluconazole", body["hook"])

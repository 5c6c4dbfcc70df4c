"""The development EHR: its SMART authorization server (Authlib; PKCE required, aud checked, launch
context in the token response), its FHIR proxy (token and patient compartment enforced), the
loopback-only rule, and fixture date shifting."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from fhir_fixtures import FIXTURES_DIR
from tacro_dev.__main__ import main
from tacro_dev.dev_ehr import DevEhrSettings, create_dev_ehr
from tacro_dev.fixture_dates import shift_dates, shift_value

PUBLIC = "http://127.0.0.1:8090"
UPSTREAM = "http://127.0.0.1:9999/fhir"
REDIRECT = "http://127.0.0.1:8080/smart/callback"
VERIFIER = "v" * 50


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def ehr():
    app = create_dev_ehr(
        DevEhrSettings(
            fhir_url=UPSTREAM,
            fhir_token="upstream-token",
            cds_url="http://127.0.0.1:8080",
            public_url=PUBLIC,
            fixtures_dir=FIXTURES_DIR,
        )
    )
    app.config["WTF_CSRF_ENABLED"] = False  # the forms' CSRF is Flask-WTF's; these tests drive the OAuth flow
    return app


def authorize_params(**extra):
    params = {
        "response_type": "code",
        "client_id": "tacro-cds",
        "redirect_uri": REDIRECT,
        "state": "s1",
        "scope": "launch patient/Observation.rs",
        "aud": PUBLIC + "/fhir",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def launch_id(client) -> str:
    response = client.post(
        "/launch",
        data={
            "url": "http://127.0.0.1:8080/smart/launch",
            "patient": "trough-high",
            "app_context": '{"patientId":"trough-high"}',
        },
    )
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["iss"] == [PUBLIC + "/fhir"]
    return query["launch"][0]


def code_for(client, **extra) -> str:
    launch = launch_id(client)
    response = client.post(
        "/oauth/authorize", query_string=authorize_params(launch=launch, **extra), data={"decision": "allow"}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def test_code_flow_with_pkce_returns_the_launch_context(ehr):
    client = ehr.test_client()
    code = code_for(client)
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "tacro-cds",
            "code_verifier": VERIFIER,
        },
    )
    body = token.get_json()
    assert token.status_code == 200, body
    assert body["token_type"] == "Bearer" and body["patient"] == "trough-high"
    assert body["appContext"] == '{"patientId":"trough-high"}' and body["need_patient_banner"] is True


def test_wrong_verifier_gets_no_token(ehr):
    client = ehr.test_client()
    code = code_for(client)
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "tacro-cds",
            "code_verifier": "w" * 50,
        },
    )
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_grant"


def test_pkce_is_required(ehr):
    client = ehr.test_client()
    response = client.get(
        "/oauth/authorize", query_string=authorize_params(code_challenge=None, code_challenge_method=None)
    )
    assert response.status_code == 400


def test_aud_must_be_this_ehrs_fhir_base(ehr):
    response = ehr.test_client().get("/oauth/authorize", query_string=authorize_params(aud="https://elsewhere/fhir"))
    assert response.status_code == 400 and "aud must be" in response.get_data(as_text=True)


def test_deny_redirects_with_access_denied(ehr):
    client = ehr.test_client()
    response = client.post(
        "/oauth/authorize", query_string=authorize_params(launch=launch_id(client)), data={"decision": "deny"}
    )
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == ["access_denied"]


def test_launch_only_to_the_services_own_app(ehr):
    response = ehr.test_client().post("/launch", data={"url": "https://evil.example.org/launch", "patient": "p"})
    assert response.status_code == 400


def _token(client) -> str:
    code = code_for(client)
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "tacro-cds",
            "code_verifier": VERIFIER,
        },
    ).get_json()["access_token"]


def test_fhir_proxy_enforces_token_and_patient_compartment(ehr):
    client = ehr.test_client()
    access = _token(client)
    assert client.get("/fhir/Patient/trough-high").status_code == 401
    auth = {"Authorization": f"Bearer {access}"}
    assert client.get("/fhir/Patient/other", headers=auth).status_code == 403
    assert client.get("/fhir/Observation?patient=other", headers=auth).status_code == 403
    assert client.get("/fhir/Observation", headers=auth).status_code == 403
    with responses.RequestsMock() as rsps:
        rsps.get(
            re.compile(re.escape(UPSTREAM) + r"/Observation\?patient=trough-high.*"),
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [{"relation": "self", "url": UPSTREAM + "/Observation?patient=trough-high"}],
            },
            match=[responses.matchers.header_matcher({"Authorization": "Bearer upstream-token"})],
        )
        ok = client.get("/fhir/Observation?patient=trough-high&_count=5", headers=auth)
        rsps.get(
            UPSTREAM + "/MedicationRequest/theirs",
            json={"resourceType": "MedicationRequest", "id": "theirs", "subject": {"reference": "Patient/other"}},
        )
        rsps.get(
            UPSTREAM + "/MedicationRequest/hers",
            json={"resourceType": "MedicationRequest", "id": "hers", "subject": {"reference": "Patient/trough-high"}},
        )
        theirs = client.get("/fhir/MedicationRequest/theirs", headers=auth)
        hers = client.get("/fhir/MedicationRequest/hers", headers=auth)
    assert ok.status_code == 200
    assert ok.get_json()["link"][0]["url"].startswith(PUBLIC + "/fhir/")
    assert theirs.status_code == 403 and hers.status_code == 200


def test_smart_configuration_advertises_pkce_and_v2(ehr):
    conf = ehr.test_client().get("/fhir/.well-known/smart-configuration").get_json()
    assert conf["code_challenge_methods_supported"] == ["S256"] and "permission-v2" in conf["capabilities"]
    assert conf["token_endpoint"] == PUBLIC + "/oauth/token"


def test_dev_ehr_refuses_a_non_loopback_address(capsys):
    assert main(["dev-ehr", "--fhir-server", UPSTREAM, "--host", "0.0.0.0", "--no-load"]) == 2
    assert "refuses to listen" in capsys.readouterr().err


def test_shift_dates_moves_dates_and_datetimes_only():
    resource = {
        "effectiveDateTime": "2026-11-23T08:00:00Z",
        "birthDate": "1990-05-01",
        "id": "2026-11-23x",
        "valueString": "2026",
        "period": {"start": "2026-11-20T08:00:00+09:00"},
        "n": 3,
    }
    moved = shift_dates(resource, 10)
    assert moved["effectiveDateTime"] == "2026-12-03T08:00:00Z"
    assert moved["period"]["start"] == "2026-11-30T08:00:00+09:00"
    assert moved["birthDate"] == "1990-05-11"
    assert moved["id"] == "2026-11-23x" and moved["valueString"] == "2026" and moved["n"] == 3
    assert shift_value("2026-02-30", 1) == "2026-02-30"  # not a date: left alone


def test_fixtures_load_can_shift_to_today(monkeypatch):
    from pathlib import Path

    from tacro_dev import fixtures as fixtures_cli

    sent = []
    monkeypatch.setattr(fixtures_cli, "load_scenario", lambda session, base, bundle: sent.append(bundle) or 1)
    fixtures_cli.load_all(
        "http://127.0.0.1:1/fhir", None, Path(FIXTURES_DIR), ["trough-high"], shift_to=date(2026, 12, 5)
    )  # asOf 2026-11-25: ten days later
    text = str(sent[0])
    assert "2026-12-03" in text  # the trough of two days before asOf is two days before the new day
    assert "2026-11-23T" not in text


@pytest.mark.parametrize("host", ["127.evil.example", "127.0.0.1.nip.io", "127.", "0.0.0.0", "10.0.0.5"])
def test_dev_ehr_reads_loopback_as_an_address_not_a_prefix(capsys, host):
    assert main(["dev-ehr", "--fhir-server", UPSTREAM, "--host", host, "--no-load"]) == 2
    assert "refuses to listen" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "localhost.", "0x7f000001"])
def test_loopback_addresses_are_loopback(host):
    from service.fhir.policy import is_loopback_host

    assert is_loopback_host(host)


def test_patient_picker_takes_only_a_listed_patient(ehr):
    client = ehr.test_client()
    launched = client.post("/launch", data={"url": "http://127.0.0.1:8080/smart/launch", "patient": "no-such-one"})
    assert launched.status_code == 400
    consent = client.post(
        "/oauth/authorize",
        query_string=authorize_params(),
        data={"decision": "allow", "patient": "../Observation?_type=Patient"},
    )
    assert consent.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Medication/m1?_type=Patient",
        "/fhir/Medication?patient=trough-high&_type=Patient",
        "/fhir/Observation?patient=trough-high&_include=*",
        "/fhir/Observation?patient=trough-high&subject:Patient.name=x",
        "/fhir/Observation?patient=trough-high&_has:Observation:patient:code=x",
    ],
)
def test_fhir_proxy_forwards_no_parameter_that_widens_the_query(ehr, path):
    client = ehr.test_client()
    auth = {"Authorization": f"Bearer {_token(client)}"}
    with responses.RequestsMock() as rsps:  # any upstream call would fail the test: none is registered
        response = client.get(path, headers=auth)
        assert len(rsps.calls) == 0
    assert response.status_code in (400, 403)

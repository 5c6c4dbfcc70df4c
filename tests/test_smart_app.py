"""The SMART app (service.smart_app) against a fake EHR (tests/smart_doubles.py, on `responses`):
EHR and standalone launch, PKCE, state, aud, scopes v1/v2, token checks, expiry and refresh, FHIR
failures during the page load, security headers, and the cards' smart links."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey
from smart_doubles import AUTHORIZE, ISS, JWKS_URL, FakeEhr, s256


@pytest.fixture
def smart_app(make_app, tmp_path):
    def factory(**overrides):
        config = {
            "SMART_SESSION_DIR": str(tmp_path / "sessions"),
            "SECRET_KEY": "test-secret",
            "SMART_COOKIE_SECURE": False,
            "LOG_LEVEL": "INFO",
            "SMART_ISSUERS": [ISS],
        }
        config.update(overrides)
        return make_app(**config)

    return factory


@pytest.fixture
def ehr():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeEhr(rsps)


def launch(client, ehr, **params):
    query = {"iss": ISS, "launch": "launch-xyz"}
    query.update(params)
    response = client.get("/smart/launch", query_string={k: v for k, v in query.items() if v is not None})
    assert response.status_code == 302, response.get_data(as_text=True)
    return ehr.note_authorize(response.headers["Location"])


def sign_in(client, ehr, **params):
    ehr.install()
    sent = launch(client, ehr, **params)
    response = client.get("/smart/callback", query_string={"code": "code-1", "state": sent["state"]})
    if response.status_code == 303:
        client.page_url = response.headers["Location"]
    return sent, response


def page_of(client):
    """The page of the client's last signed-in launch (each launch has its own page)."""
    return getattr(client, "page_url", "/smart/")


def test_ehr_launch_sends_pkce_s256_aud_and_launch_then_shows_the_page(smart_app, ehr):
    client = smart_app().test_client()
    sent, response = sign_in(client, ehr)
    assert sent["response_type"] == "code" and sent["client_id"] == "tacro-cds"
    assert sent["aud"] == ISS and sent["launch"] == "launch-xyz"
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["redirect_uri"] == "http://localhost/smart/callback"
    # The token endpoint double accepted the code only with the verifier matching the challenge.
    assert s256(ehr.token_requests[0]["code_verifier"]) == sent["code_challenge"]
    assert response.status_code == 303 and "/smart/view/" in response.headers["Location"]
    page = client.get(page_of(client))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Tacrolimus troughs" in html and 'id="trough-chart"' in html and 'id="trough-table"' in html
    assert "16.2" in html  # the high trough of the fixture, in the value table
    assert 'class="banner"' in html
    assert "at-1" not in html  # the access token never reaches the browser


def test_scopes_are_v2_unless_the_server_speaks_only_v1(smart_app, ehr):
    client = smart_app().test_client()
    sent = launch(client, ehr.install())
    scopes = sent["scope"].split()
    assert {
        "launch",
        "openid",
        "fhirUser",
        "patient/Observation.rs",
        "patient/Patient.r",
        "patient/MedicationRequest.rs",
        "patient/Condition.rs",
        "patient/ServiceRequest.rs",
    } <= set(scopes)
    assert not any(s.endswith(".read") for s in scopes)


def test_v1_only_server_gets_v1_scopes(smart_app):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        ehr = FakeEhr(rsps, capabilities=["launch-ehr", "client-public", "permission-v1"]).install()
        sent = launch(smart_app().test_client(), ehr)
    scopes = sent["scope"].split()
    assert "patient/Observation.read" in scopes and "patient/Patient.read" in scopes
    assert not any(s.endswith((".rs", ".r")) for s in scopes)


def test_state_that_does_not_match_the_launch_is_refused(smart_app, ehr):
    client = smart_app().test_client()
    launch(client, ehr.install())
    response = client.get("/smart/callback", query_string={"code": "code-1", "state": "forged-state"})
    assert response.status_code == 400
    assert "does not match a launch" in response.get_data(as_text=True)
    assert ehr.token_requests == []  # no code was traded
    assert client.get(page_of(client)).status_code == 401


def test_state_from_another_browser_session_is_refused(smart_app, ehr):
    app = smart_app()
    victim, attacker = app.test_client(), app.test_client()
    sent = launch(attacker, ehr.install())
    response = victim.get("/smart/callback", query_string={"code": "code-1", "state": sent["state"]})
    assert response.status_code == 400 and ehr.token_requests == []


def test_state_is_single_use(smart_app, ehr):
    client = smart_app().test_client()
    sent, first = sign_in(client, ehr)
    assert first.status_code == 303
    again = client.get("/smart/callback", query_string={"code": "code-1", "state": sent["state"]})
    assert again.status_code == 400


def test_denied_authorization_gives_a_clear_page(smart_app, ehr):
    client = smart_app().test_client()
    sent = launch(client, ehr.install())
    response = client.get("/smart/callback", query_string={"error": "access_denied", "state": sent["state"]})
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "Access was not granted" in html and "Launch the app again" in html
    assert ehr.token_requests == []


def test_token_response_without_patient_is_refused(smart_app, ehr):
    ehr.drop_patient = True
    client = smart_app().test_client()
    _, response = sign_in(client, ehr)
    assert response.status_code == 502
    assert "did not say which patient" in response.get_data(as_text=True)
    assert client.get(page_of(client)).status_code == 401


def _id_token(key: RSAKey, aud: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"alg": "RS256", "kid": key.kid},
        {
            "iss": "https://ehr.example.org",
            "aud": aud,
            "sub": "u1",
            "iat": now,
            "exp": now + 300,
            "fhirUser": "Practitioner/1",
        },
        key,
    )


@pytest.mark.parametrize(("aud", "accepted"), [("tacro-cds", True), ("another-app", False)])
def test_id_token_must_be_for_this_client(smart_app, ehr, aud, accepted):
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    ehr.rsps.get(JWKS_URL, json={"keys": [key.as_dict(private=False)]})
    ehr.id_token = _id_token(key, aud)
    _, response = sign_in(smart_app().test_client(), ehr)
    assert response.status_code == (303 if accepted else 502)


def test_launch_for_another_fhir_server_gets_the_aud_of_that_server(smart_app):
    other = "https://other-ehr.example.org/r4"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            other + "/.well-known/smart-configuration",
            json={
                "authorization_endpoint": AUTHORIZE,
                "token_endpoint": "https://ehr.example.org/oauth/token",
                "capabilities": ["permission-v2"],
            },
        )
        app = smart_app(SMART_ISSUERS=[ISS, other])
        response = app.test_client().get("/smart/launch", query_string={"iss": other, "launch": "l"})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["aud"] == [other]


def test_launch_without_iss_is_a_clear_400(smart_app):
    client = smart_app().test_client()
    with_launch = client.get("/smart/launch", query_string={"launch": "abc"})
    assert with_launch.status_code == 400 and "no iss" in with_launch.get_data(as_text=True)
    bare = client.get("/smart/launch")
    assert bare.status_code == 400 and "starts from your EHR" in bare.get_data(as_text=True)


def test_standalone_launch_uses_the_configured_server_and_launch_patient_scope(smart_app, ehr):
    client = smart_app(SMART_STANDALONE_ISS=ISS).test_client()
    ehr.install()
    response = client.get("/smart/launch")
    sent = ehr.note_authorize(response.headers["Location"])
    assert "launch" not in sent and "launch/patient" in sent["scope"].split() and sent["aud"] == ISS


def test_plain_http_iss_follows_allow_http_fhir(smart_app):
    refused = (
        smart_app()
        .test_client()
        .get("/smart/launch", query_string={"iss": "http://ehr.example.org/fhir", "launch": "l"})
    )
    assert refused.status_code == 400 and "not allowed" in refused.get_data(as_text=True)
    with responses.RequestsMock() as rsps:
        base = "http://127.0.0.1:9999/fhir"
        rsps.get(
            base + "/.well-known/smart-configuration",
            json={
                "authorization_endpoint": "http://127.0.0.1:9999/authorize",
                "token_endpoint": "http://127.0.0.1:9999/token",
                "capabilities": ["permission-v2"],
            },
        )
        allowed = (
            smart_app(ALLOW_HTTP_FHIR="loopback", SMART_ISSUERS=[])  # development: the EHR on this machine
            .test_client()
            .get("/smart/launch", query_string={"iss": base, "launch": "l"})
        )
    assert allowed.status_code == 302


def test_expired_token_is_refreshed_when_a_refresh_token_was_granted(smart_app, ehr):
    ehr.expires_in = 0
    ehr.refresh_token = "rt-1"
    client = smart_app().test_client()
    sign_in(client, ehr)
    page = client.get(page_of(client))
    assert page.status_code == 200
    assert ehr.token_requests[-1]["grant_type"] == "refresh_token"
    assert ehr.access_token == "at-refreshed"


def test_expired_token_without_refresh_asks_to_launch_again(smart_app, ehr):
    ehr.expires_in = 0
    client = smart_app().test_client()
    sign_in(client, ehr)
    page = client.get(page_of(client))
    assert page.status_code == 401
    assert "Launch the app again" in page.get_data(as_text=True)
    assert ehr.fhir_calls == 0


def test_refused_refresh_asks_to_launch_again(smart_app, ehr):
    ehr.expires_in = 0
    ehr.refresh_token = "rt-1"
    client = smart_app().test_client()
    sign_in(client, ehr)
    ehr.refresh_token = "rt-revoked"
    assert client.get(page_of(client)).status_code == 401


def test_fhir_401_during_the_page_load_asks_to_launch_again_and_ends_the_session(smart_app, ehr):
    client = smart_app().test_client()
    sign_in(client, ehr)
    ehr.access_token = "revoked-by-the-ehr"
    page = client.get(page_of(client))
    assert page.status_code == 401 and "Launch the app again" in page.get_data(as_text=True)
    calls = ehr.fhir_calls
    assert client.get(page_of(client)).status_code == 401 and ehr.fhir_calls == calls  # the token was forgotten


def test_fhir_403_during_the_page_load_is_a_clear_page(smart_app, ehr):
    client = smart_app().test_client()
    sign_in(client, ehr)
    ehr.fhir_status = 403
    page = client.get(page_of(client))
    assert page.status_code == 502 and "403" in page.get_data(as_text=True)


def test_fhir_timeout_during_the_page_load_is_a_clear_page(smart_app, ehr):
    client = smart_app().test_client()
    sign_in(client, ehr)
    ehr.fhir_exception = requests.exceptions.ReadTimeout("slow")
    page = client.get(page_of(client))
    assert page.status_code == 504 and "did not answer in time" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)


def test_app_context_order_is_highlighted(smart_app, ehr):
    ehr.scenario = "trough-high"
    ehr.token_extra = {"appContext": '{"patientId":"trough-high","orderId":"MedicationRequest/trough-high-med13"}'}
    client = smart_app().test_client()
    sign_in(client, ehr)
    html = client.get(page_of(client)).get_data(as_text=True)
    assert 'class="order-row"' in html and "the order the card was about" in html


def test_app_context_order_not_on_the_server_is_said(smart_app, ehr):
    ehr.token_extra = {"appContext": {"patientId": "trough-high", "orderId": "MedicationRequest/unsaved-draft"}}
    client = smart_app().test_client()
    sign_in(client, ehr)
    html = client.get(page_of(client)).get_data(as_text=True)
    assert "MedicationRequest/unsaved-draft" in html and "is not on the FHIR server" in html


def test_unsigned_draft_order_is_reviewed_as_order_select_reviews_it(smart_app, ehr):
    import json

    from fhir_fixtures import FIXTURES_DIR

    scenario = json.loads((FIXTURES_DIR / "sig-text-dose-update" / "scenario.json").read_text())
    draft = scenario["hooks"]["order-select"]["context"]["draftOrders"]["entry"][0]["resource"]
    ehr.scenario = "sig-text-dose-update"
    ehr.extra_resources = [draft]
    ehr.token_extra = {
        "appContext": json.dumps({"patientId": "sig-text-dose-update", "orderId": f"MedicationRequest/{draft['id']}"})
    }
    client = smart_app().test_client()
    sign_in(client, ehr)
    html = client.get(page_of(client)).get_data(as_text=True)
    assert 'class="order-row"' in html and "<td>draft</td>" in html
    assert "card-order" in html  # the dose card about that order (5 mg/day over the maximum) is marked
    # Each card names its sources once: the detail's closing "Source:" line is not repeated below it.
    cards = html.split('<li class="card ')[1:]
    assert cards and all(card.count("Source:") == 1 for card in cards), [c.count("Source:") for c in cards]


def test_euploid_transfer_draws_its_cut_off(smart_app, ehr):
    ehr.scenario = "euploid-transfer"
    client = smart_app().test_client()
    sign_in(client, ehr)
    html = client.get(page_of(client)).get_data(as_text=True)
    assert "cut-off 10.3; cut-off 11.8 (euploid transfer)" in html
    assert "below cut-off" in html  # 11.2 is read against 11.8
    assert "<td>11.2</td>" in html and "{ratio}" not in html  # values as a reader writes them, no UCUM braces


def test_missing_data_states(smart_app, ehr):
    ehr.scenario = "rif-eligible"
    client = smart_app().test_client()
    sign_in(client, ehr)
    html = client.get(page_of(client)).get_data(as_text=True)
    assert 'id="no-tacrolimus"' in html and 'id="trough-missing"' in html
    assert 'id="ratio-chart"' in html  # a candidate has a ratio


def test_security_headers_and_session_cookie(smart_app, ehr):
    client = smart_app(SMART_COOKIE_SECURE=True, SMART_FRAME_ANCESTORS=["https://ehr.example.org"]).test_client()
    ehr.install()
    response = client.get("/smart/launch", query_string={"iss": ISS, "launch": "l"})
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors https://ehr.example.org" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/smart" in cookie
    # The pending launch travels encrypted: neither the verifier nor the token endpoint is readable.
    value = cookie.split(";")[0].split("=", 1)[1]
    assert "code_verifier" not in value and "ehr.example.org" not in value and len(value) < 4096
    sent, signed_in = sign_in(client, ehr)
    session_cookie = [c for c in signed_in.headers.getlist("Set-Cookie") if c.startswith("tacro_cds_smart=")][0]
    assert len(session_cookie.split(";")[0]) < 100  # an opaque id: the tokens stay on the server


def test_sign_out_needs_the_csrf_token(smart_app, ehr):
    client = smart_app().test_client()
    sign_in(client, ehr)
    assert client.post("/smart/sign-out").status_code == 400
    assert client.get(page_of(client)).status_code == 200


def test_tokens_are_not_logged(smart_app, ehr, caplog):
    caplog.set_level(logging.DEBUG)
    client = smart_app().test_client()
    sign_in(client, ehr)
    client.get(page_of(client))
    assert "at-1" not in caplog.text and "code-1" not in caplog.text


def test_cards_link_to_the_built_in_app_by_default(make_app, tmp_path):
    from fhir_fixtures import load_request

    app = make_app(SMART_SESSION_DIR=str(tmp_path / "s"))
    body = (
        app.test_client()
        .post("/cds-services/tacrolimus-patient-view", json=load_request("trough-high", "patient-view"))
        .get_json()
    )
    links = [link for card in body["cards"] for link in card.get("links", []) if link["type"] == "smart"]
    assert links and all(link["url"] == "http://localhost/smart/launch" for link in links)
    assert '"patientId":"trough-high"' in links[0]["appContext"]


def test_smart_app_url_overrides_and_the_app_can_be_turned_off(make_app, tmp_path):
    from fhir_fixtures import load_request

    body = (
        make_app(SMART_APP_URL="https://apps.example.org/launch", SMART_SESSION_DIR=str(tmp_path / "s"))
        .test_client()
        .post("/cds-services/tacrolimus-patient-view", json=load_request("trough-high", "patient-view"))
        .get_json()
    )
    assert {link["url"] for c in body["cards"] for link in c.get("links", [])} == {"https://apps.example.org/launch"}
    off = make_app(SMART_APP_ENABLED=False)
    body = (
        off.test_client()
        .post("/cds-services/tacrolimus-patient-view", json=load_request("trough-high", "patient-view"))
        .get_json()
    )
    assert not any(c.get("links") for c in body["cards"])
    assert off.test_client().get("/smart/launch", query_string={"iss": ISS}).status_code == 404


def test_generated_secret_key_is_shared_by_apps_on_one_instance_folder(tmp_path):
    from flask import Flask

    from service.config import default_settings
    from service.smart_app import _secret_key

    first, second = Flask("a", instance_path=str(tmp_path)), Flask("b", instance_path=str(tmp_path))
    key = _secret_key(first, default_settings())
    assert len(key) > 40 and _secret_key(second, default_settings()) == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]


def test_confidential_client_with_a_secret_uses_basic_authentication(smart_app, ehr):
    import base64

    ehr.public_client = False
    _, response = sign_in(smart_app(SMART_CLIENT_SECRET="s3cret").test_client(), ehr)
    assert response.status_code == 303
    expected = "Basic " + base64.b64encode(b"tacro-cds:s3cret").decode()
    assert ehr.token_headers[0]["Authorization"] == expected
    assert "s3cret" not in str(ehr.token_requests[0])


def test_confidential_client_with_a_private_key_sends_a_signed_assertion(smart_app, ehr, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from joserfc import jwt as jose_jwt
    from smart_doubles import TOKEN_URL

    key = RSAKey.generate_key(2048)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "client.pem").write_bytes(pem)
    ehr.public_client = False
    _, response = sign_in(
        smart_app(
            SMART_CLIENT_PRIVATE_KEY_FILE=str(tmp_path / "client.pem"), SMART_CLIENT_KEY_ID="app-key-1"
        ).test_client(),
        ehr,
    )
    assert response.status_code == 303
    form = ehr.token_requests[0]
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    token = jose_jwt.decode(form["client_assertion"], key, algorithms=["RS384"])
    assert token.header["kid"] == "app-key-1" and token.header["alg"] == "RS384"
    assert token.claims["iss"] == token.claims["sub"] == "tacro-cds" and token.claims["aud"] == TOKEN_URL


def test_hook_calls_never_touch_the_smart_session_store(smart_app, ehr, monkeypatch):
    """A CDS Hooks call (even one sent with the app's cookie) neither reads nor writes the app's
    server-side sessions and sets no cookie; the app's own pages still use them."""
    from bench.samples import builtin_request
    from service.smart_app import COOKIE_NAME

    app = smart_app()
    client = app.test_client()
    sign_in(client, ehr)
    cookie = client.get_cookie(COOKIE_NAME, path="/smart")
    assert cookie is not None
    store = app.config["SESSION_CACHELIB"]
    touched: list[str] = []
    for name in ("get", "set", "add", "delete", "has"):
        original = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, _o=original, _n=name, **k: (touched.append(_n), _o(*a, **k))[1])
    # A client of its own, so the header is sent as given (the browser's jar keeps it for /smart).
    response = app.test_client(use_cookies=False).post(
        "/cds-services/tacrolimus-patient-view",
        json=builtin_request("patient-view"),
        headers={"Cookie": f"{COOKIE_NAME}={cookie.value}"},
    )
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert touched == []
    client.get(page_of(client))
    assert "get" in touched  # the app's page reads its session


def test_the_cards_smart_link_names_the_app_as_its_page_does(smart_app, ehr):
    from service.hooks.render import SMART_LINK_LABEL

    client = smart_app().test_client()
    sign_in(client, ehr)
    header = client.get(page_of(client)).get_data(as_text=True)
    assert '<span class="app-name">Tacrolimus monitor</span>' in header
    assert "Tacrolimus monitor" in SMART_LINK_LABEL and "planner" not in SMART_LINK_LABEL

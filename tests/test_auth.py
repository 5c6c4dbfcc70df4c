"""Caller authentication (CDS Hooks 2.0 "Trusting CDS Clients") and CORS, through HTTP."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
import requests
import responses
from conftest import FIXED_NOW, SteppingClock, no_data_prefetch
from jwt_support import (
    BASE,
    ISSUER,
    FakeStore,
    Signer,
    auth_config,
    bearer,
    claims_for,
    ec_signer,
    hs256_token,
    rsa_signer,
    unsigned_token,
)

from service import create_app
from service.ops.logs import JsonFormatter

DISCOVERY = f"{BASE}/cds-services"
PATIENT_VIEW = f"{BASE}/cds-services/tacrolimus-patient-view"
ORDER_SIGN = f"{BASE}/cds-services/tacrolimus-order-sign"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
SANDBOX_ORIGIN = "https://sandbox.cds-hooks.org"

PATIENT_VIEW_BODY = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/example", "patientId": "rif-patient-1"},
    "prefetch": no_data_prefetch(),
}


@pytest.fixture(scope="module")
def es384() -> Signer:
    return ec_signer("ec-384", "ES384")


@pytest.fixture(scope="module")
def rs384() -> Signer:
    return rsa_signer("rsa-384", "RS384")


@pytest.fixture(scope="module")
def es256() -> Signer:
    return ec_signer("ec-256", "ES256")


@pytest.fixture(scope="module")
def rs256() -> Signer:
    return rsa_signer("rsa-256", "RS256")


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def auth_client(make_app, store, es384, rs384, es256, rs256):
    """A client of an app trusting ISSUER with all four keys inline."""
    return make_app(store=store, **auth_config(es384, rs384, es256, rs256)).test_client()


GENERIC_401 = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}


def assert_generic_401(response) -> None:
    """An invalid or missing JWT is a 401 whose body says nothing of the reason. CDS Hooks 3.0
    ballot, "HTTP Response": a non-2xx answer SHOULD carry an OperationOutcome; so every refusal
    gets the same one (issue code login), typed FHIR JSON, with the Bearer challenge."""
    assert response.status_code == 401
    assert response.mimetype == "application/fhir+json"
    assert json.loads(response.data) == GENERIC_401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def call_patient_view(client, headers: dict[str, str]):
    return client.post("/cds-services/tacrolimus-patient-view", json=PATIENT_VIEW_BODY, headers=headers)


# --- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_name", ["es384", "rs384", "es256", "rs256"])
def test_valid_token_opens_discovery_and_service(request, auth_client, signer_name):
    """A token from a trusted issuer, signed with a key it publishes, gets the normal answer."""
    signer: Signer = request.getfixturevalue(signer_name)
    assert auth_client.get("/cds-services", headers=bearer(signer.mint(DISCOVERY))).status_code == 200
    response = call_patient_view(auth_client, bearer(signer.mint(PATIENT_VIEW)))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": ["https://other.example/cds", PATIENT_VIEW]}, id="aud-list-containing-url"),
        pytest.param({"now": FIXED_NOW - timedelta(minutes=5, seconds=50)}, id="expired-within-leeway"),
        pytest.param({"now": FIXED_NOW + timedelta(seconds=50)}, id="iat-ahead-within-leeway"),
        pytest.param({"tenant": "any"}, id="tenant-ignored-when-not-configured"),
    ],
)
def test_tolerated_variations(auth_client, es384, claims):
    assert call_patient_view(auth_client, bearer(es384.mint(PATIENT_VIEW, **claims))).status_code == 200


def test_typ_header_optional(auth_client, es384):
    token = es384.mint(PATIENT_VIEW, header={"typ": None})
    assert "typ" not in pyjwt.get_unverified_header(token)
    assert call_patient_view(auth_client, bearer(token)).status_code == 200


def test_verified_claims_returned(make_app, store, es384):
    """verify() hands the caller's claims to the app (g.caller)."""
    app = make_app(store=store, **auth_config(es384))
    token = es384.mint(DISCOVERY, tenant="clinic-a")
    claims = app.extensions["tacro_cds"].verifier.verify(f"Bearer {token}", DISCOVERY)
    assert claims["iss"] == ISSUER and claims["tenant"] == "clinic-a"


# --- rejected ------------------------------------------------------------------------------------


def _now_ts(delta: timedelta = timedelta()) -> int:
    return int((FIXED_NOW + delta).timestamp())


SIGNATURE_INVALID = "signature or claims invalid (InvalidSignatureError)"

# (reason logged, how the caller's headers are made from the trusted ES384 signer)
REJECTED: list[Any] = [
    pytest.param("no Authorization header", lambda s: {}, id="no-authorization-header"),
    pytest.param("not a Bearer token", lambda s: {"Authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
    pytest.param("not a Bearer token", lambda s: {"Authorization": "Bearer"}, id="bearer-without-token"),
    pytest.param("malformed token", lambda s: bearer("not.a.jwt"), id="garbage-token"),
    pytest.param("malformed token", lambda s: bearer("a" * 40), id="garbage-no-dots"),
    pytest.param("algorithm not allowed", lambda s: bearer(unsigned_token(claims_for(PATIENT_VIEW))), id="alg-none"),
    pytest.param(
        "algorithm not allowed",
        lambda s: bearer(hs256_token(claims_for(PATIENT_VIEW), s.public_pem())),
        id="hs256-keyed-with-public-key-pem",
    ),
    pytest.param(
        "expired", lambda s: bearer(s.mint(PATIENT_VIEW, now=FIXED_NOW - timedelta(minutes=10))), id="expired"
    ),
    pytest.param(
        "exp too far in the future", lambda s: bearer(s.mint(PATIENT_VIEW, exp=253402300799)), id="exp-year-9999"
    ),
    pytest.param(
        "exp, iat and nbf must be NumericDate",
        lambda s: bearer(s.mint(PATIENT_VIEW, exp=1e18)),
        id="exp-beyond-the-calendar",
    ),
    pytest.param(
        "exp too far in the future",
        lambda s: bearer(s.mint(PATIENT_VIEW, lifetime=timedelta(days=2))),
        id="lifetime-over-a-day",
    ),
    pytest.param(
        "expired",
        lambda s: bearer(s.mint(PATIENT_VIEW, exp=_now_ts(-timedelta(seconds=61)))),
        id="expired-just-beyond-leeway",
    ),
    pytest.param(
        "issued in the future",
        lambda s: bearer(s.mint(PATIENT_VIEW, iat=_now_ts(timedelta(minutes=2)))),
        id="iat-in-future",
    ),
    pytest.param(
        "not yet valid (nbf)",
        lambda s: bearer(s.mint(PATIENT_VIEW, nbf=_now_ts(timedelta(minutes=2)))),
        id="nbf-in-future",
    ),
    pytest.param(
        "exp, iat and nbf must be NumericDate",
        lambda s: bearer(s.mint(PATIENT_VIEW, exp="tomorrow")),
        id="exp-not-numeric",
    ),
    pytest.param(
        "wrong audience",
        lambda s: bearer(s.mint("https://elsewhere.example/cds-services/tacrolimus-patient-view")),
        id="wrong-aud",
    ),
    pytest.param("wrong audience", lambda s: bearer(s.mint(ORDER_SIGN)), id="aud-of-another-service"),
    pytest.param("wrong audience", lambda s: bearer(s.mint(DISCOVERY)), id="aud-of-discovery"),
    pytest.param(
        "untrusted issuer", lambda s: bearer(s.mint(PATIENT_VIEW, iss="https://attacker.example")), id="unknown-iss"
    ),
    pytest.param(
        "unknown kid", lambda s: bearer(s.mint(PATIENT_VIEW, header={"kid": "no-such-kid"})), id="unknown-kid"
    ),
    pytest.param("missing kid", lambda s: bearer(s.mint(PATIENT_VIEW, header={"kid": None})), id="no-kid"),
    pytest.param("typ is not JWT", lambda s: bearer(s.mint(PATIENT_VIEW, header={"typ": "at+jwt"})), id="typ-not-jwt"),
    pytest.param(
        SIGNATURE_INVALID, lambda s: bearer(ec_signer("ec-384").mint(PATIENT_VIEW)), id="signed-by-another-key-same-kid"
    ),
    pytest.param(SIGNATURE_INVALID, lambda s: bearer(s.mint(PATIENT_VIEW)[:-6] + "AAAAAA"), id="signature-tampered"),
    pytest.param(
        "jku not on the issuer's allowlist",
        lambda s: bearer(
            s.mint(PATIENT_VIEW, header={"jku": "https://attacker.example/jwks", "kid": "not-configured"})
        ),
        id="jku-not-allowlisted",
    ),
    pytest.param("jti must be a non-empty string", lambda s: bearer(s.mint(PATIENT_VIEW, jti="")), id="empty-jti"),
]


@responses.activate  # no network: a jku or jwks fetch attempt here would fail loudly in `calls`
@pytest.mark.parametrize("reason, make_headers", REJECTED)
def test_rejected_with_the_generic_401(auth_client, es384, reason, make_headers, auth_log):
    response = call_patient_view(auth_client, make_headers(es384))
    assert_generic_401(response)
    assert rejection_reasons(auth_log) == [reason]
    assert len(responses.calls) == 0


def rejection_reasons(records: list[logging.LogRecord]) -> list[str]:
    return [r.reason for r in records if r.name == "tacro_cds.auth"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "iat", "jti"])
def test_missing_claim_rejected(auth_client, es384, missing, auth_log):
    """'iss', 'aud', 'exp', 'iat' and 'jti' are required claims."""
    assert_generic_401(call_patient_view(auth_client, bearer(es384.mint(PATIENT_VIEW, **{missing: None}))))
    assert rejection_reasons(auth_log) == [f"missing claim {missing}"]


def test_alg_must_match_key_type(auth_client, es384, auth_log):
    """An RSA-signed token naming the EC key's kid is refused before any signature check."""
    other_rsa = rsa_signer(kid=es384.kid, alg="RS384")
    assert_generic_401(call_patient_view(auth_client, bearer(other_rsa.mint(PATIENT_VIEW))))
    assert rejection_reasons(auth_log) == ["algorithm does not match the key type"]


def test_es256_token_refused_for_a_p384_key(auth_client, es384, auth_log):
    """The curve must fit the algorithm too (ES256 is P-256, ES384 is P-384)."""
    p256_under_p384_kid = ec_signer(kid=es384.kid, alg="ES256")
    assert_generic_401(call_patient_view(auth_client, bearer(p256_under_p384_kid.mint(PATIENT_VIEW))))
    assert rejection_reasons(auth_log) == ["algorithm does not match the key type"]


def test_alg_must_match_the_keys_declared_alg(make_app, store, rs384, auth_log):
    """A JWK declaring RS384 does not verify RS256 tokens."""
    client = make_app(store=store, **auth_config(rs384)).test_client()
    as_rs256 = Signer(rs384.private_key, "RS256", rs384.kid)
    assert_generic_401(call_patient_view(client, bearer(as_rs256.mint(PATIENT_VIEW))))
    assert rejection_reasons(auth_log) == ["algorithm does not match the key's alg"]
    assert call_patient_view(client, bearer(rs384.mint(PATIENT_VIEW))).status_code == 200


def test_replayed_jti_rejected(auth_client, es384, store):
    """jti: 'used to protect against replay attacks' -- the same token twice is refused the second time."""
    token = es384.mint(PATIENT_VIEW)
    assert call_patient_view(auth_client, bearer(token)).status_code == 200
    assert_generic_401(call_patient_view(auth_client, bearer(token)))
    (iss, _), expires_at = next(iter(store.jtis.items()))
    assert iss == ISSUER
    assert expires_at == FIXED_NOW + timedelta(minutes=5, seconds=60)  # exp + leeway


def test_same_jti_from_another_call_rejected(auth_client, es384):
    assert auth_client.get("/cds-services", headers=bearer(es384.mint(DISCOVERY, jti="fixed"))).status_code == 200
    assert_generic_401(call_patient_view(auth_client, bearer(es384.mint(PATIENT_VIEW, jti="fixed"))))


def test_forged_token_does_not_occupy_jti(auth_client, es384, store):
    """Only a token with a valid signature is remembered, so forgeries cannot block a real jti."""
    forged = ec_signer(es384.kid).mint(PATIENT_VIEW, jti="victim")
    assert_generic_401(call_patient_view(auth_client, bearer(forged)))
    assert store.jtis == {}
    assert call_patient_view(auth_client, bearer(es384.mint(PATIENT_VIEW, jti="victim"))).status_code == 200


@pytest.mark.parametrize(
    "tenant, expected",
    [
        pytest.param("clinic-a", 200, id="configured-tenant"),
        pytest.param("clinic-b", 401, id="other-tenant"),
        pytest.param(None, 401, id="no-tenant-claim"),
    ],
)
def test_tenant_checked_when_configured(make_app, store, es384, tenant, expected):
    client = make_app(store=store, **auth_config(es384, tenant="clinic-a")).test_client()
    assert call_patient_view(client, bearer(es384.mint(PATIENT_VIEW, tenant=tenant))).status_code == expected


# --- exemptions and coverage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/tacrolimus-order-select"),
        ("POST", "/cds-services/tacrolimus-patient-view/feedback"),
        ("GET", "/cds-services/tacrolimus-patient-view/feedback/summary"),
    ],
)
def test_every_cds_endpoint_needs_a_token(auth_client, method, path):
    """'this is for every single CDS Service call, whether that be a Discovery call, a single CDS
    Service invocation, or multiple exchanges relating to a single service' (feedback included)."""
    assert_generic_401(auth_client.open(path, method=method, json={}))


def test_healthz_needs_no_token(auth_client):
    assert auth_client.get("/healthz").status_code == 200


def test_auth_off_needs_no_token(client):
    assert client.get("/cds-services").status_code == 200


# --- JWK Sets fetched from jwks_url and jku --------------------------------------------------------


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


def _jwks_url_app(make_app, store, clock, **issuer: Any):
    config = {"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jwks_url": JWKS_URL, **issuer}}}
    return make_app(store=store, clock=clock, **config).test_client()


def _signed_now(signer: Signer, clock: SteppingClock, audience: str = PATIENT_VIEW, **kw: Any) -> dict[str, str]:
    return bearer(signer.mint(audience, now=clock.now, **kw))


@responses.activate
def test_unknown_kid_refreshes_jwks_once(make_app, store, clock, es384):
    """Keys are cached per URL; an unknown kid triggers one refetch, rate-limited."""
    responses.get(JWKS_URL, json=es384.jwks())
    client = _jwks_url_app(make_app, store, clock)
    assert call_patient_view(client, _signed_now(es384, clock)).status_code == 200
    assert call_patient_view(client, _signed_now(es384, clock)).status_code == 200
    assert len(responses.calls) == 1  # cached

    clock.advance(minutes=2)
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock, header={"kid": "rotated-away"})))
    assert len(responses.calls) == 2  # refreshed once for the unknown kid
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock, header={"kid": "rotated-away"})))
    assert len(responses.calls) == 2  # and not again within JWKS_MIN_REFRESH_S


@responses.activate
def test_rotated_key_found_by_refresh(make_app, store, clock, es384):
    new_key = ec_signer("ec-384-2025")
    responses.get(JWKS_URL, json=es384.jwks())
    client = _jwks_url_app(make_app, store, clock)
    assert call_patient_view(client, _signed_now(es384, clock)).status_code == 200

    responses.replace(responses.GET, JWKS_URL, json={"keys": [es384.jwk(), new_key.jwk()]})
    clock.advance(minutes=2)
    assert call_patient_view(client, _signed_now(new_key, clock)).status_code == 200
    assert len(responses.calls) == 2


@responses.activate
def test_jwks_refetched_after_ttl(make_app, store, clock, es384):
    """A key removed from the set (revoked) stops working once the cache is older than the TTL."""
    responses.get(JWKS_URL, json=es384.jwks())
    client = _jwks_url_app(make_app, store, clock)
    assert call_patient_view(client, _signed_now(es384, clock)).status_code == 200
    responses.replace(responses.GET, JWKS_URL, json={"keys": []})
    clock.advance(hours=1, seconds=1)
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock)))
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"body": requests.ConnectionError("refused")}, id="connection-refused"),
        pytest.param({"body": requests.Timeout("slow")}, id="timeout"),
        pytest.param({"status": 503}, id="http-503"),
        pytest.param({"body": "<html>not json</html>"}, id="not-json"),
        pytest.param({"json": {"keys": "none"}}, id="not-a-jwk-set"),
        pytest.param({"status": 302, "headers": {"Location": "https://attacker.example/jwks"}}, id="redirect"),
    ],
)
@responses.activate
def test_jwks_fetch_failure_is_401_not_500(make_app, store, clock, es384, failure):
    responses.get(JWKS_URL, **failure)
    client = _jwks_url_app(make_app, store, clock)
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock)))
    assert [c.request.url for c in responses.calls] == [JWKS_URL]


@responses.activate
def test_fetch_uses_configured_timeout(make_app, store, clock, es384):
    responses.get(JWKS_URL, json=es384.jwks())
    config = {"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jwks_url": JWKS_URL}}, "JWKS_TIMEOUT_S": 2.5}
    client = make_app(store=store, clock=clock, **config).test_client()
    assert call_patient_view(client, _signed_now(es384, clock)).status_code == 200
    assert responses.calls[0].request.req_kwargs["timeout"] == 2.5


@responses.activate
def test_jku_on_allowlist_accepted(make_app, store, clock, es384):
    """'jku' is followed only when the issuer's allowlist names that exact URL."""
    jku = "https://ehr.example.org/cds/jwks.json"
    responses.get(jku, json=es384.jwks())
    config = {"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jku_allowlist": [jku]}}}
    client = make_app(store=store, clock=clock, **config).test_client()
    assert call_patient_view(client, _signed_now(es384, clock, header={"jku": jku})).status_code == 200
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock, header={"jku": jku + "?x"})))
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock)))  # no jku, no other key source
    assert [c.request.url for c in responses.calls] == [jku]


@responses.activate
def test_jku_of_another_issuer_not_followed(make_app, store, clock, es384):
    """An allowlist is per issuer: issuer B's jku does not serve tokens of issuer A."""
    other_jku = "https://other-ehr.example/jwks.json"
    config = {
        "AUTH_REQUIRED": True,
        "TRUSTED_ISSUERS": {
            ISSUER: {"jwks": ec_signer("ec-384-other").jwks()},
            "https://other-ehr.example": {"jku_allowlist": [other_jku]},
        },
    }
    client = make_app(store=store, clock=clock, **config).test_client()
    assert_generic_401(call_patient_view(client, _signed_now(es384, clock, header={"jku": other_jku})))
    assert len(responses.calls) == 0


# --- key selection: configured keys first, then an allowed jku --------------------------------------
#
# CDS Hooks 3.0 ballot, "Trusting CDS Clients": the client SHOULD send a jku header naming its JWK
# Set (to allow key rotation); the service decides which jku URLs it trusts. 2.0.1, same section:
# the service identifies the key by kid. One rule serves both: the issuer's configured keys win
# when they hold the kid; a jku is fetched only when it is allowed and the kid is unknown.

SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


@responses.activate
def test_configured_inline_keys_win_over_a_jku_so_an_offline_site_accepts_the_sandbox(make_app, store, clock, es384):
    """An air-gapped site configures the client's key set inline; the client still sends a jku it
    cannot reach and has not allowlisted. The inline key verifies the token; nothing is fetched."""
    config = {"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jwks": es384.jwks()}}}
    client = make_app(store=store, clock=clock, **config).test_client()
    assert call_patient_view(client, _signed_now(es384, clock, header={"jku": SANDBOX_JKU})).status_code == 200
    assert len(responses.calls) == 0


@responses.activate
def test_a_jku_cannot_replace_a_configured_key_with_the_same_kid(make_app, store, clock, es384):
    """A token signed by another key under a configured kid fails the signature check even when
    its jku is allowlisted and serves that other key: the configured key is used, the jku never."""
    impostor = ec_signer(es384.kid)
    responses.get(SANDBOX_JKU, json=impostor.jwks())
    config = {
        "AUTH_REQUIRED": True,
        "TRUSTED_ISSUERS": {ISSUER: {"jwks": es384.jwks(), "jku_allowlist": [SANDBOX_JKU]}},
    }
    client = make_app(store=store, clock=clock, **config).test_client()
    assert_generic_401(call_patient_view(client, _signed_now(impostor, clock, header={"jku": SANDBOX_JKU})))
    assert len(responses.calls) == 0


@responses.activate
def test_a_jku_equal_to_the_configured_jwks_url_is_allowed_without_repeating_it(make_app, store, clock, es384):
    """3.0 ballot, "Trusting CDS Clients" (jku SHOULD be sent, key rotation): a client naming the
    very key set the operator configured as jwks_url is not refused for lack of an allowlist
    entry; a key rotated into that set is found by the refresh on an unknown kid."""
    rotated = ec_signer("ec-384-rotated")
    responses.get(JWKS_URL, json=es384.jwks())
    client = _jwks_url_app(make_app, store, clock)
    assert call_patient_view(client, _signed_now(es384, clock, header={"jku": JWKS_URL})).status_code == 200
    responses.replace(responses.GET, JWKS_URL, json={"keys": [es384.jwk(), rotated.jwk()]})
    clock.advance(minutes=2)
    assert call_patient_view(client, _signed_now(rotated, clock, header={"jku": JWKS_URL})).status_code == 200
    assert [c.request.url for c in responses.calls] == [JWKS_URL, JWKS_URL]


@responses.activate
def test_an_allowlisted_jku_is_fetched_only_for_a_kid_the_configured_keys_lack(make_app, store, clock, es384):
    rotated = ec_signer("ec-384-rotated")
    responses.get(SANDBOX_JKU, json=rotated.jwks())
    config = {
        "AUTH_REQUIRED": True,
        "TRUSTED_ISSUERS": {ISSUER: {"jwks": es384.jwks(), "jku_allowlist": [SANDBOX_JKU]}},
    }
    client = make_app(store=store, clock=clock, **config).test_client()
    assert call_patient_view(client, _signed_now(es384, clock, header={"jku": SANDBOX_JKU})).status_code == 200
    assert len(responses.calls) == 0  # the configured key was enough
    assert call_patient_view(client, _signed_now(rotated, clock, header={"jku": SANDBOX_JKU})).status_code == 200
    assert [c.request.url for c in responses.calls] == [SANDBOX_JKU]


@responses.activate
def test_a_jku_neither_configured_nor_allowlisted_is_refused_for_an_unknown_kid(make_app, store, clock, es384):
    stranger = ec_signer("ec-384-stranger")
    responses.get(JWKS_URL, json=es384.jwks())
    client = _jwks_url_app(make_app, store, clock)
    assert_generic_401(call_patient_view(client, _signed_now(stranger, clock, header={"jku": SANDBOX_JKU})))
    assert [c.request.url for c in responses.calls] == [JWKS_URL]  # the jku itself never


# --- audience behind a proxy ---------------------------------------------------------------------


@pytest.mark.parametrize("external_base", ["https://cds.example.org", "https://cds.example.org/"])
def test_external_base_url_is_the_audience(make_app, store, es384, external_base):
    """aud names the CDS Service endpoint being called, as the client sees it behind the proxy."""
    client = make_app(store=store, EXTERNAL_BASE_URL=external_base, **auth_config(es384)).test_client()
    external = "https://cds.example.org/cds-services/tacrolimus-patient-view"
    assert call_patient_view(client, bearer(es384.mint(external))).status_code == 200
    assert_generic_401(call_patient_view(client, bearer(es384.mint(PATIENT_VIEW))))


# --- configuration -------------------------------------------------------------------------------


def test_create_app_with_exactly_the_documented_keys(monkeypatch, tmp_path, es384):
    """create_app({"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {...}}) -- real clock, real store."""
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    app = create_app({"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jwks": es384.jwks()}}})
    client = app.test_client()
    token = es384.mint(DISCOVERY, now=datetime.now().astimezone())
    assert client.get("/cds-services", headers=bearer(token)).status_code == 200
    assert_generic_401(client.get("/cds-services", headers=bearer(token)))
    assert_generic_401(client.get("/cds-services"))


def test_create_app_with_documented_keys_rejects_without_token(monkeypatch, tmp_path, es384):
    monkeypatch.setenv("TACRO_CDS_FEEDBACK_DB", f"sqlite:///{tmp_path / 'feedback.sqlite'}")
    app = create_app({"AUTH_REQUIRED": True, "TRUSTED_ISSUERS": {ISSUER: {"jwks": es384.jwks()}}})
    client = app.test_client()
    long_expired = es384.mint(DISCOVERY, now=datetime.now().astimezone() - timedelta(days=1))
    assert_generic_401(client.get("/cds-services"))
    assert_generic_401(client.get("/cds-services", headers=bearer(long_expired)))
    assert client.get("/healthz").status_code == 200


def test_trusted_issuers_from_environment(monkeypatch, make_app, store, es384):
    """TACRO_CDS_TRUSTED_ISSUERS is JSON."""
    monkeypatch.setenv("TACRO_CDS_TRUSTED_ISSUERS", json.dumps({ISSUER: {"jwks": es384.jwks()}}))
    monkeypatch.setenv("TACRO_CDS_AUTH_REQUIRED", "true")
    client = create_app(store=store, clock=lambda: FIXED_NOW).test_client()
    assert client.get("/cds-services", headers=bearer(es384.mint(DISCOVERY))).status_code == 200
    assert_generic_401(client.get("/cds-services"))


@pytest.mark.parametrize(
    "issuers, message",
    [
        pytest.param(["https://ehr"], "TACRO_CDS_TRUSTED_ISSUERS: must be a JSON object, not list", id="not-a-mapping"),
        pytest.param({ISSUER: {}}, "needs jwks, jwks_url or jku_allowlist", id="no-key-source"),
        pytest.param({ISSUER: {"jwks": {"kid": "x"}}}, "not a JWK Set", id="jwks-not-a-set"),
        pytest.param(
            {ISSUER: {"jwks_url": JWKS_URL, "jku_allowlist": "https://x"}}, "list of URLs", id="allowlist-not-a-list"
        ),
        pytest.param({ISSUER: {"jwks_url": JWKS_URL, "tennant": "a"}}, "unknown field", id="misspelt-field"),
    ],
)
def test_bad_trusted_issuers_stop_start_up(make_app, store, issuers, message):
    with pytest.raises(ValueError, match=message):
        make_app(store=store, AUTH_REQUIRED=True, TRUSTED_ISSUERS=issuers)


# --- logging -------------------------------------------------------------------------------------


@pytest.fixture
def auth_log():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tacro_cds")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_rejection_logged_with_reason_iss_jti_never_the_token(auth_client, es384, auth_log):
    token = es384.mint(ORDER_SIGN, jti="jti-logged")
    assert_generic_401(call_patient_view(auth_client, bearer(token)))
    rejections = [r for r in auth_log if r.name == "tacro_cds.auth"]
    assert len(rejections) == 1
    record = rejections[0]
    assert record.levelno == logging.INFO
    assert (record.reason, record.iss, record.jti) == ("wrong audience", ISSUER, "jti-logged")
    for r in auth_log:
        line = JsonFormatter().format(r)
        assert token not in line and token.split(".")[2] not in line


# --- CORS ----------------------------------------------------------------------------------------

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture
def cors_client(make_app, store, es384):
    return make_app(store=store, CORS_ORIGINS=[SANDBOX_ORIGIN], **auth_config(es384)).test_client()


@pytest.mark.parametrize("path", ["/cds-services/tacrolimus-patient-view", "/cds-services"])
def test_preflight_answered_without_token(cors_client, path):
    """Browser clients (the sandbox) send a preflight before every call because of Authorization."""
    response = cors_client.options(path, headers={"Origin": SANDBOX_ORIGIN, **PREFLIGHT})
    assert 200 <= response.status_code < 300
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX_ORIGIN
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_preflight_from_unconfigured_origin_gets_no_allow_origin(cors_client):
    response = cors_client.options(
        "/cds-services/tacrolimus-patient-view", headers={"Origin": "https://attacker.example", **PREFLIGHT}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_no_origin_allowed_by_default(make_app, store, es384):
    client = make_app(store=store, **auth_config(es384)).test_client()
    response = client.options("/cds-services/tacrolimus-patient-view", headers={"Origin": SANDBOX_ORIGIN, **PREFLIGHT})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_headers_on_answers_and_on_401(cors_client, es384):
    """The browser must be able to read a 401 too, or the caller sees only a network error."""
    origin = {"Origin": SANDBOX_ORIGIN}
    ok = call_patient_view(cors_client, {**origin, **bearer(es384.mint(PATIENT_VIEW))})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == SANDBOX_ORIGIN
    refused = call_patient_view(cors_client, origin)
    assert_generic_401(refused)
    assert refused.headers["Access-Control-Allow-Origin"] == SANDBOX_ORIGIN


def test_trickling_key_set_endpoint_is_cut_at_the_timeout(make_app, fault_server, es384):
    """A key-set endpoint sending one byte at a time cannot hold authentication past JWKS_TIMEOUT_S:
    the fetch has one deadline in all, not one per read (a real socket server on 127.0.0.1)."""
    from fault_server import trickle_body

    fault_server.plan(trickle_body(0.05), path="/fhir/jwks")
    config = {
        "AUTH_REQUIRED": True,
        "JWKS_TIMEOUT_S": 0.5,
        "TRUSTED_ISSUERS": {es384.iss: {"jwks_url": f"{fault_server.base}/jwks"}},
    }
    client = make_app(**config).test_client()
    started = time.monotonic()
    response = client.get("/cds-services", headers=bearer(es384.mint(DISCOVERY)))
    assert response.status_code == 401
    # The endpoint trickles for ever: cut at 0.5 s, with room for a machine busy with other runs.
    assert time.monotonic() - started < 0.5 + 3.0

"""The OAuth side of SMART App Launch 2.x, on Authlib's OAuth 2.0 client.

- discovery from ``{iss}/.well-known/smart-configuration``;
- scopes in v2 syntax (``patient/Observation.rs``), or v1 (``patient/Observation.read``) when the
  server advertises only ``permission-v1``;
- authorization code with PKCE S256 (Authlib computes the challenge), ``aud`` = the FHIR base;
- a public client (``token_endpoint_auth_method=none``), a confidential one with a secret
  (``client_secret_basic``) or with a private key (``private_key_jwt``, RFC 7523, Authlib's
  ``PrivateKeyJWT``);
- the token response checked: bearer token, a patient in context, an id token (when one comes)
  issued by the server for this client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.config import Settings
from service.fhir.policy import check_fhir_server
from service.smart_app.errors import DiscoveryError, SessionExpiredError, TokenError

# Every resource type the prefetch templates read (service.hooks.templates), read and search.
RESOURCES = (
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
    "Procedure",
    "Appointment",
    "Medication",
)
EXTRA_SCOPES = ("openid", "fhirUser", "online_access")
# Context parameters of the token response the app keeps (SMART App Launch 2.x, "Launch context").
CONTEXT_FIELDS = (
    "patient",
    "encounter",
    "need_patient_banner",
    "smart_style_url",
    "fhirContext",
    "appContext",
    "intent",
    "tenant",
)
MAX_DISCOVERY_BYTES = 256 * 1024


@dataclass(frozen=True)
class SmartConfiguration:
    iss: str
    authorization_endpoint: str
    token_endpoint: str
    capabilities: tuple[str, ...]
    scopes_supported: tuple[str, ...]
    issuer: str | None = None
    jwks_uri: str | None = None

    @property
    def v1_only(self) -> bool:
        """True when the server advertises SMART v1 permissions and not v2."""
        caps = set(self.capabilities)
        if "permission-v2" in caps:
            return False
        if "permission-v1" in caps:
            return True
        # No permission capability: judge by the scopes it lists, v2 when in doubt.
        scopes = [s for s in self.scopes_supported if s.startswith(("patient/", "user/"))]
        return bool(scopes) and all(s.endswith((".read", ".write", ".*")) for s in scopes)


def discover(iss: str, settings: Settings) -> SmartConfiguration:
    """Read and check the SMART configuration of a FHIR base URL."""
    http = requests.Session()
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        response = http.get(
            url, headers={"Accept": "application/json"}, timeout=settings.smart_http_timeout_s, stream=True
        )
        raw = response.raw.read(MAX_DISCOVERY_BYTES + 1, decode_content=True)
    except requests.RequestException:
        raise DiscoveryError(
            "The EHR's SMART configuration could not be fetched (no answer from "
            "its server). Try again, or ask your EHR administrator."
        ) from None
    if response.status_code != 200 or len(raw) > MAX_DISCOVERY_BYTES:
        raise DiscoveryError(f"The EHR answered HTTP {response.status_code} for its SMART configuration.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise DiscoveryError("The EHR's SMART configuration is not JSON.") from None
    if not isinstance(body, dict):
        raise DiscoveryError("The EHR's SMART configuration is not a JSON object.")
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint"):
        value = body.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise DiscoveryError(f"The EHR's SMART configuration has no usable {key}.")
        _check_endpoint(value, settings)
        endpoints[key] = value

    def strings(key: str) -> tuple[str, ...]:
        value = body.get(key)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    return SmartConfiguration(
        iss=iss,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        capabilities=strings("capabilities"),
        scopes_supported=strings("scopes_supported"),
        issuer=body.get("issuer") if isinstance(body.get("issuer"), str) else None,
        jwks_uri=body.get("jwks_uri") if isinstance(body.get("jwks_uri"), str) else None,
    )


def _check_endpoint(url: str, settings: Settings) -> None:
    """OAuth endpoints over plain http only where a plain-http FHIR server would be allowed."""
    if url.startswith("http://"):
        try:
            check_fhir_server(url, allow_http=settings.allow_http_fhir, allowlist=[])
        except Exception:
            raise DiscoveryError("The EHR's OAuth endpoints must use https.") from None


def scopes(conf: SmartConfiguration, *, standalone: bool) -> str:
    """The scopes to request: v2 syntax unless the server speaks only v1."""
    suffix = {"read": ".read", "search": ".read"} if conf.v1_only else {"read": ".r", "search": ".rs"}
    wanted = ["launch/patient" if standalone else "launch", *EXTRA_SCOPES]
    for resource in RESOURCES:
        wanted.append(f"patient/{resource}{suffix['read' if resource == 'Patient' else 'search']}")
    return " ".join(wanted)


def new_code_verifier() -> str:
    return str(generate_token(64))  # 64 characters of [A-Za-z0-9]: within RFC 7636's 43-128


def oauth_client(
    settings: Settings, redirect_uri: str, scope: str | None = None, token_endpoint: str | None = None
) -> OAuth2Session:
    """An Authlib OAuth 2.0 session for this app's registration."""
    client_id = settings.smart_client_id
    key_file = settings.smart_client_private_key_file
    if key_file:
        client = OAuth2Session(
            client_id,
            Path(key_file).read_text(encoding="utf-8"),
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="private_key_jwt",
        )
        headers = {"kid": settings.smart_client_key_id} if settings.smart_client_key_id else None
        client.register_client_auth_method(
            PrivateKeyJWT(token_endpoint, headers=headers, alg=settings.smart_client_key_alg)
        )
    elif settings.smart_client_secret_value:
        client = OAuth2Session(
            client_id,
            settings.smart_client_secret_value,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
    else:
        client = OAuth2Session(
            client_id,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="none",
        )
    return client


def authorization_url(
    conf: SmartConfiguration, settings: Settings, redirect_uri: str, *, launch: str | None, code_verifier: str
) -> tuple[str, str, str]:
    """(URL to send the browser to, state, scope)."""
    scope = scopes(conf, standalone=launch is None)
    client = oauth_client(settings, redirect_uri, scope)
    extra = {"aud": conf.iss}
    if launch is not None:
        extra["launch"] = launch
    url, state = client.create_authorization_url(
        conf.authorization_endpoint, state=generate_token(48), code_verifier=code_verifier, **extra
    )
    return url, state, scope


def exchange_code(pending: Mapping[str, Any], settings: Settings, redirect_uri: str, code: str) -> dict[str, Any]:
    """Trade the code for tokens (with the PKCE verifier) and check the answer."""
    client = oauth_client(settings, redirect_uri, pending["scope"], pending["token_endpoint"])
    try:
        token = client.fetch_token(
            pending["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=pending["code_verifier"],
            timeout=settings.smart_http_timeout_s,
        )
    except requests.RequestException:
        raise TokenError("The EHR's token endpoint did not answer. Launch the app again.") from None
    except Exception as exc:  # Authlib's OAuthError and JSON errors: the server refused or answered nonsense
        raise TokenError(f"The EHR refused to issue a token ({_oauth_error(exc)}). Launch the app again.") from None
    return checked_token(dict(token), pending, settings)


def _oauth_error(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    return str(error) if isinstance(error, str) and len(error) < 80 else "invalid answer"


def checked_token(token: dict[str, Any], pending: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The parts of a token response the app keeps, after checking them."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenError("The token response has no access token.")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise TokenError("The token response is not a bearer token.")
    patient = token.get("patient")
    if not isinstance(patient, str) or not patient.strip() or "/" in patient:
        raise TokenError(
            "The EHR did not say which patient this launch is for (no patient in the token "
            "response). Open the app from a patient's chart, or pick a patient when asked."
        )
    if token.get("id_token"):
        _check_id_token(str(token["id_token"]), pending, settings)
    expires_in = token.get("expires_in")
    kept: dict[str, Any] = {
        "access_token": access,
        "refresh_token": token.get("refresh_token") if isinstance(token.get("refresh_token"), str) else None,
        "scope": token.get("scope") if isinstance(token.get("scope"), str) else pending["scope"],
        "expires_at": time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None,
        "iss": pending["iss"],
        "token_endpoint": pending["token_endpoint"],
    }
    for field in CONTEXT_FIELDS:
        if field in token:
            kept[field] = token[field]
    return kept


def _check_id_token(id_token: str, pending: Mapping[str, Any], settings: Settings) -> None:
    """The id token must be signed by the server's key, for this client, by the server's issuer."""
    jwks_uri = pending.get("jwks_uri")
    if not jwks_uri:
        raise TokenError("The EHR sent an id token but publishes no jwks_uri to check it with.")
    try:
        keys = KeySet.import_key_set(requests.get(jwks_uri, timeout=settings.smart_http_timeout_s).json())
        token = jwt.decode(id_token, keys, algorithms=["RS256", "RS384", "ES256", "ES384"])
        jwt.JWTClaimsRegistry(
            leeway=60,
            exp={"essential": True},
            aud={"essential": True, "value": settings.smart_client_id},
            iss={"essential": True, "value": pending.get("issuer") or pending["iss"]},
        ).validate(token.claims)
    except (requests.RequestException, ValueError, TypeError, JoseError):
        raise TokenError(
            "The id token the EHR sent is not for this app (audience, issuer, signature or expiry do not match)."
        ) from None


def refreshed(stored: Mapping[str, Any], settings: Settings, redirect_uri: str) -> dict[str, Any]:
    """A new access token from the refresh token; SessionExpiredError when there is none or it fails."""
    if not stored.get("refresh_token"):
        raise SessionExpiredError("The access token has expired.")
    client = oauth_client(settings, redirect_uri, stored.get("scope"), stored["token_endpoint"])
    try:
        token = dict(
            client.refresh_token(
                stored["token_endpoint"], refresh_token=stored["refresh_token"], timeout=settings.smart_http_timeout_s
            )
        )
    except Exception:
        raise SessionExpiredError("The access token has expired and could not be renewed.") from None
    if not isinstance(token.get("access_token"), str) or str(token.get("token_type", "")).lower() != "bearer":
        raise SessionExpiredError("The access token has expired and could not be renewed.")
    updated = dict(stored)
    updated["access_token"] = token["access_token"]
    if isinstance(token.get("refresh_token"), str):
        updated["refresh_token"] = token["refresh_token"]
    expires_in = token.get("expires_in")
    updated["expires_at"] = time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None
    return updated

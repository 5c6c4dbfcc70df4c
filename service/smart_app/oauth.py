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
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import KeySet

from service.config import Settings
from service.fhir.errors import FhirError, FhirHttpError
from service.fhir.policy import LOOPBACK_HOSTS, AddressCheck, BaseUrl, address_checker, base_within
from service.fhir.transport import HardenedSendMixin, HardenedSession, Limits, fetch_json, harden, origin_of
from service.smart_app.errors import DiscoveryError, IssuerRefusedError, SessionExpiredError, TokenError

log = logging.getLogger("tacro_cds.smart_app")

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
MAX_TOKEN_BYTES = 64 * 1024  # a token response is a few kilobytes; the cap protects memory and the session
MAX_JWKS_BYTES = 256 * 1024
MAX_KEPT_BYTES = 32 * 1024  # what one launch keeps in the session, in all
MAX_CALLS_PER_ORIGIN = 4  # discovery, token and key calls of this process waiting on one EHR at once
MAX_EXPIRES_IN_S = 24 * 3600


# -- which EHRs the app talks to ------------------------------------------------------------------


def issuer_allowlist(settings: Settings) -> list[str]:
    """The FHIR base URLs the app may be launched for: ``SMART_ISSUERS``, else every base URL of
    ``FHIR_SERVER_ALLOWLIST`` (the trusted callers' FHIR servers). Empty: none named."""
    if settings.smart_issuers:
        return list(settings.smart_issuers)
    listed = settings.fhir_server_allowlist
    if isinstance(listed, Mapping):
        return [base for bases in listed.values() for base in bases]
    return list(listed)


@dataclass(frozen=True)
class Issuer:
    """An ``iss`` the app accepted: its base, whether the operator listed it, and the address check
    for the hosts its configuration names (its own origin is the operator's to vouch for)."""

    base: BaseUrl
    listed: bool
    public_check: AddressCheck | None

    @property
    def origin(self) -> str:
        return f"{self.base.scheme}://{self.base.host}:{self.base.port}"

    def address_check(self, url: str) -> AddressCheck | None:
        """None (no check) for the listed issuer's own origin; the public-address check otherwise."""
        if self.listed and origin_of(url) == self.origin:
            return None
        return self.public_check


def check_issuer(iss: str, settings: Settings) -> Issuer:
    """The ``iss`` if the app may talk to it, else IssuerRefusedError saying why.

    Listed (``SMART_ISSUERS``, else ``FHIR_SERVER_ALLOWLIST``): ``iss`` must be one of the base URLs
    or a path below one. Nothing listed: only a FHIR server on this machine, and only in
    development (``ALLOW_HTTP_FHIR=loopback``, what ``serve --dev`` sets) - the development EHR."""
    try:
        base = BaseUrl.parse(iss)
    except ValueError:
        raise IssuerRefusedError("The app was launched with an iss that is not a FHIR base URL.") from None
    policy = settings.allow_http_fhir
    loopback = base.host in LOOPBACK_HOSTS
    if base.scheme == "http" and not (policy == "any" or (policy == "loopback" and loopback)):
        raise IssuerRefusedError(
            "The app was launched for a FHIR server over plain http, which this deployment does not use."
        )
    listed = issuer_allowlist(settings)
    public = address_checker(allow_http=policy, allowlist=[], issuer=None)
    if listed:
        if not any(base_within(base, entry) for entry in listed):
            raise IssuerRefusedError(
                "The app was launched for a FHIR server this deployment does not read from (not in "
                "SMART_ISSUERS). Ask the administrator to add the EHR's FHIR base URL."
            )
        return Issuer(base, True, public)
    if policy == "loopback" and loopback:
        return Issuer(base, False, public)
    raise IssuerRefusedError(
        "This deployment has no EHR configured for the app: the administrator must list the EHRs' "
        "FHIR base URLs in SMART_ISSUERS (or FHIR_SERVER_ALLOWLIST). Until then the app only serves "
        "the development EHR on this machine, in development mode."
    )


def allowlist_key(iss: str, settings: Settings) -> str | None:
    """The trusted caller under whose ``FHIR_SERVER_ALLOWLIST`` entry ``iss`` is listed (a mapping
    per caller), so the record is read under that caller's list; None for a list or ``"*"``."""
    listed = settings.fhir_server_allowlist
    if not isinstance(listed, Mapping):
        return None
    try:
        base = BaseUrl.parse(iss)
    except ValueError:
        return None
    if any(base_within(base, entry) for entry in listed.get("*") or []):
        return None
    for caller, entries in listed.items():
        if caller != "*" and any(base_within(base, entry) for entry in entries):
            return str(caller)
    return None


def _session(issuer: Issuer, url: str, settings: Settings, max_bytes: int) -> HardenedSession:
    limits = Limits(settings.smart_http_timeout_s, max_bytes, per_origin=MAX_CALLS_PER_ORIGIN)
    return HardenedSession(limits, issuer.address_check(url))


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


def discover(issuer: Issuer, iss: str, settings: Settings) -> SmartConfiguration:
    """Read and check the SMART configuration of an accepted FHIR base URL."""
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        body = fetch_json(_session(issuer, url, settings, MAX_DISCOVERY_BYTES), url)
    except FhirHttpError as exc:
        raise DiscoveryError(f"The EHR answered HTTP {exc.status} for its SMART configuration.") from None
    except FhirError as exc:
        # One message whatever failed (refused, reset, TLS, address refused): the page must not
        # tell one kind of host or port from another. The kind is logged.
        log.warning("smart discovery failed", extra={"reason_code": exc.code})
        raise DiscoveryError(
            "The EHR's SMART configuration could not be fetched (no usable answer from its server). "
            "Try again, or ask your EHR administrator."
        ) from None
    if not isinstance(body, dict):
        raise DiscoveryError("The EHR's SMART configuration is not a JSON object.")
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint"):
        value = body.get(key)
        if not isinstance(value, str) or len(value) > 2048:
            raise DiscoveryError(f"The EHR's SMART configuration has no usable {key}.")
        _check_endpoint(value, settings)
        endpoints[key] = value
    jwks_uri = body.get("jwks_uri")
    if jwks_uri is not None:
        if not isinstance(jwks_uri, str) or len(jwks_uri) > 2048:
            raise DiscoveryError("The EHR's SMART configuration has an unusable jwks_uri.")
        _check_endpoint(jwks_uri, settings)

    def strings(key: str) -> tuple[str, ...]:
        value = body.get(key)
        return tuple(v[:200] for v in value[:200] if isinstance(v, str)) if isinstance(value, list) else ()

    issuer_claim = body.get("issuer")
    return SmartConfiguration(
        iss=iss,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        capabilities=strings("capabilities"),
        scopes_supported=strings("scopes_supported"),
        issuer=issuer_claim if isinstance(issuer_claim, str) and len(issuer_claim) <= 2048 else None,
        jwks_uri=jwks_uri,
    )


def _check_endpoint(url: str, settings: Settings) -> None:
    """OAuth endpoints: https, or plain http only where a plain-http FHIR server would be allowed."""
    try:
        base = BaseUrl.parse(url.split("?", 1)[0])
    except ValueError:
        raise DiscoveryError("The EHR's OAuth endpoints are not usable URLs.") from None
    policy = settings.allow_http_fhir
    if base.scheme == "http" and not (policy == "any" or (policy == "loopback" and base.host in LOOPBACK_HOSTS)):
        raise DiscoveryError("The EHR's OAuth endpoints must use https.")


def scopes(conf: SmartConfiguration, *, standalone: bool) -> str:
    """The scopes to request: v2 syntax unless the server speaks only v1."""
    suffix = {"read": ".read", "search": ".read"} if conf.v1_only else {"read": ".r", "search": ".rs"}
    wanted = ["launch/patient" if standalone else "launch", *EXTRA_SCOPES]
    for resource in RESOURCES:
        wanted.append(f"patient/{resource}{suffix['read' if resource == 'Patient' else 'search']}")
    return " ".join(wanted)


def new_code_verifier() -> str:
    return str(generate_token(64))  # 64 characters of [A-Za-z0-9]: within RFC 7636's 43-128


class _HardenedOAuth2Session(HardenedSendMixin, OAuth2Session):  # type: ignore[misc]
    """Authlib's OAuth 2.0 client on the service's outbound transport."""


def oauth_client(
    settings: Settings,
    redirect_uri: str,
    scope: str | None = None,
    token_endpoint: str | None = None,
    *,
    issuer: Issuer | None = None,
) -> OAuth2Session:
    """An Authlib OAuth 2.0 session for this app's registration. With ``issuer``, the session runs
    on the hardened transport; a client secret or key is used only for an issuer the operator
    listed (never for the development fallback), so it never reaches a host an ``iss`` chose."""
    client_id = settings.smart_client_id
    confidential = bool(settings.smart_client_private_key_file or settings.smart_client_secret_value)
    if issuer is not None and confidential and not issuer.listed:
        raise IssuerRefusedError(
            "This app is a confidential client: its credentials go only to EHRs listed in SMART_ISSUERS."
        )
    client = _client(settings, client_id, redirect_uri, scope, token_endpoint)
    if issuer is not None and token_endpoint is not None:
        limits = Limits(settings.smart_http_timeout_s, MAX_TOKEN_BYTES, per_origin=MAX_CALLS_PER_ORIGIN)
        harden(client, limits, issuer.address_check(token_endpoint))
    return client


def _client(
    settings: Settings, client_id: str, redirect_uri: str, scope: str | None, token_endpoint: str | None
) -> OAuth2Session:
    cls = _HardenedOAuth2Session
    key_file = settings.smart_client_private_key_file
    if key_file:
        client = cls(
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
        client = cls(
            client_id,
            settings.smart_client_secret_value,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",
        )
    else:
        client = cls(
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


def exchange_code(
    pending: Mapping[str, Any], settings: Settings, redirect_uri: str, code: str, issuer: Issuer
) -> dict[str, Any]:
    """Trade the code for tokens (with the PKCE verifier) and check the answer."""
    client = oauth_client(settings, redirect_uri, pending["scope"], pending["token_endpoint"], issuer=issuer)
    try:
        token = client.fetch_token(
            pending["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=pending["code_verifier"],
        )
    except FhirError as exc:
        log.warning("smart token call failed", extra={"reason_code": exc.code})
        raise TokenError("The EHR's token endpoint gave no usable answer. Launch the app again.") from None
    except Exception as exc:  # Authlib's OAuthError and JSON errors: the server refused or answered nonsense
        error, description = oauth_error(exc)
        log.warning("smart token refused", extra={"oauth_error": error, "oauth_error_description": description})
        raise TokenError(
            f"The EHR refused to issue a token ({error}{': ' + description if description else ''}). "
            "Launch the app again."
        ) from None
    return checked_token(dict(token), pending, settings, issuer)


# RFC 6749 section 5.2 and 4.1.2.1: the error codes an EHR may send; any other text is not shown.
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
    }
)


def safe_text(value: Any, limit: int = 200) -> str:
    """Text an EHR sent, made safe to show or log: printable characters only, cut at ``limit``."""
    if not isinstance(value, str):
        return ""
    cleaned = "".join(c if c.isprintable() else " " for c in value).strip()
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


def oauth_error(exc: Exception) -> tuple[str, str]:
    """(error code, description) of an OAuth error answer; the code only when RFC 6749 names it."""
    error = getattr(exc, "error", None)
    description = safe_text(getattr(exc, "description", None))
    return (error if error in OAUTH_ERRORS else "invalid answer"), description


def _expires_at(value: Any) -> float | None:
    """``expires_in`` as an absolute time, bounded to a day: a huge or non-finite number is an EHR
    fault, not a reason to keep a token forever (or to fail with an overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        seconds = 0.0 if seconds <= 0 else MAX_EXPIRES_IN_S
    return time.time() + min(seconds, MAX_EXPIRES_IN_S)


def _bounded(value: Any, limit: int) -> Any:
    """A context value kept only when its JSON is within ``limit`` characters."""
    try:
        return value if len(json.dumps(value)) <= limit else None
    except (TypeError, ValueError, RecursionError):
        return None


def checked_token(
    token: dict[str, Any], pending: Mapping[str, Any], settings: Settings, issuer: Issuer
) -> dict[str, Any]:
    """The parts of a token response the app keeps, after checking them (each bounded in size)."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access or len(access) > 16 * 1024:
        raise TokenError("The token response has no usable access token.")
    if str(token.get("token_type", "")).lower() != "bearer":
        raise TokenError("The token response is not a bearer token.")
    patient = token.get("patient")
    if not isinstance(patient, str) or not patient.strip() or "/" in patient or len(patient) > 64:
        raise TokenError(
            "The EHR did not say which patient this launch is for (no patient in the token "
            "response). Open the app from a patient's chart, or pick a patient when asked."
        )
    if token.get("id_token"):
        check_id_token(str(token["id_token"]), pending, settings, issuer)
    refresh = token.get("refresh_token")
    scope = token.get("scope")
    kept: dict[str, Any] = {
        "access_token": access,
        "refresh_token": refresh if isinstance(refresh, str) and len(refresh) <= 16 * 1024 else None,
        "scope": scope if isinstance(scope, str) and len(scope) <= 4096 else pending["scope"],
        "expires_at": _expires_at(token.get("expires_in")),
        "iss": pending["iss"],
        "token_endpoint": pending["token_endpoint"],
    }
    for field in CONTEXT_FIELDS:
        if field in token:
            value = _bounded(token[field], 8 * 1024)
            if value is not None:
                kept[field] = value
    if len(json.dumps(kept)) > MAX_KEPT_BYTES:
        raise TokenError("The EHR's token response is too large for this app.")
    return kept


def check_id_token(id_token: str, pending: Mapping[str, Any], settings: Settings, issuer: Issuer) -> dict[str, Any]:
    """The id token's claims, once checked: signed by the server's key, for this client, by the
    server's issuer (the reviewers' sign-in reads its ``fhirUser``)."""
    jwks_uri = pending.get("jwks_uri")
    if not jwks_uri:
        raise TokenError("The EHR sent an id token but publishes no jwks_uri to check it with.")
    try:
        key_set = fetch_json(_session(issuer, jwks_uri, settings, MAX_JWKS_BYTES), jwks_uri)
    except FhirError as exc:
        log.warning("smart id token keys not fetched", extra={"reason_code": exc.code})
        raise TokenError("The EHR's keys for checking the id token could not be fetched.") from None
    try:
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise ValueError("not a JWK Set")
        keys = KeySet.import_key_set(key_set)  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=["RS256", "RS384", "ES256", "ES384"])
        jwt.JWTClaimsRegistry(
            leeway=60,
            exp={"essential": True},
            aud={"essential": True, "value": settings.smart_client_id},
            iss={"essential": True, "value": pending.get("issuer") or pending["iss"]},
        ).validate(token.claims)
    except Exception:  # joserfc raises several kinds for a key set or token it cannot use
        raise TokenError(
            "The id token the EHR sent is not for this app (audience, issuer, signature or expiry do not match)."
        ) from None
    return dict(token.claims)


def refreshed(stored: Mapping[str, Any], settings: Settings, redirect_uri: str) -> dict[str, Any]:
    """A new access token from the refresh token; SessionExpiredError when there is none or it fails."""
    if not stored.get("refresh_token"):
        raise SessionExpiredError("The access token has expired.")
    try:
        issuer = check_issuer(str(stored["iss"]), settings)
        client = oauth_client(settings, redirect_uri, stored.get("scope"), stored["token_endpoint"], issuer=issuer)
        token = dict(client.refresh_token(stored["token_endpoint"], refresh_token=stored["refresh_token"]))
    except Exception:
        raise SessionExpiredError("The access token has expired and could not be renewed.") from None
    access = token.get("access_token")
    if not isinstance(access, str) or len(access) > 16 * 1024 or str(token.get("token_type", "")).lower() != "bearer":
        raise SessionExpiredError("The access token has expired and could not be renewed.")
    updated = dict(stored)
    updated["access_token"] = access
    refresh = token.get("refresh_token")
    if isinstance(refresh, str) and len(refresh) <= 16 * 1024:
        updated["refresh_token"] = refresh
    updated["expires_at"] = _expires_at(token.get("expires_in"))
    return updated

"""Caller authentication (CDS Hooks 2.0, "Trusting CDS Clients").

Every protected call carries ``Authorization: Bearer <JWT>`` signed by the CDS client. The checks,
cheapest first so that junk never costs a network fetch: header and algorithm, trusted issuer,
audience, times, tenant, then the signature with the issuer's key (found by ``kid``), and last the
replay cache, so that only a token with a valid signature can occupy a ``jti``.
Spec: https://cds-hooks.hl7.org/2.0/#trusting-cds-clients

Key selection, one rule (``CallerVerifier._find_key``; docs/security.md says the same):

1. The issuer's configured keys come first: the inline ``jwks``, then the set at its ``jwks_url``
   (cached; fetched again when older than ``JWKS_CACHE_TTL_S``, or for an unknown ``kid`` at most
   once per ``JWKS_MIN_REFRESH_S``). When they hold the token's ``kid``, that key verifies it,
   whatever ``jku`` the token names: a site with its client's keys configured never needs the
   network, and a ``jku`` cannot swap a configured key for another.
2. Only when they do not, a token's ``jku`` is fetched, and only when it is allowed: equal to the
   issuer's ``jwks_url`` (already consulted in step 1) or listed in its ``jku_allowlist``, exact
   string match. Any other ``jku`` is refused.
3. Otherwise the ``kid`` is unknown: 401.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import requests

from service.config import Settings
from service.errors import MISSING_CLAIM, REQUIRED_CLAIMS, CallerRejection, UnauthorizedError
from service.fhir.errors import FhirError
from service.fhir.policy import check_fhir_server
from service.fhir.transport import HardenedSession, Limits, fetch_bytes
from service.ops import metrics

log = logging.getLogger("tacro_cds.auth")

# Asymmetric only: "none" and HS* would let anyone holding the public key (or nothing) sign.
ALLOWED_ALGORITHMS = ("ES384", "RS384", "ES256", "RS256")
_KEY_TYPE = {"ES384": ("EC", "P-384"), "ES256": ("EC", "P-256"), "RS384": ("RSA", None), "RS256": ("RSA", None)}
MAX_LIFETIME = timedelta(days=1)  # CDS clients mint tokens of minutes; a day is generous
MIN_RSA_BITS = 2048
_LOGGED_CHARS = 128  # iss and jti come from the caller: bound what they can write to the log


class _Rejected(Exception):
    """Internal: a reason to refuse the caller; becomes one log line and a generic 401."""

    def __init__(self, rejection: CallerRejection, detail: str | None = None) -> None:
        reason = f"{rejection} ({detail})" if detail else str(rejection)
        super().__init__(reason)
        self.rejection = rejection
        self.reason = reason


@dataclass
class _CachedKeySet:
    keys: dict[str, dict[str, Any]]  # kid -> JWK
    fetched_at: datetime | None  # last successful fetch
    attempted_at: datetime  # last attempt, successful or not (rate limit)


def index_key_set(key_set: Any, origin: str) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWK Set by ``kid``; raises ValueError when it is not a JWK Set."""
    if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
        raise ValueError(f"{origin}: not a JWK Set (an object with a 'keys' list)")
    out: dict[str, dict[str, Any]] = {}
    for jwk in key_set["keys"]:
        # Keys without a kid cannot be selected; keys for encryption must not verify signatures.
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk.get("use", "sig") == "sig":
            out[jwk["kid"]] = jwk
    return out


def _validate_issuers(issuers: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(issuers, Mapping):
        raise ValueError("TRUSTED_ISSUERS must map issuer -> {jwks | jwks_url, jku_allowlist?, tenant?}")
    checked: dict[str, dict[str, Any]] = {}
    for iss, entry in issuers.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}] must be an object")
        unknown = set(entry) - {"jwks", "jwks_url", "jku_allowlist", "tenant"}
        if unknown:
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}]: unknown field(s) {sorted(unknown)}")
        allow = entry.get("jku_allowlist", [])
        if not isinstance(allow, list) or not all(isinstance(u, str) for u in allow):
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}].jku_allowlist must be a list of URLs")
        if "jwks" not in entry and "jwks_url" not in entry and not allow:
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}] needs jwks, jwks_url or jku_allowlist")
        if "jwks_url" in entry and not isinstance(entry["jwks_url"], str):
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}].jwks_url must be a URL")
        if "tenant" in entry and not isinstance(entry["tenant"], str):
            raise ValueError(f"TRUSTED_ISSUERS[{iss!r}].tenant must be a string")
        for url in [entry.get("jwks_url"), *allow]:
            if isinstance(url, str):
                _warn_if_not_public_https(url, f"TRUSTED_ISSUERS[{iss!r}]")
        clean = dict(entry)
        if "jwks" in entry:
            clean["jwks"] = index_key_set(entry["jwks"], f"TRUSTED_ISSUERS[{iss!r}].jwks")
        checked[str(iss)] = clean
    return checked


def _warn_if_not_public_https(url: str, where: str) -> None:
    """Say at start-up when a key set URL is plain http (anyone on the path can swap the keys) or
    names an internal address: allowed, since the operator wrote it, but never silently."""
    try:
        check_fhir_server(url, allow_http=False, allowlist=[])
    except Exception:
        log.warning(
            "a key set URL is plain http or names an internal address; callers' keys fetched from it "
            "are only as safe as that network path",
            extra={"setting": where},
        )


class CallerVerifier:
    """Verifies the CDS client's JWT; keeps the JWK Sets it fetched, per URL."""

    def __init__(self, settings: Settings, store: Any, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.issuers = _validate_issuers(settings.trusted_issuers)
        self.leeway = timedelta(seconds=settings.jwt_leeway_s)
        self.timeout = settings.jwks_timeout_s
        self.min_refresh = timedelta(seconds=settings.jwks_min_refresh_s)
        self.cache_ttl = timedelta(seconds=settings.jwks_cache_ttl_s)
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        # The service's one outbound transport: no proxy variables or ~/.netrc from the environment,
        # no redirects, the key set within MAX_JWKS_BYTES and the fetch cut at its deadline.
        self.session = HardenedSession(Limits(self.timeout, MAX_JWKS_BYTES, per_origin=2))
        self._cache: dict[str, _CachedKeySet] = {}
        self._lock = threading.Lock()  # guards _url_locks
        self._url_locks: dict[str, threading.Lock] = {}

    def verify(self, authorization_header: str | None, audience: str) -> Mapping[str, Any]:
        """Return the verified claims, or raise UnauthorizedError."""
        claims: dict[str, Any] = {}
        try:
            token = _bearer_token(authorization_header)
            header = _header(token)
            claims = _unverified_claims(token)
            return self._verify(token, header, claims, audience)
        except _Rejected as exc:
            metrics.jwt_rejected(exc.rejection)
            log.info(
                "caller rejected",
                extra={"reason": exc.reason, "iss": _loggable(claims.get("iss")), "jti": _loggable(claims.get("jti"))},
            )
            raise UnauthorizedError(exc.reason) from None

    def _verify(self, token: str, header: dict[str, Any], claims: dict[str, Any], audience: str) -> Mapping[str, Any]:
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise _Rejected(MISSING_CLAIM[name])
        iss = claims["iss"]
        if not isinstance(iss, str) or iss not in self.issuers:
            raise _Rejected(CallerRejection.UNTRUSTED_ISSUER)
        issuer = self.issuers[iss]
        if not _audience_matches(claims["aud"], audience):
            raise _Rejected(CallerRejection.WRONG_AUDIENCE)
        expires_at = self._check_times(claims)
        if "tenant" in issuer and claims.get("tenant") != issuer["tenant"]:
            raise _Rejected(CallerRejection.WRONG_TENANT)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise _Rejected(CallerRejection.JTI_NOT_A_STRING)

        alg = header["alg"]
        jwk = self._find_key(iss, issuer, header)
        key = _verification_key(jwk, alg)
        try:
            verified: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                # Times were checked above against the app's clock, which PyJWT cannot use.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": list(REQUIRED_CLAIMS),
                },
            )
        except jwt.InvalidTokenError as exc:
            raise _Rejected(CallerRejection.SIGNATURE_OR_CLAIMS_INVALID, type(exc).__name__) from None

        # Keep the jti for as long as the token could still be accepted.
        if not self.store.remember_jti(iss, jti, expires_at + self.leeway):
            raise _Rejected(CallerRejection.REPLAYED_JTI)
        return verified

    def _check_times(self, claims: Mapping[str, Any]) -> datetime:
        now = self.clock()
        try:
            exp = _timestamp(claims["exp"])
            iat = _timestamp(claims["iat"])
            nbf = _timestamp(claims["nbf"]) if claims.get("nbf") is not None else None
        except (TypeError, ValueError, OverflowError, OSError):
            raise _Rejected(CallerRejection.TIMES_NOT_NUMERIC_DATE) from None
        if exp - now > MAX_LIFETIME:
            # Also keeps exp + leeway (the replay-cache expiry) far from the end of the calendar.
            raise _Rejected(CallerRejection.EXP_TOO_FAR)
        if now - self.leeway > exp:
            raise _Rejected(CallerRejection.EXPIRED)
        if iat > now + self.leeway:
            raise _Rejected(CallerRejection.ISSUED_IN_THE_FUTURE)
        if nbf is not None and nbf > now + self.leeway:
            raise _Rejected(CallerRejection.NOT_YET_VALID)
        return exp

    # --- keys -------------------------------------------------------------------------------------

    def _find_key(self, iss: str, issuer: Mapping[str, Any], header: Mapping[str, Any]) -> dict[str, Any]:
        """The key for the token's ``kid`` by the rule in the module docstring."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _Rejected(CallerRejection.MISSING_KID)
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise _Rejected(CallerRejection.JKU_NOT_A_URL)
        inline = issuer.get("jwks", {})
        if kid in inline:
            return dict(inline[kid])
        configured_url = issuer.get("jwks_url")
        if configured_url is not None:
            key = self._key_from_url(configured_url, kid)
            if key is not None:
                return key
        if jku is None or jku == configured_url:
            raise _Rejected(CallerRejection.UNKNOWN_KID)
        # CDS Hooks lets a client point at its key set; we follow only URLs the operator listed.
        if jku not in issuer.get("jku_allowlist", []):
            raise _Rejected(CallerRejection.JKU_NOT_ALLOWED)
        key = self._key_from_url(jku, kid)
        if key is None:
            raise _Rejected(CallerRejection.UNKNOWN_KID)
        return key

    def _key_from_url(self, url: str, kid: str) -> dict[str, Any] | None:
        """The key ``kid`` of the set at ``url`` (fetched or refreshed as needed), or None."""
        # One lock per key-set URL: a slow endpoint delays only the callers that need it.
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            now = self.clock()
            cached = self._cache.get(url)
            stale = cached is None or cached.fetched_at is None or now - cached.fetched_at >= self.cache_ttl
            unknown = cached is None or kid not in cached.keys
            may_fetch = cached is None or now - cached.attempted_at >= self.min_refresh
            if (stale or unknown) and may_fetch:
                cached = self._fetch(url, now, cached)
            if cached is None or kid not in cached.keys:
                return None
            return dict(cached.keys[kid])

    def _fetch(self, url: str, now: datetime, cached: _CachedKeySet | None) -> _CachedKeySet | None:
        """Fetch a JWK Set; on failure keep the previous keys (if any) and remember the attempt."""
        try:
            keys = index_key_set(json.loads(self._get_bounded(url)), "JWK Set")
        except (FhirError, requests.RequestException, ValueError) as exc:
            log.warning("JWK Set fetch failed", extra={"error": type(exc).__name__})
            if cached is None:
                self._cache[url] = _CachedKeySet(keys={}, fetched_at=None, attempted_at=now)
            else:
                cached.attempted_at = now
            return self._cache[url]
        entry = _CachedKeySet(keys=keys, fetched_at=now, attempted_at=now)
        self._cache[url] = entry
        return entry

    def _get_bounded(self, url: str) -> bytes:
        """GET a key set within JWKS_TIMEOUT_S in all (not per read) and at most MAX_JWKS_BYTES."""
        return fetch_bytes(self.session, url)


MAX_JWKS_BYTES = 256 * 1024  # a key set is a few kilobytes


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise _Rejected(CallerRejection.NO_AUTHORIZATION_HEADER)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _Rejected(CallerRejection.NOT_A_BEARER_TOKEN)
    return token


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _Rejected(CallerRejection.MALFORMED_TOKEN) from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise _Rejected(CallerRejection.ALGORITHM_NOT_ALLOWED)
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise _Rejected(CallerRejection.TYP_IS_NOT_JWT)
    return header


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise _Rejected(CallerRejection.MALFORMED_TOKEN) from None
    if not isinstance(claims, dict):
        raise _Rejected(CallerRejection.MALFORMED_TOKEN)
    return claims


def _audience_matches(aud: Any, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in aud


def _timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("NumericDate expected")
    return datetime.fromtimestamp(value, UTC)


def _verification_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The public key of ``jwk`` for ``alg``; refuses a key whose type or curve does not fit."""
    kty, crv = _KEY_TYPE[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise _Rejected(CallerRejection.ALGORITHM_NOT_KEY_TYPE)
    if jwk.get("alg") is not None and jwk.get("alg") != alg:
        raise _Rejected(CallerRejection.ALGORITHM_NOT_KEY_ALG)
    if "d" in jwk:
        # A private key in a published set is a configuration error; do not use it.
        raise _Rejected(CallerRejection.PRIVATE_KEY_IN_SET)
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        raise _Rejected(CallerRejection.UNUSABLE_KEY) from None
    if kty == "RSA" and key.key_size < MIN_RSA_BITS:
        raise _Rejected(CallerRejection.RSA_KEY_TOO_SHORT)
    return key


def _loggable(value: Any) -> str | None:
    return value[:_LOGGED_CHARS] if isinstance(value, str) else None

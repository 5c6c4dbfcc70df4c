"""Configuration: embedded defaults, then ``TACRO_CDS_<KEY>`` environment variables (JSON-parsed
where the default is structured), then the mapping given to ``create_app``."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

ENV_PREFIX = "TACRO_CDS_"

DEFAULTS: dict[str, Any] = {
    # Caller authentication (CDS Hooks 2.0 "Trusting CDS Clients").
    "AUTH_REQUIRED": True,
    # issuer -> {"jwks": {...}} | {"jwks_url": "..."}; optional "jku_allowlist": [...], "tenant": "..."
    "TRUSTED_ISSUERS": {},
    # Public base URL when behind a proxy, e.g. "https://cds.example.org"; the JWT "aud" is checked
    # against it instead of the URL Flask sees.
    "EXTERNAL_BASE_URL": None,
    "JWT_LEEWAY_S": 60,
    "JWKS_TIMEOUT_S": 5.0,
    # A fetched JWK Set is refetched when older than the TTL, or on an unknown kid, but never more
    # often than JWKS_MIN_REFRESH_S per URL (forged kids must not turn us into a fetch loop).
    "JWKS_MIN_REFRESH_S": 60,
    "JWKS_CACHE_TTL_S": 3600,
    # Storage for feedback and the JWT replay cache (SQLAlchemy URL). None: SQLite in instance folder.
    "FEEDBACK_DB": None,
    # Feedback per caller (JWT iss): entries per rolling minute and entries kept in all; beyond, 429.
    "FEEDBACK_RATE_PER_MINUTE": 600,
    "FEEDBACK_QUOTA": 100_000,
    # Retention in days: issued cards (feedback on an older card is refused) and feedback entries.
    # Expired JWT ids are purged as they expire.
    "ISSUED_CARDS_RETENTION_DAYS": 30.0,
    "FEEDBACK_RETENTION_DAYS": 365.0,
    "CORS_ORIGINS": [],
    # FHIR fallback
    "FHIR_TIMEOUT_S": 5.0,
    "FHIR_TOTAL_BUDGET_S": 10.0,
    "FHIR_MAX_PAGES": 5,
    "FHIR_MAX_ENTRIES": 1000,
    "FHIR_MAX_RESPONSE_BYTES": 20 * 1024 * 1024,  # per response body; larger answers are refused
    "FHIR_MAX_PARALLEL": 16,  # concurrent FHIR calls per hook request
    # All FHIR answers of one hook call together (keys, pages, Medication reads): bounds its memory.
    "FHIR_MAX_CALL_BYTES": 32 * 1024 * 1024,
    # FHIR servers per worker whose connections are kept alive between hook calls (least recently
    # used dropped beyond); each keeps at most FHIR_MAX_PARALLEL idle connections.
    "FHIR_POOLED_SERVERS": 32,
    # Hook calls per worker process (and per caller, by JWT iss) that may be fetching from FHIR at
    # once; more are answered 503 at once, so slow FHIR servers cannot take every serving thread.
    # `tacro-cds serve` sets the first to half its --threads unless it is configured.
    "FHIR_FALLBACK_MAX_CONCURRENT": 4,
    "FHIR_FALLBACK_MAX_PER_ISSUER": 2,
    # Keys whose fetch may fail without failing the call (the rules handle an unknown sex and age).
    "PREFETCH_OPTIONAL_KEYS": ["patient"],
    # true | false | "loopback" (plain http only to 127.0.0.1, localhost, [::1]; what --dev sets)
    "ALLOW_HTTP_FHIR": False,
    # Base URLs the service may fetch from: a list for every caller, or {"*": [...], "<iss>": [...]}
    # per trusted issuer. Empty: any (https) server.
    "FHIR_SERVER_ALLOWLIST": [],
    # Request limits
    "MAX_REQUEST_BYTES": 5 * 1024 * 1024,
    "MAX_JSON_DEPTH": 64,
    "MAX_DRAFT_ORDERS": 200,
    "MAX_PREFETCH_ENTRIES": 5000,
    "MAX_PREFETCH_KEYS": 100,  # the services declare about twenty
    # Clinical knowledge: path of a site file overriding entries of cards/knowledge.
    "SITE_CONFIG": None,
    # Product table written by `tacro-cds rxnorm import` (RxNorm products -> ingredient, strength, form).
    "RXNORM_PRODUCTS": None,
    # A separately hosted SMART app launched from cards; None: the built-in app (below) when enabled.
    "SMART_APP_URL": None,
    # The built-in SMART app (service.smart_app, served under /smart/): on by default as a public
    # client with PKCE. A deployment registers it with its EHR and sets its own client id; a
    # confidential client adds a secret or a private key (PEM file; private_key_jwt).
    "SMART_APP_ENABLED": True,
    "SMART_CLIENT_ID": "tacro-cds",
    "SMART_CLIENT_SECRET": None,
    "SMART_CLIENT_PRIVATE_KEY_FILE": None,
    "SMART_CLIENT_KEY_ID": None,
    "SMART_CLIENT_KEY_ALG": "RS384",
    # FHIR base of the EHR used for a standalone launch (no iss given); None: standalone refused.
    "SMART_STANDALONE_ISS": None,
    # frame-ancestors of the app's Content-Security-Policy, for EHRs that embed apps in a frame.
    "SMART_FRAME_ANCESTORS": ["'self'"],
    # Session cookie Secure flag (``serve --dev`` turns it off for http on loopback).
    "SMART_COOKIE_SECURE": True,
    "SMART_SESSION_LIFETIME_S": 8 * 3600,
    # Server-side session store (a folder shared by the workers); None: instance/smart-sessions.
    "SMART_SESSION_DIR": None,
    # Key signing the session cookie and CSRF tokens; None: generated once into instance/secret_key.
    "SECRET_KEY": None,
    "SMART_HTTP_TIMEOUT_S": 10.0,
    "LOG_LEVEL": "INFO",
}

_STRUCTURED = (dict, list)
# Boolean settings that also accept these words from the environment.
_BOOL_WORDS = {"ALLOW_HTTP_FHIR": {"loopback"}}


def _parse_env(key: str, raw: str) -> Any:
    default = DEFAULTS.get(key)
    if default is None and not raw.strip():
        return None  # an empty variable means "not set" (docker compose passes unset ones as "")
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _BOOL_WORDS.get(key, ()):
            return lowered
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"{ENV_PREFIX}{key} must be true or false, not {raw!r}")
    if isinstance(default, _STRUCTURED):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{ENV_PREFIX}{key} must be JSON: {exc}") from None
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, environment and overrides; unknown keys pass through (tests, extensions)."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):]
            config[key] = _parse_env(key, raw)
    if overrides:
        config.update(overrides)
    return config

"""Configuration: embedded defaults, then ``TACRO_CDS_<KEY>`` environment variables (JSON-parsed
where the default is structured), then the mapping given to ``create_app``."""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from .fhir_policy import http_policy

ENV_PREFIX = "TACRO_CDS_"
APP_FOLDER = "tacro-cds"


class ConfigError(ValueError):
    """A setting the service cannot start with; the message names the environment variable."""

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
    # The service's own folder (Flask's instance folder): the SQLite database when FEEDBACK_DB is
    # not set, the generated SECRET_KEY and the SMART app's sessions. None: $XDG_DATA_HOME/tacro-cds,
    # else ~/.local/share/tacro-cds (see data_directory).
    "DATA_DIR": None,
    # Storage for feedback and the JWT replay cache (SQLAlchemy URL). None: SQLite in DATA_DIR.
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
    # Server-side session store (a folder shared by the workers); None: DATA_DIR/smart-sessions.
    "SMART_SESSION_DIR": None,
    # Key signing the session cookie and CSRF tokens; None: generated once into DATA_DIR/secret_key.
    "SECRET_KEY": None,
    "SMART_HTTP_TIMEOUT_S": 10.0,
    "LOG_LEVEL": "INFO",
}

_STRUCTURED = (dict, list)
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
# Structured settings that take either shape (a list for every caller, or a mapping per issuer).
_EITHER_SHAPE = frozenset({"FHIR_SERVER_ALLOWLIST"})

# TACRO_CDS_* variables that are not settings of the service: read by the command-line tools
# (``fixtures load``, ``dev-ehr``), the test suite and the CI scripts. Any other TACRO_CDS_* name is
# a misspelt setting and stops start-up.
TOOL_VARIABLES = frozenset({"FIXTURES_DIR", "FHIR_TOKEN", "CI_WORK", "PG_STATE", "PG_PORT", "FHIR_WAIT_S",
                            "LOAD_REQUESTS", "FUZZ_EXAMPLES", "CHROMIUM"})
TOOL_PREFIXES = ("TEST_",)


# Settings with a vocabulary of their own: one parser, for the environment and for create_app's
# mapping (ALLOW_HTTP_FHIR: true/false words or "loopback", read by fhir_policy alone).
_PARSERS: dict[str, Callable[[Any], Any]] = {"ALLOW_HTTP_FHIR": http_policy}


def _parse_env(key: str, raw: str) -> Any:
    """One environment variable as its setting's type; a ConfigError names the variable."""
    name = f"{ENV_PREFIX}{key}"
    default = DEFAULTS.get(key)
    if not raw.strip():
        return default  # an empty variable means "not set" (docker compose passes unset ones as "")
    try:
        if key in _PARSERS:
            return _PARSERS[key](raw)
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in _TRUE_WORDS:
                return True
            if lowered in _FALSE_WORDS:
                return False
            raise ValueError(f"must be true or false, not {raw!r}")
        if isinstance(default, _STRUCTURED):
            value = json.loads(raw)
            shapes = (dict, list) if key in _EITHER_SHAPE else (type(default),)
            if not isinstance(value, shapes):
                wanted = " or ".join("a JSON object" if t is dict else "a JSON array" for t in shapes)
                raise ValueError(f"must be {wanted}, not {type(value).__name__}")
            return value
        if isinstance(default, int):
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"must be a whole number, not {raw!r}") from None
        if isinstance(default, float):
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"must be a number, not {raw!r}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be JSON: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return raw


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Messages for TACRO_CDS_* variables that name no setting, each with the closest valid name."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):]
        if key in DEFAULTS or key in TOOL_VARIABLES or key.startswith(TOOL_PREFIXES):
            continue
        close = difflib.get_close_matches(key, DEFAULTS, n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge defaults, environment and overrides. An unknown TACRO_CDS_* variable or a value that
    does not parse raises ConfigError naming the variable; keys of ``overrides`` that are not
    settings pass through (the collaborators tests inject)."""
    environ = os.environ if environ is None else environ
    unknown = unknown_variables(environ)
    if unknown:
        raise ConfigError("; ".join(unknown) + " (see the configuration table in the README)")
    config = dict(DEFAULTS)
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):] in DEFAULTS:
            key = name[len(ENV_PREFIX):]
            config[key] = _parse_env(key, raw)
    if overrides:
        config.update(overrides)
    for key, parse in _PARSERS.items():
        try:
            config[key] = parse(config[key])
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}{key}: {exc}") from None
    return config


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the service keeps its files when DATA_DIR is not set: ``$XDG_DATA_HOME/tacro-cds``, else
    ``~/.local/share/tacro-cds`` (the XDG base directory convention), whatever the install prefix."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_FOLDER
    home = environ.get("HOME", "").strip() or str(Path.home())
    return Path(home) / ".local" / "share" / APP_FOLDER


def data_directory(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Path:
    """The service's folder (DATA_DIR or the default), created private to this user; a folder that
    cannot be made stops start-up with a message naming the setting."""
    from .store import private_directory

    chosen = settings.get("DATA_DIR")
    folder = Path(chosen).expanduser() if chosen else default_data_dir(environ)
    folder = folder.absolute()
    try:
        private_directory(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass  # writable by this user (the folder may exist, made by someone else)
    except OSError as exc:
        origin = f"{ENV_PREFIX}DATA_DIR={chosen}" if chosen else f"the default {folder}"
        raise ConfigError(f"cannot use {origin} as the service's data folder ({exc.strerror or exc}); set "
                          f"{ENV_PREFIX}DATA_DIR to a folder this user ({_user()}) may write") from None
    return folder


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.getuid()}"

"""Configuration: one typed, frozen settings object (``Settings``), read from ``TACRO_CDS_<NAME>``
environment variables over its defaults, with the mapping given to ``create_app`` on top.

``Settings`` is the one place a setting's type, default and meaning live; every module reads its
attributes. The table in docs/configuration.md is ``settings_table()``'s output (a test compares them)."""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, SecretStr, Tag, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.fhir.policy import HttpPolicy, http_policy
from service.storage.files import private_directory

ENV_PREFIX = "TACRO_CDS_"
APP_FOLDER = "tacro-cds"
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting the service cannot start with; the message names the environment variable."""


class _NotJson(ValueError):
    """A structured setting whose text is not JSON."""


# The TACRO_CDS_* variables read when settings are built; None: os.environ. Set only for the
# duration of one ``load_settings`` call, so a test can hand in an environment of its own.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("tacro_cds_environ", default=None)


class _Environment(PydanticBaseSettingsSource):
    """TACRO_CDS_* variables of the process (or of the environment ``load_settings`` was given), as
    text: the settings' validators read them. A variable that is empty or blank counts as unset
    (docker compose passes unset ones as "")."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value = self.environ.get(f"{self.config['env_prefix']}{field_name.upper()}")
        return (value if value and value.strip() else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                found[name] = value
        return found


# A list of base URLs for every caller, or a mapping per issuer: validated as the shape it has, so
# that an error is about that shape only.
_EitherShape = Annotated[
    Annotated[list[str], Tag("list")] | Annotated[dict[str, list[str]], Tag("mapping")],
    Discriminator(lambda value: "mapping" if isinstance(value, dict) else "list"),
]
_SHAPE_TAGS = frozenset({"list", "mapping"})


# The key under which a field gives the documentation the default the service computes at start-up,
# instead of a fixed value.
SHOWN = "shown_default"


class Settings(BaseSettings):
    """Every setting of the service with its type, default and meaning. Read once at start-up;
    frozen, so no code changes a setting while the service runs."""

    # Variables are read by _Environment as text: structured values are JSON, decoded by the
    # validators below, so that a value that is not JSON gets a message of ours naming the variable.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    # Caller authentication (CDS Hooks 2.0 "Trusting CDS Clients").
    auth_required: bool = Field(
        True, description="require a signed JWT from a trusted CDS client on discovery, services and feedback"
    )
    trusted_issuers: dict[str, Any] = Field(
        default_factory=dict,
        description='issuer → `{"jwks": <JWK Set>}` and/or `{"jwks_url": ...}`, optional `"jku_allowlist": [...]`, '
        '`"tenant": ...`; how a key is chosen: "Key selection" under the security model',
    )
    external_base_url: str | None = Field(
        None,
        description="public base URL behind a proxy (e.g. `https://cds.example.org`); the JWT `aud` is "
        "checked against it instead of the URL built from the request's Host header",
    )
    jwt_leeway_s: float = Field(60.0, ge=0, description="clock leeway for `exp`, `iat`, `nbf`, in seconds")
    jwks_timeout_s: float = Field(5.0, gt=0, description="timeout of a JWK Set fetch, in seconds")
    jwks_min_refresh_s: float = Field(
        60.0,
        ge=0,
        description="minimum interval between two fetches of one JWK Set URL (an unknown `kid` "
        "refetches, forged ones must not make a fetch loop), in seconds",
    )
    jwks_cache_ttl_s: float = Field(3600.0, gt=0, description="how long a fetched JWK Set is used, in seconds")
    # Storage.
    data_dir: Path | None = Field(
        None,
        description="the service's own folder (created 0700): the SQLite database when `FEEDBACK_DB` is "
        "unset, the generated `SECRET_KEY`, the SMART app's sessions",
        json_schema_extra={SHOWN: "`$XDG_DATA_HOME/tacro-cds`, else `~/.local/share/tacro-cds`"},
    )
    feedback_db: str | None = Field(
        None,
        description="SQLAlchemy URL for feedback, issued cards and the JWT replay cache (PostgreSQL for "
        "several replicas)",
        json_schema_extra={SHOWN: "SQLite in `DATA_DIR`"},
    )
    db_auto_upgrade: bool = Field(
        True,
        description="apply the database's pending migrations at start-up (one process at a time); off: "
        "start-up refuses a database that is behind, `tacro-cds db upgrade` brings it up to date",
    )
    feedback_rate_per_minute: int = Field(
        600, ge=1, description="feedback entries per caller (JWT `iss`) per rolling minute; beyond: 429"
    )
    feedback_quota: int = Field(100_000, ge=1, description="feedback entries kept per caller in all; beyond: 429")
    issued_cards_retention_days: float = Field(
        30.0, gt=0, description="how long issued cards are kept (feedback on an older card is refused), in days"
    )
    feedback_retention_days: float = Field(
        365.0,
        gt=0,
        description="how long feedback entries are kept, in days (expired JWT ids are purged as they expire)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='browser origins allowed (the sandbox: `["https://sandbox.cds-hooks.org"]`)'
    )
    # FHIR fallback.
    fhir_timeout_s: float = Field(5.0, gt=0, description="timeout of one FHIR call, in seconds")
    fhir_total_budget_s: float = Field(10.0, gt=0, description="all FHIR fetches of one hook call together, in seconds")
    fhir_max_pages: int = Field(5, ge=1, description="pages read of one FHIR search (a prefetched first page counts)")
    fhir_max_entries: int = Field(1000, ge=1, description="entries read of one FHIR search")
    fhir_max_response_bytes: int = Field(
        20 * MIB, ge=1, description="bytes of one FHIR response body (20 MiB); larger answers are refused"
    )
    fhir_max_parallel: int = Field(16, ge=1, description="concurrent FHIR calls of one hook call")
    fhir_max_call_bytes: int = Field(
        32 * MIB,
        ge=1,
        description="all FHIR answers of one hook call together (keys, pages, Medication reads; "
        "32 MiB); beyond: 412 `fhir-too-large`",
    )
    fhir_pooled_servers: int = Field(
        32,
        ge=1,
        description="FHIR servers per worker whose connections are kept alive between hook calls "
        "(least recently used dropped beyond), each with at most `FHIR_MAX_PARALLEL` idle "
        "connections; a request whose kept-alive connection the server closed is sent once "
        "more on a new one, within the call's deadline",
    )
    fhir_fallback_max_concurrent: int = Field(
        4,
        ge=1,
        description="hook calls per worker process fetching from FHIR at once (`serve` sets half its "
        "`--threads`, all of them below 4, unless set); beyond: 503 with `Retry-After`",
    )
    fhir_fallback_max_per_issuer: int = Field(
        2,
        ge=1,
        description="hook calls per caller (JWT `iss`) and worker fetching from FHIR at once; beyond: "
        "503 with `Retry-After`",
    )
    prefetch_optional_keys: list[str] = Field(
        default_factory=lambda: ["patient"],
        description="prefetch keys whose fetch may fail without failing the call (the rules handle an "
        "unknown sex and age)",
    )
    allow_http_fhir: HttpPolicy = Field(
        "never",
        description="plain-http FHIR servers: `false`/`never`, `true`/`any`, or `loopback` (only "
        "127.0.0.1, localhost, [::1]; what `--dev` sets)",
    )
    fhir_server_allowlist: _EitherShape = Field(
        default_factory=list,
        description='base URLs the service may fetch from, for every caller, or `{"*": [...], "<issuer>": '
        "[...]}` per trusted issuer; empty: any https server",
    )
    # Request limits.
    max_request_bytes: int = Field(5 * MIB, ge=1, description="request body size (5 MiB); larger bodies get 413")
    max_json_depth: int = Field(64, ge=1, description="nesting depth of a request body; deeper: 400")
    max_draft_orders: int = Field(200, ge=1, description="`draftOrders` entries and `selections`; more: 400")
    max_prefetch_entries: int = Field(5000, ge=1, description="resources in all prefetch values; more: 400")
    max_prefetch_keys: int = Field(
        100, ge=1, description="prefetch keys of a request (the services declare about twenty); more: 400"
    )
    # Clinical knowledge.
    site_config: Path | None = Field(None, description="path of the site file overriding `cards/knowledge`")
    rxnorm_products: Path | None = Field(
        None, description="product table written by `tacro-cds rxnorm import` (added to the shipped products)"
    )
    # The SMART app.
    smart_app_url: str | None = Field(
        None, description="a separately hosted SMART app linked from every card (else the built-in one)"
    )
    smart_app_enabled: bool = Field(
        True, description="serve the built-in SMART app under `/smart/` and link cards to it"
    )
    smart_client_id: str = Field("tacro-cds", min_length=1, description="the app's client id at the EHR")
    smart_client_secret: SecretStr | None = Field(
        None, description="confidential client: the secret (`client_secret_basic`)"
    )
    smart_client_private_key_file: Path | None = Field(
        None, description="confidential asymmetric client (`private_key_jwt`): its PEM private key file"
    )
    smart_client_key_id: str | None = Field(None, description="the `kid` of that private key")
    smart_client_key_alg: str = Field("RS384", min_length=1, description="the algorithm of that private key")
    smart_standalone_iss: str | None = Field(
        None, description="FHIR base for a standalone launch (no `iss`); none: standalone launch refused"
    )
    smart_frame_ancestors: list[str] = Field(
        default_factory=lambda: ["'self'"],
        description="CSP `frame-ancestors` of the app's pages, for EHRs that embed apps",
    )
    smart_cookie_secure: bool = Field(
        True, description="`Secure` on the app's session cookie (`serve --dev` sets false)"
    )
    smart_session_lifetime_s: int = Field(8 * 3600, gt=0, description="app session lifetime (8 h), in seconds")
    smart_session_dir: Path | None = Field(
        None,
        description="the app sessions' server-side store, a folder shared by the workers",
        json_schema_extra={SHOWN: "`DATA_DIR/smart-sessions`"},
    )
    secret_key: SecretStr | None = Field(
        None,
        description="signs the app's session cookie and CSRF tokens; set one shared value for several hosts",
        json_schema_extra={SHOWN: "generated into `DATA_DIR/secret_key`"},
    )
    smart_http_timeout_s: float = Field(10.0, gt=0, description="discovery and token calls to the EHR, in seconds")
    log_level: str = Field(
        "INFO", description="level of the JSON logs on stderr (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`)"
    )
    # GET /metrics (Prometheus). The counting itself always runs.
    metrics_token: SecretStr | None = Field(
        None,
        description="`/metrics` is served to a scraper sending `Authorization: Bearer <METRICS_TOKEN>`; "
        "with neither this nor `METRICS_OPEN`, `/metrics` answers 404",
    )
    metrics_open: bool = Field(
        False, description="serve `/metrics` without a token (a bind nobody else reaches; `serve --dev` sets it)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The mapping given to create_app, then the environment; no .env file or secrets folder.
        environ = _ENVIRON.get()
        return init_settings, _Environment(settings_cls, os.environ if environ is None else environ)

    @field_validator(
        "external_base_url",
        "data_dir",
        "feedback_db",
        "site_config",
        "rxnorm_products",
        "smart_app_url",
        "smart_client_secret",
        "smart_client_private_key_file",
        "smart_client_key_id",
        "smart_standalone_iss",
        "smart_session_dir",
        "secret_key",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "trusted_issuers",
        "cors_origins",
        "prefetch_optional_keys",
        "fhir_server_allowlist",
        "smart_frame_ancestors",
        mode="before",
    )
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise _NotJson(f"must be JSON: {exc}") from None
        return value

    @field_validator("fhir_server_allowlist", mode="before")
    @classmethod
    def _either_shape(cls, value: Any) -> Any:
        # Checked before the union, so a wrong shape is one message instead of one per branch.
        if isinstance(value, str):
            value = cls._json(value)
        if not isinstance(value, (list, dict)):
            raise ValueError(f"must be a JSON object or a JSON array, not {type(value).__name__}")
        return value

    @field_validator("allow_http_fhir", mode="before")
    @classmethod
    def _http_policy(cls, value: Any) -> HttpPolicy:
        try:
            return http_policy(value)  # true/false words or "loopback": one vocabulary, fhir_policy's
        except ValueError:
            raise ValueError(f"must be true, false or loopback, not {value!r}") from None

    @field_validator("log_level", mode="after")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}, not {value!r}")
        return level

    @property
    def secret_key_value(self) -> str | None:
        """``SECRET_KEY`` as text (kept as a SecretStr so that printing the settings never shows it)."""
        return self.secret_key.get_secret_value() if self.secret_key else None

    @property
    def smart_client_secret_value(self) -> str | None:
        """``SMART_CLIENT_SECRET`` as text."""
        return self.smart_client_secret.get_secret_value() if self.smart_client_secret else None

    @property
    def metrics_token_value(self) -> str | None:
        """``METRICS_TOKEN`` as text."""
        return self.metrics_token.get_secret_value() if self.metrics_token else None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The names of the settings, as variables (after the prefix), create_app's mapping and the docs say them.
SETTING_NAMES: tuple[str, ...] = tuple(name.upper() for name in Settings.model_fields)

# TACRO_CDS_* variables that are not settings of the service: read by the command-line tools
# (``fixtures load``, ``dev-ehr``), the test suite and the CI scripts. Any other TACRO_CDS_* name is
# a misspelt setting and stops start-up.
TOOL_VARIABLES = frozenset(
    {
        "FIXTURES_DIR",
        "FHIR_TOKEN",
        "CI_WORK",
        "PG_STATE",
        "PG_PORT",
        "FHIR_WAIT_S",
        "LOAD_REQUESTS",
        "FUZZ_EXAMPLES",
        "CHROMIUM",
    }
)
TOOL_PREFIXES = ("TEST_",)

# What create_app took as configuration keys before they became its keyword arguments.
_COLLABORATORS = {
    "CLOCK": "clock",
    "STORE": "store",
    "VERIFIER": "verifier",
    "PREFETCH_RESOLVER": "resolver",
    "UUID_FACTORY": "uuid_factory",
}


def _closest(name: str) -> str | None:
    close = difflib.get_close_matches(name, SETTING_NAMES, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Messages for TACRO_CDS_* variables that name no setting, each with the closest valid name."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :]
        if key in SETTING_NAMES or key in TOOL_VARIABLES or key.startswith(TOOL_PREFIXES):
            continue
        close = _closest(key)
        hint = f"; did you mean {ENV_PREFIX}{close}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def _unknown_keys(keys: Iterable[str]) -> list[str]:
    """Messages for keys of create_app's mapping that name no setting."""
    problems = []
    for key in keys:
        if key.upper() in SETTING_NAMES:
            continue
        if key.upper() in _COLLABORATORS:
            problems.append(f"{key} is not a setting; pass it as create_app(..., {_COLLABORATORS[key.upper()]}=...)")
            continue
        close = _closest(key.upper())
        problems.append(f"{key} is not a setting" + (f"; did you mean {close}?" if close else ""))
    return problems


# How a value that does not fit its setting is said, by pydantic's error type.
_SAID: dict[str, str] = {
    "int_parsing": "must be a whole number, not {input!r}",
    "int_from_float": "must be a whole number, not {input!r}",
    "int_type": "must be a whole number, not {input!r}",
    "float_parsing": "must be a number, not {input!r}",
    "float_type": "must be a number, not {input!r}",
    "bool_parsing": "must be true or false, not {input!r}",
    "bool_type": "must be true or false, not {input!r}",
    "dict_type": "must be a JSON object, not {kind}",
    "list_type": "must be a JSON array, not {kind}",
    "string_type": "must be text, not {kind}",
    "path_type": "must be a path, not {kind}",
    "greater_than": "must be greater than {gt}, not {input!r}",
    "greater_than_equal": "must be at least {ge}, not {input!r}",
    "string_too_short": "must not be empty",
    "literal_error": "must be one of {expected}, not {input!r}",
}


def _said(error: Mapping[str, Any]) -> str:
    """One pydantic error as a line naming the environment variable."""
    loc = error["loc"]
    name = f"{ENV_PREFIX}{str(loc[0]).upper()}"
    within = "".join(f"[{part!r}]" for i, part in enumerate(loc[1:]) if not (i == 0 and part in _SHAPE_TAGS))
    ctx = {
        key: f"{value:g}" if isinstance(value, (int, float)) else value
        for key, value in (error.get("ctx") or {}).items()
    }
    if isinstance(ctx.get("error"), _NotJson):
        return f"{name}{within} {ctx['error']}"
    if error["type"] == "value_error":
        text = str(ctx.get("error", error["msg"]))
    elif error["type"] == "extra_forbidden":
        text = "is not a setting"
    elif error["type"] in _SAID:
        text = _SAID[error["type"]].format(input=error.get("input"), kind=type(error.get("input")).__name__, **ctx)
    else:
        text = error["msg"]
    return f"{name}{within}: {text}"


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: defaults, then TACRO_CDS_* variables of ``environ`` (default: the process's),
    then ``overrides`` (keys are setting names, e.g. ``{"AUTH_REQUIRED": False}``). An unknown
    variable or key, or a value that does not fit its setting, raises ConfigError naming the
    variable (and the closest valid name when it is misspelt)."""
    chosen = os.environ if environ is None else environ
    unknown = unknown_variables(chosen) + _unknown_keys(overrides or {})
    values = {key.lower(): value for key, value in (overrides or {}).items() if key.upper() in SETTING_NAMES}
    token = _ENVIRON.set(chosen)
    try:
        settings = Settings(**values)
        wrong: list[str] = []
    except ValidationError as exc:
        wrong = list(dict.fromkeys(_said(e) for e in exc.errors()))
    finally:
        _ENVIRON.reset(token)
    if unknown or wrong:  # every problem in one message, not one per start attempt
        hint = " (see the settings in docs/configuration.md)" if unknown else ""
        raise ConfigError("; ".join(unknown + wrong) + hint)
    return settings


def default(name: str) -> Any:
    """The shipped default of one setting (``default("FHIR_TIMEOUT_S")``), for a class that is also
    used outside the service, with no settings object at hand."""
    return Settings.model_fields[name.lower()].get_default(call_default_factory=True)


def default_settings() -> Settings:
    """The settings as shipped: every default, no environment."""
    return load_settings(environ={})


def settings_table() -> str:
    """The configuration table of docs/configuration.md: one row per setting, its default and its meaning."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get(SHOWN)
        if shown is None:
            default = field.get_default(call_default_factory=True)
            shown = "none" if default is None else f"`{default if isinstance(default, str) else json.dumps(default)}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows) + "\n"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the service keeps its files when DATA_DIR is not set: ``$XDG_DATA_HOME/tacro-cds``, else
    ``~/.local/share/tacro-cds`` (the XDG base directory convention), whatever the install prefix."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_FOLDER
    home = environ.get("HOME", "").strip() or str(Path.home())
    return Path(home) / ".local" / "share" / APP_FOLDER


def data_directory(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    """The service's folder (DATA_DIR or the default), created private to this user; a folder that
    cannot be made stops start-up with a message naming the setting."""
    chosen = settings.data_dir
    folder = Path(chosen).expanduser() if chosen else default_data_dir(environ)
    folder = folder.absolute()
    try:
        private_directory(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass  # writable by this user (the folder may exist, made by someone else)
    except OSError as exc:
        origin = f"{ENV_PREFIX}DATA_DIR={chosen}" if chosen else f"the default {folder}"
        raise ConfigError(
            f"cannot use {origin} as the service's data folder ({exc.strerror or exc}); set "
            f"{ENV_PREFIX}DATA_DIR to a folder this user ({_user()}) may write"
        ) from None
    return folder


def database_url(settings: Settings, folder: Path | None = None) -> str:
    """The store's SQLAlchemy URL: FEEDBACK_DB, else the SQLite file in the data folder (``folder``
    when the caller has it already)."""
    if settings.feedback_db:
        return settings.feedback_db
    return f"sqlite:///{(folder or data_directory(settings)) / 'tacro-cds.sqlite'}"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.getuid()}"

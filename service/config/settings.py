"""The settings definitions: ``Settings``, the one place a setting's type, default and meaning live,
with the validators that read each variable's text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Discriminator, Field, SecretStr, Tag, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.config.environment import ENV_PREFIX, NotJsonError, environment_source
from service.fhir.policy import HttpPolicy, http_policy

MIB = 1024 * 1024


# A list of base URLs for every caller, or a mapping per issuer: validated as the shape it has, so
# that an error is about that shape only.
_EitherShape = Annotated[
    Annotated[list[str], Tag("list")] | Annotated[dict[str, list[str]], Tag("mapping")],
    Discriminator(lambda value: "mapping" if isinstance(value, dict) else "list"),
]
SHAPE_TAGS = frozenset({"list", "mapping"})


# The key under which a field gives the documentation the default the service computes at start-up,
# instead of a fixed value.
SHOWN = "shown_default"


class Settings(BaseSettings):
    """Every setting of the service with its type, default and meaning. Read once at start-up;
    frozen, so no code changes a setting while the service runs."""

    # Variables are read by EnvironmentSource as text: structured values are JSON, decoded by the
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
    site_time_zone: str = Field(
        "UTC",
        description='IANA time zone of the clinic (e.g. `Asia/Tokyo`): the rules\' "today" and every day '
        "count are the clinic's date, not the UTC date",
    )
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
    smart_issuers: list[str] = Field(
        default_factory=list,
        description="FHIR base URLs of the EHRs the app may be launched for (an `iss` equal to or below one); "
        "empty: those of `FHIR_SERVER_ALLOWLIST`; neither: only a development EHR on this machine, in development",
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

    # Pilot: how a service answers while a site tries it out, and who reviews what it would have said.
    pilot_modes: dict[str, Any] = Field(
        default_factory=dict,
        description='per service id (or `"*"`) `live`, `silent` (cards recorded, none answered) or `shadow` (cards '
        "answered only to `PILOT_SHADOW_USERS`, all recorded); an issuer URL as key maps to the same for that "
        'CDS client: `{"*": "silent", "https://ehr.example.org": {"tacrolimus-order-sign": "shadow"}}`',
    )
    pilot_shadow_users: list[str] = Field(
        default_factory=list,
        description="in `shadow` mode the practitioners who get the cards: `Practitioner/<id>` as the hook's "
        "`userId` or the token's `fhirUser` names them",
    )
    reviewers: list[str] = Field(
        default_factory=list,
        description="`fhirUser` references (`Practitioner/<id>`) allowed to sign in to `/review/`",
    )
    require_signed_rulebook: bool = Field(
        False,
        description="refuse to start a service in `live` mode while the effective knowledge's rulebook is "
        "unsigned or a site default is unconfirmed",
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
        return init_settings, environment_source(settings_cls)

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
        "pilot_modes",
        "pilot_shadow_users",
        "reviewers",
        "cors_origins",
        "prefetch_optional_keys",
        "fhir_server_allowlist",
        "smart_issuers",
        "smart_frame_ancestors",
        mode="before",
    )
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise NotJsonError(f"must be JSON: {exc}") from None
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

    @field_validator("site_time_zone", mode="after")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone name such as Europe/London, not {value!r}") from None
        return value

    def site_today(self, now: datetime) -> date:
        """The clinic's date at the moment ``now`` (a naive ``now`` is taken as UTC)."""
        aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        return aware.astimezone(ZoneInfo(self.site_time_zone)).date()

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


def default(name: str) -> Any:
    """The shipped default of one setting (``default("FHIR_TIMEOUT_S")``), for a class that is also
    used outside the service, with no settings object at hand."""
    return Settings.model_fields[name.lower()].get_default(call_default_factory=True)

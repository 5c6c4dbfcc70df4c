"""tacro-cds: a CDS Hooks 2.0 service for tacrolimus in IVF recurrent implantation failure.

``create_app(settings, *, store=..., clock=...)`` builds the Flask app: the settings (``service.config``)
and the collaborators a test or an embedding program swaps in enter there.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask.globals import request_ctx
from flask_cors import CORS

from cards.knowledge import LoadedKnowledge, dose_confirmation, load_knowledge_report, unconfirmed_entries
from service.api.auth import CallerVerifier
from service.api.errors import register_error_handler
from service.api.openapi import description_text
from service.api.views import bp
from service.app_runtime import runtime
from service.config import ENV_PREFIX, ConfigError, Settings, data_directory, database_url, load_settings
from service.errors import UnknownServiceError
from service.hooks.pilot import PilotPolicy, pilot_policy
from service.hooks.prefetch import PrefetchResolver
from service.hooks.registry import build_registry
from service.hooks.templates import prefetch_templates
from service.hooks.validation import compile_validators
from service.ops import metrics
from service.ops.logs import configure_logging
from service.review.rulebook_state import RulebookState, knowledge_hash, live_refusal
from service.review.web import init_review
from service.runtime import Runtime
from service.smart_app import init_smart_app
from service.storage.pilot import PilotRecords
from service.storage.store import FeedbackQuota, Retention, Store

__all__ = ["create_app"]

log = logging.getLogger("tacro_cds.access")

# /metrics checks its own token (service.ops.metrics.scrape_allowed), not a CDS client's JWT.
UNPROTECTED = {"cds.healthz", "cds.readyz", "cds.openapi", "cds.metrics_exposition"}
# Blueprints that authenticate their users themselves (the SMART app: OAuth with the EHR), not with
# a CDS client's JWT.
SELF_AUTHENTICATED = {"smart_app", "review"}


def create_app(
    settings: Settings | Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    verifier: CallerVerifier | None = None,
    resolver: PrefetchResolver | None = None,
    clock: Callable[[], datetime] | None = None,
    uuid_factory: Callable[[], str] | None = None,
) -> Flask:
    """Build the app from ``settings``: a ``Settings``, or a mapping of setting names to values
    merged over the TACRO_CDS_* environment (None: the environment alone). The collaborators are
    built from the settings unless given: the feedback and replay ``store``, the caller JWT
    ``verifier``, the prefetch ``resolver``, the ``clock`` and the card ``uuid_factory``."""
    if not isinstance(settings, Settings):
        settings = load_settings(settings)
    # Flask would put an installed package's instance folder under <prefix>/var, which a service
    # user may not write: the folder is DATA_DIR, by default in the user's XDG data home.
    app = Flask(__name__, instance_path=str(data_directory(settings)), instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(settings.log_level)
    compile_validators()  # every request schema checked and compiled once, before the first call
    description_text()  # the served OpenAPI document assembled from its schema files, once

    db_url = database_url(settings, Path(app.instance_path))
    loaded = load_knowledge_report(settings.site_config, settings.rxnorm_products)
    _report_knowledge(loaded)
    knowledge = loaded.tables
    clock = clock or (lambda: datetime.now(UTC))
    store = store or Store(
        db_url,
        clock=clock,
        retention=Retention(
            issued_cards_days=settings.issued_cards_retention_days, feedback_days=settings.feedback_retention_days
        ),
        quota=FeedbackQuota(per_minute=settings.feedback_rate_per_minute, total=settings.feedback_quota),
        auto_upgrade=settings.db_auto_upgrade,
    )
    if verifier is None:
        try:
            verifier = CallerVerifier(settings, store, clock=clock)
        except ValueError as exc:
            raise ConfigError(f"{ENV_PREFIX}TRUSTED_ISSUERS: {exc}") from None
    registry = build_registry(prefetch_templates(knowledge))
    try:
        pilot = pilot_policy(settings.pilot_modes, settings.pilot_shadow_users, (s.id for s in registry))
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}PILOT_MODES / PILOT_SHADOW_USERS: {exc}") from None
    records = PilotRecords(store)
    book = RulebookState(knowledge_hash(knowledge), unconfirmed_entries(knowledge), records)
    _report_rulebook(book, settings, pilot, [s.id for s in registry])
    app.extensions["tacro_cds"] = Runtime(
        settings=settings,
        knowledge=knowledge,
        registry=registry,
        resolver=resolver or PrefetchResolver(settings),
        verifier=verifier,
        store=store,
        clock=clock,
        new_uuid=uuid_factory or (lambda: str(uuid.uuid4())),
        pilot=pilot,
        pilot_records=records,
        rulebook=book,
    )
    metrics.pilot_modes(pilot.default_modes(s.id for s in registry))

    if settings.auth_required:
        _warn_about_open_defaults(settings)
    CORS(
        app,
        origins=settings.cors_origins,
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    register_error_handler(app)
    app.register_blueprint(bp)
    init_smart_app(app, settings)
    init_review(app, settings)
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_release_memory)
    return app


def _report_knowledge(loaded: LoadedKnowledge) -> None:
    """Say at start-up what the knowledge base leaves to a clinician (the checks themselves ran in the
    loader, which refuses to start on an error)."""
    for warning in loaded.warnings:
        log.warning("knowledge: %s", warning)
    for override in loaded.critical_overrides:
        log.warning("knowledge: critical entry overridden by the site file: %s", override)
    dose = dose_confirmation(loaded.tables.get("protocol") or {})
    if not dose.confirmed:
        log.warning("knowledge: dose card unconfirmed until the site confirms %s", " and ".join(dose.pending))
    log.info(
        "knowledge: %d site change(s), %d imported product(s), unconfirmed: %s",
        len(loaded.changes),
        loaded.products_imported,
        "; ".join(unconfirmed_entries(loaded.tables)) or "none",
    )


def _report_rulebook(book: RulebookState, settings: Settings, pilot: PilotPolicy, service_ids: list[str]) -> None:
    """Say which knowledge is in use and whether its rulebook is signed; with REQUIRE_SIGNED_RULEBOOK,
    refuse to start a service in live mode on unsigned knowledge or unconfirmed site defaults."""
    report = book.report()
    if report["signed"]:
        who = "; ".join(f"{s['name']} ({s['role']}) {s['at']}" for s in report["signedBy"])
        log.info("rulebook: knowledge %s signed by %s", book.knowledge_hash, who)
    else:
        log.warning("rulebook: knowledge %s unsigned", book.knowledge_hash)
    metrics.rulebook(book.knowledge_hash, report["signed"])
    live = [sid for sid in service_ids if "live" in pilot.modes_of(sid)]
    why = live_refusal(book, settings.require_signed_rulebook, live)
    if why:
        raise ConfigError(why)


def _warn_about_open_defaults(settings: Settings) -> None:
    """Say at start-up what a production deployment should pin down."""
    if not settings.trusted_issuers:
        log.warning(
            "TRUSTED_ISSUERS is empty while AUTH_REQUIRED is on: every call will be refused "
            "with 401; set TACRO_CDS_TRUSTED_ISSUERS to the CDS clients' issuers and keys"
        )
    if not settings.external_base_url:
        log.warning(
            "EXTERNAL_BASE_URL is not set: the JWT audience is checked against the URL built "
            "from the request's Host header; set it to the public base URL in production"
        )
    if not settings.fhir_server_allowlist:
        log.warning(
            "FHIR_SERVER_ALLOWLIST is empty: any public https fhirServer may be called (internal "
            "addresses are refused); list the EHRs' FHIR base URLs in production"
        )


def _start() -> None:
    g.started = time.perf_counter()
    req = request_ctx.request
    if req.method == "OPTIONS" or req.endpoint in UNPROTECTED or req.blueprint in SELF_AUTHENTICATED:
        return
    rt = runtime()
    if rt.settings.auth_required:
        audience = _called_url(rt.settings.external_base_url)
        g.caller = rt.verifier.verify(req.headers.get("Authorization"), audience)


def _called_url(external_base: str | None) -> str:
    """The exact URL the caller called, as the JWT's ``aud`` must name it."""
    if external_base:
        return external_base.rstrip("/") + request.path
    return request.base_url


def _release_memory(_exc: BaseException | None) -> None:
    release = getattr(runtime().resolver, "release_memory", None)
    if release is not None:
        release()


def _finish(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Cache-Control"] = "no-store"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    # The request itself, not its proxy: this runs on every request and reads it six times.
    req = request_ctx.request
    method, status = req.method, response.status_code
    service_id = (req.view_args or {}).get("service_id")
    rule = req.url_rule
    route = rule.rule if rule else "(unmatched)"
    # A CORS preflight (OPTIONS) to a service's URL is not a call of the service.
    if req.endpoint == "cds.call_service" and method == "POST":
        metrics.http_request(route, method, status, seconds, service_id, _hook_of(service_id))
    else:
        metrics.http_request(route, method, status, seconds)
    fields = {
        "method": method,
        "path": route,
        "service": service_id,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        **g.get("log_fields", {}),
    }
    log.info("call", extra={k: v for k, v in fields.items() if v is not None})
    return response


def _hook_of(service_id: str | None) -> str | None:
    """The hook of the service called, None when no service has that id (a 404 is counted too)."""
    try:
        return runtime().registry.get(service_id).hook if service_id is not None else None
    except UnknownServiceError:
        return None

"""tacro-cds: a CDS Hooks 2.0 service for tacrolimus in IVF recurrent implantation failure.

``create_app(config)`` builds the Flask app; everything configurable enters there.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, Response, g, request
from flask_cors import CORS

from cards.knowledge import LoadedKnowledge, dose_confirmation, load_knowledge_report, unconfirmed_entries

from . import metrics
from .auth import CallerVerifier
from .config import data_directory, database_url, load_config
from .errors import register_error_handler
from .logs import configure_logging
from .openapi import description_text
from .prefetch import PrefetchResolver
from .prefetch_templates import prefetch_templates
from .runtime import Runtime, runtime
from .services import build_registry
from .smart_app import init_smart_app
from .store import FeedbackQuota, Retention, Store
from .validation import compile_validators
from .views import bp

__all__ = ["create_app"]

log = logging.getLogger("tacro_cds.access")

# /metrics checks its own token (service.metrics.scrape_allowed), not a CDS client's JWT.
UNPROTECTED = {"cds.healthz", "cds.readyz", "cds.openapi", "cds.metrics_exposition"}
# Blueprints that authenticate their users themselves (the SMART app: OAuth with the EHR), not with
# a CDS client's JWT.
SELF_AUTHENTICATED = {"smart_app"}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then TACRO_CDS_* environment variables, then ``config``."""
    settings = load_config(config)
    # Flask would put an installed package's instance folder under <prefix>/var, which a service
    # user may not write: the folder is DATA_DIR, by default in the user's XDG data home.
    app = Flask(__name__, instance_path=str(data_directory(settings)), instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_REQUEST_BYTES"]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(settings["LOG_LEVEL"])
    compile_validators()  # every request schema checked and compiled once, before the first call
    description_text()  # the served OpenAPI document assembled from its schema files, once

    db_url = database_url(settings, Path(app.instance_path))
    loaded = load_knowledge_report(settings["SITE_CONFIG"], settings["RXNORM_PRODUCTS"])
    _report_knowledge(loaded)
    knowledge = loaded.tables
    clock = settings.get("CLOCK") or (lambda: datetime.now(timezone.utc))
    store = settings.get("STORE") or Store(
        db_url, clock=clock,
        retention=Retention(issued_cards_days=float(settings["ISSUED_CARDS_RETENTION_DAYS"]),
                            feedback_days=float(settings["FEEDBACK_RETENTION_DAYS"])),
        quota=FeedbackQuota(per_minute=int(settings["FEEDBACK_RATE_PER_MINUTE"]),
                            total=int(settings["FEEDBACK_QUOTA"])),
        auto_upgrade=bool(settings["DB_AUTO_UPGRADE"]))
    app.extensions["tacro_cds"] = Runtime(
        config=settings,
        knowledge=knowledge,
        registry=build_registry(prefetch_templates(knowledge)),
        resolver=settings.get("PREFETCH_RESOLVER") or PrefetchResolver(settings),
        verifier=settings.get("VERIFIER") or CallerVerifier(settings, store),
        store=store,
        clock=clock,
        new_uuid=settings.get("UUID_FACTORY") or (lambda: str(uuid.uuid4())),
    )

    if settings["AUTH_REQUIRED"]:
        _warn_about_open_defaults(settings)
    CORS(app, origins=settings["CORS_ORIGINS"] or [], allow_headers=["Authorization", "Content-Type"],
         methods=["GET", "POST", "OPTIONS"], max_age=600)
    register_error_handler(app)
    app.register_blueprint(bp)
    init_smart_app(app, settings)
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
    log.info("knowledge: %d site change(s), %d imported product(s), unconfirmed: %s", len(loaded.changes),
             loaded.products_imported, "; ".join(unconfirmed_entries(loaded.tables)) or "none")


def _warn_about_open_defaults(settings: Mapping[str, Any]) -> None:
    """Say at start-up what a production deployment should pin down."""
    if not settings["TRUSTED_ISSUERS"]:
        log.warning("TRUSTED_ISSUERS is empty while AUTH_REQUIRED is on: every call will be refused "
                    "with 401; set TACRO_CDS_TRUSTED_ISSUERS to the CDS clients' issuers and keys")
    if not settings["EXTERNAL_BASE_URL"]:
        log.warning("EXTERNAL_BASE_URL is not set: the JWT audience is checked against the URL built "
                    "from the request's Host header; set it to the public base URL in production")
    if not settings["FHIR_SERVER_ALLOWLIST"]:
        log.warning("FHIR_SERVER_ALLOWLIST is empty: any public https fhirServer may be called (internal "
                    "addresses are refused); list the EHRs' FHIR base URLs in production")


def _start() -> None:
    g.started = time.perf_counter()
    if request.method == "OPTIONS" or request.endpoint in UNPROTECTED or request.blueprint in SELF_AUTHENTICATED:
        return
    rt = runtime()
    if rt.config["AUTH_REQUIRED"]:
        audience = _called_url(rt.config.get("EXTERNAL_BASE_URL"))
        g.caller = rt.verifier.verify(request.headers.get("Authorization"), audience)


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
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    service_id = (request.view_args or {}).get("service_id")
    route = request.url_rule.rule if request.url_rule else "(unmatched)"
    if request.endpoint == "cds.call_service":
        hooks = {service.id: service.hook for service in runtime().registry}
        metrics.http_request(route, request.method, response.status_code, seconds, service_id, hooks.get(service_id))
    else:
        metrics.http_request(route, request.method, response.status_code, seconds)
    fields = {
        "method": request.method,
        "path": route,
        "service": service_id,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
        **g.get("log_fields", {}),
    }
    log.info("call", extra={k: v for k, v in fields.items() if v is not None})
    return response

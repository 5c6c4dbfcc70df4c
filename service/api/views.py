"""HTTP endpoints. Thin: parse, delegate, serialise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from service.api.feedback import validate_feedback
from service.api.openapi import description_text
from service.app_runtime import launch_url, runtime
from service.errors import PayloadTooLargeError, UnauthorizedError, UnknownServiceError
from service.hooks import pipeline
from service.hooks.decode import decode_body
from service.hooks.validation import parse_json
from service.ops import metrics

bp = Blueprint("cds", __name__)


def _raw_body() -> bytes:
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut at the limit silently by werkzeug; a byte left
        # unread means the body was larger than allowed, not that it ended there.
        if request.environ["wsgi.input"].read(1):
            raise PayloadTooLargeError("request body too large")
    return raw


def _body() -> Any:
    return parse_json(_raw_body(), max_depth=runtime().settings.max_json_depth)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to serve: the database takes a write (a full disk or a lost database is a 503). Says each
    service's pilot mode and whether the rulebook of the knowledge in use is signed."""
    rt = runtime()
    rt.store.check_writable()
    answer: dict[str, Any] = {
        "status": "ready",
        "pilotModes": rt.pilot.default_modes(s.id for s in rt.registry),
    }
    if rt.rulebook is not None:
        answer["rulebook"] = rt.rulebook.report()
        metrics.rulebook(rt.rulebook.knowledge_hash, answer["rulebook"]["signed"])
    return jsonify(answer)


def _caller() -> tuple[str | None, str | None]:
    """The verified caller's iss and tenant (None, None with authentication off)."""
    claims = g.get("caller") or {}
    tenant = claims.get("tenant")
    return claims.get("iss"), tenant if isinstance(tenant, str) else None


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(description_text(), mimetype="application/json")


@bp.get("/metrics")
def metrics_exposition() -> Response:
    """Prometheus text format; who may scrape: ``metrics.scrape_allowed``."""
    allowed = metrics.scrape_allowed(runtime().settings, request.headers.get("Authorization"))
    if allowed is None:
        raise UnknownServiceError("no such resource")  # the same 404 as a path that does not exist
    if not allowed:
        raise UnauthorizedError("metrics scrape without the metrics token")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


@bp.get("/cds-services")
def discovery() -> Response:
    return jsonify({"services": [s.discovery() for s in runtime().registry]})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    rt = runtime()
    rt.registry.get(service_id)
    issuer, tenant = _caller()  # the issuer selects the per-issuer FHIR server allowlist and pilot mode
    fhir_user = (g.get("caller") or {}).get("fhirUser")
    body = decode_body(_raw_body(), max_depth=rt.settings.max_json_depth)
    hook_request, answer, kinds = pipeline.invoke(
        rt,
        service_id,
        body.document,
        issuer=issuer,
        app_url=launch_url(rt.settings),
        tenant=tenant,
        fhir_user=fhir_user if isinstance(fhir_user, str) else None,
        checked_for=body.checked_for,
    )
    g.log_fields = {
        "hook": hook_request.hook,
        "hookInstance": hook_request.hook_instance,
        "cards": len(answer["cards"]),
    }
    rt.store.record_cards(service_id, answer["cards"], kinds, issuer=issuer, tenant=tenant)
    metrics.cards_issued(service_id, kinds, [card["indicator"] for card in answer["cards"]])
    return jsonify(answer)


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> Response:
    rt = runtime()
    rt.registry.get(service_id)
    issuer, tenant = _caller()
    result = rt.store.submit_feedback(service_id, validate_feedback(_body()), issuer=issuer, tenant=tenant)
    g.log_fields = {"cards": result.stored}
    metrics.feedback(service_id, result.stored_outcomes, result.refused)
    answer: dict[str, Any] = {"stored": result.stored}
    if result.refused:
        answer["refused"] = result.refused
    return jsonify(answer)


@bp.get("/cds-services/<service_id>/feedback/summary")
def feedback_summary(service_id: str) -> Response:
    rt = runtime()
    rt.registry.get(service_id)
    issuer, tenant = _caller()
    return jsonify(rt.store.feedback_summary(service_id, issuer=issuer, tenant=tenant))

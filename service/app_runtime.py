"""The ``Runtime`` of the Flask app answering the current request, and the SMART app's launch URL
(for the views and the SMART app)."""

from __future__ import annotations

from flask import current_app, request

from service.config import Settings
from service.fhir.policy import is_loopback_host
from service.runtime import Runtime

LAUNCH_PATH = "/smart/launch"  # served by the SMART app's blueprint


def runtime() -> Runtime:
    """The collaborators ``create_app`` built for the app handling this request."""
    rt: Runtime = current_app.extensions["tacro_cds"]
    return rt


def launch_url(settings: Settings) -> str | None:
    """The URL cards link to: ``SMART_APP_URL`` when set, else this deployment's own app (when on)."""
    if settings.smart_app_url:
        return settings.smart_app_url
    if not settings.smart_app_enabled:
        return None
    if settings.external_base_url:
        return settings.external_base_url.rstrip("/") + LAUNCH_PATH
    if not request_host_is_loopback():
        # The Host header is the caller's to choose: a card must not link to a host it named. Set
        # EXTERNAL_BASE_URL (docs/security.md); until then, cards carry no link to the app.
        return None
    return request.url_root.rstrip("/") + LAUNCH_PATH


def request_host_is_loopback() -> bool:
    """Whether the request's Host names this machine (``localhost`` or a loopback address)."""
    host = request.host
    name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return is_loopback_host(name)

"""The ``Runtime`` of the Flask app answering the current request, and the SMART app's launch URL
(for the views and the SMART app)."""

from __future__ import annotations

from flask import current_app, request

from service.config import Settings
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
    base = settings.external_base_url or request.url_root
    return base.rstrip("/") + LAUNCH_PATH

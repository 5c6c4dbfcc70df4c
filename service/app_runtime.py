"""The ``Runtime`` of the Flask app answering the current request, and the SMART app's launch URL
(for the views and the SMART app)."""

from __future__ import annotations

from functools import lru_cache

from flask import current_app, request
from werkzeug.sansio.utils import get_current_url

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
    return _own_launch_url(request.scheme, request.host, request.root_path)


@lru_cache(maxsize=64)
def _own_launch_url(scheme: str, host: str, root_path: str) -> str | None:
    """The app's launch URL on the host the request named, None unless that host is this machine.
    Worked out once per (scheme, Host, root path): every call asks, and a client names the same
    host each time (the cache is bounded, as the Host header is the caller's to choose)."""
    if not _loopback(host):
        # The Host header is the caller's to choose: a card must not link to a host it named. Set
        # EXTERNAL_BASE_URL (docs/security.md); until then, cards carry no link to the app.
        return None
    # request.url_root, built from the same three parts.
    return get_current_url(scheme, host, root_path).rstrip("/") + LAUNCH_PATH


def request_host_is_loopback() -> bool:
    """Whether the request's Host names this machine (``localhost`` or a loopback address)."""
    return _loopback(request.host)


def _loopback(host: str) -> bool:
    name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return is_loopback_host(name)

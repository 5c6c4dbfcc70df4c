"""The SMART app's launch URL a card links to (``service.app_runtime.launch_url``) is worked out once
per (scheme, Host, root path); it must be the URL the request itself names, and only on a host of
this machine, for every Host a caller may send."""

from __future__ import annotations

import pytest
from flask import Flask, request

from service.app_runtime import LAUNCH_PATH, launch_url, request_host_is_loopback
from service.config import load_settings
from service.fhir.policy import is_loopback_host

HOSTS = [
    "localhost",
    "localhost:8080",
    "LOCALHOST",
    "127.0.0.1",
    "127.0.0.1:5000",
    "127.1",
    "2130706433",
    "0x7f000001:80",
    "[::1]",
    "[::1]:8443",
    "[::ffff:127.0.0.1]",
    "localhost.",
    "example.org",
    "example.org:8080",
    "127.example.org",
    "10.0.0.1",
    "[2001:db8::1]",
    "xn--bcher-kva.example",
    "b\u00fccher.example",
    "local%68ost",
    "",
]


def _reference(host: str) -> str | None:
    """The launch URL as it was built on every call: the request's own root URL, on loopback only."""
    named = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    if not is_loopback_host(named):
        return None
    return request.url_root.rstrip("/") + LAUNCH_PATH


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("root", ["", "/cds", "/a b/\u00e9"])
@pytest.mark.parametrize("host", HOSTS)
def test_launch_url_is_the_requests_own_root_on_loopback_only(host: str, root: str, scheme: str) -> None:
    settings = load_settings({"AUTH_REQUIRED": False}, environ={})
    app = Flask("launch")
    for _ in range(2):  # the second answer comes from the cache
        with app.test_request_context(
            "/cds-services/x", base_url=f"{scheme}://placeholder{root}", headers={"Host": host}
        ):
            assert launch_url(settings) == _reference(request.host)
            assert request_host_is_loopback() == (_reference(request.host) is not None)


def test_settings_decide_before_the_host() -> None:
    app = Flask("launch")
    with app.test_request_context("/", headers={"Host": "localhost"}):
        fixed = load_settings({"AUTH_REQUIRED": False, "SMART_APP_URL": "https://apps.example.org/l"}, environ={})
        assert launch_url(fixed) == "https://apps.example.org/l"
        off = load_settings({"AUTH_REQUIRED": False, "SMART_APP_ENABLED": False}, environ={})
        assert launch_url(off) is None
        base = load_settings({"AUTH_REQUIRED": False, "EXTERNAL_BASE_URL": "https://cds.example.org/"}, environ={})
        assert launch_url(base) == "https://cds.example.org" + LAUNCH_PATH

"""Security headers: X-Content-Type-Options nosniff on every response (errors and 401 included),
no caching, and no server banner with versions under real gunicorn."""

from __future__ import annotations

import json
import re

import pytest
import requests

from bench.samples import builtin_request
from bench.server import REQUEST_TIMEOUT_S, gunicorn
from service.errors import PrefetchUnavailableError

VIEW = "/cds-services/tacrolimus-patient-view"
VALID = json.dumps(builtin_request("patient-view"))


class _Unavailable:
    optional = frozenset()

    def resolve_partial(self, request, templates, **_kwargs):
        raise PrefetchUnavailableError("patient: unobtainable")


CASES = [
    # (name, app overrides, method, path, body, expected status)
    ("discovery", {}, "GET", "/cds-services", None, 200),
    ("healthz", {}, "GET", "/healthz", None, 200),
    ("openapi", {}, "GET", "/openapi.json", None, 200),
    ("service-200", {}, "POST", VIEW, VALID, 200),
    ("malformed-400", {}, "POST", VIEW, "{", 400),
    ("unknown-404", {}, "POST", "/cds-services/nope", VALID, 404),
    ("no-route-404", {}, "GET", "/nope", None, 404),
    ("method-405", {}, "DELETE", "/cds-services", None, 405),
    ("too-large-413", {"MAX_REQUEST_BYTES": 100}, "POST", VIEW, VALID, 413),
    ("unavailable-412", {"resolver": _Unavailable()}, "POST", VIEW, VALID, 412),
    ("unauthorized-401", {"AUTH_REQUIRED": True}, "POST", VIEW, VALID, 401),
    ("unauthorized-discovery-401", {"AUTH_REQUIRED": True}, "GET", "/cds-services", None, 401),
    (
        "preflight",
        {"AUTH_REQUIRED": True, "CORS_ORIGINS": ["https://sandbox.cds-hooks.org"]},
        "OPTIONS",
        VIEW,
        None,
        200,
    ),
]


@pytest.mark.parametrize("name, overrides, method, path, body, status", CASES, ids=[c[0] for c in CASES])
def test_every_response_has_nosniff_and_no_store(make_app, name, overrides, method, path, body, status):
    client = make_app(**overrides).test_client()
    headers = (
        {"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"}
        if method == "OPTIONS"
        else {}
    )
    response = client.open(path, method=method, data=body, content_type="application/json", headers=headers)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server" not in response.headers  # the app adds none; the WSGI server's is checked below


_VERSION = re.compile(r"\d|/|python|werkzeug", re.IGNORECASE)


@pytest.mark.slow
def test_under_gunicorn_no_version_banner_and_nosniff():
    # The cap is above the valid body (about 4 KiB) and below the oversized ones.
    with gunicorn(workers=1, threads=2, env={"TACRO_CDS_MAX_REQUEST_BYTES": "8192"}) as server:
        session = requests.Session()
        responses = {
            "discovery": session.get(server.base_url + "/cds-services", timeout=REQUEST_TIMEOUT_S),
            "service": session.post(
                server.base_url + VIEW,
                data=VALID.encode(),
                headers={"Content-Type": "application/json"},
                timeout=REQUEST_TIMEOUT_S,
            ),
            "not-found": session.get(server.base_url + "/nope", timeout=REQUEST_TIMEOUT_S),
            "too-large": session.post(
                server.base_url + VIEW,
                data=b" " * 9000 + b"{}",
                headers={"Content-Type": "application/json"},
                timeout=REQUEST_TIMEOUT_S,
            ),
            # Chunked: no Content-Length for the size check to read up front.
            "too-large-chunked": session.post(
                server.base_url + VIEW,
                data=iter([b" " * 5000, b" " * 5000, b"{}"]),
                headers={"Content-Type": "application/json"},
                timeout=REQUEST_TIMEOUT_S,
            ),
        }
        statuses = {name: r.status_code for name, r in responses.items()}
        assert statuses == {
            "discovery": 200,
            "service": 200,
            "not-found": 404,
            "too-large": 413,
            "too-large-chunked": 413,
        }
        for name, response in responses.items():
            assert response.headers["X-Content-Type-Options"] == "nosniff", name
            banner = response.headers.get("Server", "")
            assert not _VERSION.search(banner), f"{name}: server banner {banner!r} reveals a version"
        assert responses["too-large-chunked"].json()["resourceType"] == "OperationOutcome"
        assert session.get(server.base_url + "/healthz", timeout=REQUEST_TIMEOUT_S).status_code == 200


@pytest.mark.slow
def test_under_gunicorn_chunked_bodies_are_held_to_the_size_limit():
    """Regression: werkzeug cut a chunked body at MAX_REQUEST_BYTES silently, so a valid request
    followed by anything was answered 200 as if the rest had not been sent."""
    small = json.dumps(builtin_request("patient-view", with_token=False)).encode()
    limit = len(small) + 4096
    with gunicorn(workers=1, threads=1, env={"TACRO_CDS_MAX_REQUEST_BYTES": str(limit)}) as server:

        def post(chunks):
            return requests.post(
                server.base_url + VIEW,
                data=iter(chunks),
                timeout=REQUEST_TIMEOUT_S,
                headers={"Content-Type": "application/json"},
            )

        over = post([small, b" " * limit, b"garbage"])
        assert over.status_code == 413
        assert over.json()["issue"][0]["diagnostics"] == "payload-too-large"
        at_limit = post([small, b" " * (limit - len(small))])
        assert at_limit.status_code == 200


@pytest.mark.slow
def test_under_gunicorn_a_413_leaves_the_connection_usable():
    """Regression: after a 413 gunicorn kept the connection alive but dropped it when more than
    64 KiB of the refused body was unread, so the client's next call failed (17 of 3,000 in a load
    run). The service now reads the refused body (up to twice the limit) before answering."""
    limit = 256 * 1024
    body = json.dumps(builtin_request("patient-view")).encode() + b" " * limit
    with gunicorn(workers=1, threads=2, env={"TACRO_CDS_MAX_REQUEST_BYTES": str(limit)}) as server:
        session = requests.Session()
        for _ in range(10):
            refused = session.post(
                server.base_url + VIEW,
                data=body,
                timeout=REQUEST_TIMEOUT_S,
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 413
            assert session.get(server.base_url + "/healthz", timeout=REQUEST_TIMEOUT_S).status_code == 200

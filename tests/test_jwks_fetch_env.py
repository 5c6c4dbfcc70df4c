"""The JWK Set fetch takes nothing from the environment: no proxy variable reroutes it and no
~/.netrc adds credentials to it."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import FIXED_NOW
from jwt_support import ISSUER, FakeStore, ec_signer

from service.api.auth import CallerVerifier
from service.config import load_settings

AUDIENCE = "https://cds.example.org/cds-services/tacrolimus-patient-view"


@pytest.fixture
def key_server() -> Iterator[Any]:
    signer = ec_signer()
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            body = json.dumps(signer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.signer, server.seen = signer, seen  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy() -> Iterator[Any]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    hits: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", hits
    stop.set()
    thread.join(2)
    listener.close()


def test_key_set_fetch_ignores_proxy_variables_and_netrc(key_server, proxy, monkeypatch, tmp_path):
    proxy_url, hits = proxy
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login stolen password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    verifier = CallerVerifier(
        load_settings({"TRUSTED_ISSUERS": {ISSUER: {"jwks_url": key_server.url}}}, environ={}),
        FakeStore(),
        clock=lambda: FIXED_NOW,
    )
    signer = key_server.signer
    token = signer.mint(AUDIENCE)
    claims = verifier.verify(f"Bearer {token}", AUDIENCE)
    assert claims["iss"] == ISSUER
    assert hits == [], "the key set fetch went through the proxy from the environment"
    assert key_server.seen and all("Authorization" not in h for h in key_server.seen)


@pytest.mark.parametrize(
    "url, warned",
    [
        ("http://keys.example.org/jwks.json", True),
        ("https://10.0.0.7/jwks.json", True),
        ("https://[64:ff9b::7f00:1]/jwks.json", True),
        ("https://keys.example.org/jwks.json", False),
    ],
)
def test_a_plain_http_or_internal_key_set_url_is_said_at_start_up(make_app, url, warned):
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tacro_cds.auth")  # the service's loggers do not propagate to the root
    logger.addHandler(handler)
    try:
        make_app(AUTH_REQUIRED=True, TRUSTED_ISSUERS={"https://ehr.example.org": {"jwks_url": url}})
    finally:
        logger.removeHandler(handler)
    said = [r for r in records if "key set URL is plain http" in r.getMessage()]
    assert bool(said) is warned
    assert all(getattr(r, "setting", "").startswith("TRUSTED_ISSUERS[") for r in said)

"""deploy/nginx.conf and deploy/tls.conf as nginx reads them (Debian's nginx, ``nginx -t``), and
what the proxy passes upstream.

The upstream file is swapped for one naming 127.0.0.1 (Docker's DNS does not exist here, see
proxy_support); the rest is the shipped configuration. The TLS server block is checked with a
self-signed certificate in place of the mounted one.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proxy_support import DEPLOY, check_config, nginx_binary, proxy_prefix, running_proxy

from bench.server import free_port

MOUNTED_TLS = "/etc/nginx/tls/"


def _self_signed(folder: Path) -> Path:
    """fullchain.pem and privkey.pem for localhost in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir()
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


def test_the_shipped_proxy_configuration_is_valid(tmp_path: Path) -> None:
    binary = nginx_binary()
    main = proxy_prefix(tmp_path, ["127.0.0.1:9"], free_port())
    result = check_config(binary, tmp_path, main)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_the_tls_server_block_is_valid_with_a_mounted_certificate(tmp_path: Path) -> None:
    binary = nginx_binary()
    tls = (DEPLOY / "tls.conf").read_text(encoding="utf-8")
    assert tls.count(MOUNTED_TLS) == 2  # the certificate and its key, both from the mounted folder
    certs = _self_signed(tmp_path / "tls")
    main = proxy_prefix(
        tmp_path / "proxy",
        ["127.0.0.1:9"],
        free_port(),
        extra_servers={"tls.conf": tls.replace(MOUNTED_TLS, f"{certs}/")},
    )
    result = check_config(binary, tmp_path / "proxy", main)
    assert result.returncode == 0, result.stderr


def test_a_broken_configuration_is_caught(tmp_path: Path) -> None:
    """The check can fail: a directive nginx does not know is refused."""
    binary = nginx_binary()
    main = proxy_prefix(
        tmp_path,
        ["127.0.0.1:9"],
        free_port(),
        extra_servers={"broken.conf": "server { listen 127.0.0.1:9; no_such_directive on; }\n"},
    )
    result = check_config(binary, tmp_path, main)
    assert result.returncode != 0 and "no_such_directive" in result.stderr


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the request headers it received, as JSON."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({name.lower(): value for name, value in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_service_sees_the_host_and_port_the_client_called(tmp_path: Path, echo: str) -> None:
    """Without EXTERNAL_BASE_URL the service checks a JWT's aud against the URL built from the Host
    header: the proxy must pass it as the client sent it, port included."""
    port = free_port()
    with running_proxy(tmp_path, [echo], port) as proxy:
        seen = requests.get(proxy + "/cds-services", timeout=10).json()
    assert seen["host"] == f"127.0.0.1:{port}"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-for"] == "127.0.0.1"
    assert "connection" not in seen or seen["connection"].lower() != "close"  # kept alive upstream


@pytest.mark.parametrize("name", ["nginx.conf", "tls.conf"])
def test_every_listener_refuses_metrics(name: str) -> None:
    """Prometheus scrapes each replica directly: neither the plain nor the TLS listener serves
    /metrics (before, the TLS block passed it upstream)."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    servers = text.count("server {")
    assert servers >= 1
    assert text.count("location = /metrics { return 404; }") == servers

"""A caller-named fhirServer must never reach an address inside the deployment: every spelling of a
loopback, private or metadata address the C library or urllib3 accepts is refused before any
connection, host names are resolved once and the connection goes to the address that was checked,
and only ``ALLOW_HTTP_FHIR=loopback`` (``--dev``) lets loopback through."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from fhir_doubles import hook_body
from ssrf_matrix import EMBEDDED_IPV4, INTERNAL, loopback_spellings

from service.errors import FhirServerRefusedError
from service.fhir.client import FhirClient, FhirConnectionError, new_session
from service.fhir.policy import BaseUrl, address_checker, canonical_host, check_fhir_server

SERVICE = "/cds-services/tacrolimus-patient-view"


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections and what they sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize("allow_http", [False, True, "never"])
def test_no_loopback_spelling_is_accepted_without_the_loopback_setting(listener, allow_http):
    refused = 0
    spellings = loopback_spellings(listener.port)
    for url in spellings:
        with pytest.raises(FhirServerRefusedError):
            check_fhir_server(url, allow_http=allow_http, allowlist=[])
        refused += 1
    assert refused == len(spellings)
    assert listener.connections == 0


@pytest.mark.parametrize("url", INTERNAL)
def test_private_shared_and_metadata_addresses_are_refused(url):
    with pytest.raises(FhirServerRefusedError):
        check_fhir_server(url, allow_http=True, allowlist=[])


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("%6c%6f%63%61%6c%68%6f%73%74", "localhost"),
        ("FHIR.Example.org.", "fhir.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("cafe.de", "cafe.de"),
        ("::FFFF:7f00:1", "::ffff:7f00:1"),
    ],
)
def test_hosts_are_read_as_the_network_stack_reads_them(raw, canonical):
    assert canonical_host(raw) == canonical


@pytest.mark.parametrize("host", ["exa mple.org", "a%2fb", "%2f", "ex%00ample.org", "-bad-.org", "a..b"])
def test_hosts_that_are_no_host_are_refused(host):
    with pytest.raises(FhirServerRefusedError):
        check_fhir_server(f"https://{host}/fhir", allow_http=False, allowlist=[])


def test_the_loopback_setting_alone_allows_loopback():
    check_fhir_server("http://127.1:8080/fhir", allow_http="loopback", allowlist=[])
    check_fhir_server("https://localhost:8080/fhir", allow_http="loopback", allowlist=[])


def test_an_allowlisted_internal_server_is_allowed():
    check_fhir_server("https://10.1.2.3/fhir", allow_http=False, allowlist=["https://10.1.2.3/fhir"])


def test_a_name_resolving_to_loopback_is_not_connected_and_no_token_is_sent(listener, monkeypatch):
    """DNS names are resolved once when connecting; an internal answer stops the connection."""
    real = socket.getaddrinfo

    def fake_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.org":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    url = f"http://rebind.example.org:{listener.port}/fhir"
    check = address_checker(allow_http=True, allowlist=[], issuer=None)
    client = FhirClient(url, "secret-token", timeout=2, session=new_session(4, check))
    with pytest.raises(FhirConnectionError) as caught:
        client.read("Patient/p1")
    assert caught.value.code == "fhir-address-refused"
    assert listener.connections == 0


def test_the_checked_address_is_the_one_connected(listener, monkeypatch):
    """A second DNS answer (rebinding) after the check must not change where the call goes."""
    answers = iter(["127.0.0.1"] + ["10.9.9.9"] * 5)
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "twice.example.org":
            lookups.append(host)
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    check = address_checker(allow_http="loopback", allowlist=[], issuer=None)
    client = FhirClient(
        f"http://twice.example.org:{listener.port}/fhir", None, timeout=2, session=new_session(4, check)
    )
    with pytest.raises(FhirConnectionError):
        client.read("Patient/p1")  # the listener hangs up without an answer
    assert listener.connections == 1 and len(lookups) == 1


def test_service_refuses_every_spelling_with_400_and_never_connects(make_app, listener):
    client = make_app(ALLOW_HTTP_FHIR=True).test_client()
    statuses = set()
    for url in loopback_spellings(listener.port) + INTERNAL:
        response = client.post(SERVICE, json=hook_body(fhir_server=url))
        statuses.add(response.status_code)
        assert response.status_code == 400, (url, response.get_json())
        assert response.get_json()["issue"][0]["diagnostics"] == "fhir-server-not-allowed"
    assert statuses == {400}
    assert listener.connections == 0 and listener.received == []


def test_next_link_containment_compares_decoded_normalised_paths():
    base = BaseUrl.parse("https://fhir.example.org/r4")
    assert base.contains("https://fhir.example.org/r4/Observation?page=2")
    assert base.contains("https://fhir.example.org/r4/./Observation")
    for escaped in [
        "https://fhir.example.org/r4/%2e%2e/admin",
        "https://fhir.example.org/r4/../admin",
        "https://fhir.example.org/r4/%2E%2E/%2E%2E/other",
        "https://fhir.example.org/r4%2f..%2fadmin",
        "https://fhir.example.org/r4/..%2fadmin",
        "https://fhir.example.org/r40/x",
        "https://%66hir.example.org.evil/r4/x",
    ]:
        assert not base.contains(escaped), escaped


@pytest.mark.parametrize("url", EMBEDDED_IPV4)
def test_ipv6_forms_embedding_an_internal_ipv4_address_are_refused(url):
    """NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4, Teredo, IPv4-compatible and IPv4-translated
    addresses reach the IPv4 address they carry: judged as that address."""
    with pytest.raises(FhirServerRefusedError):
        check_fhir_server(url, allow_http=True, allowlist=[])


def test_ipv6_forms_embedding_a_public_ipv4_address_are_allowed():
    check_fhir_server("https://[64:ff9b::808:808]/fhir", allow_http=False, allowlist=[])
    check_fhir_server("https://[2002:808:808::1]/fhir", allow_http=False, allowlist=[])

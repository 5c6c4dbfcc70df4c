"""The FHIR client's GET without the session layer (``transport.get_streamed``) against the
``session.get`` it stands for: the same bytes on the wire, the same prepared request or the same
error for any URL, ``session.get`` itself for any session that is not plain, and the transport's
checks (TLS verification, no redirect followed) still in force below it."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fault_server import read_request_head
from hypothesis import given, settings
from hypothesis import strategies as st

from service.fhir.client import FhirClient, FhirConnectionError, FhirHttpError
from service.fhir.transport import (
    HardenedSession,
    Limits,
    _plain,
    already_prepared,
    get_streamed,
    new_session,
    prepare_get,
)

HEADERS = {"Accept": "application/fhir+json", "Authorization": "Bearer t0k-en"}
BODY = b'{"resourceType":"Patient","id":"p1"}'


class CaptureServer:
    """Answers every request with one small FHIR resource and keeps each request's head as sent."""

    def __init__(self, status: str = "200 OK", extra: str = "") -> None:
        self.heads: list[bytes] = []
        self.status = status
        self.extra = extra
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(5)
            while True:
                try:
                    head = read_request_head(sock)
                except OSError:
                    return
                if not head:
                    return
                self.heads.append(head)
                sock.sendall(
                    f"HTTP/1.1 {self.status}\r\nContent-Type: application/fhir+json\r\n{self.extra}"
                    f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                    + BODY
                )


# Paths below http://127.0.0.1:<port>/fhir/ that requests re-encodes, normalises or refuses.
ODD_PATHS = [
    "Observation?patient=p1&code=http%3A%2F%2Floinc.org%7C2160-0,http%3A%2F%2Floinc.org%7C38483-4",
    "Observation?patient=p 1&code=http://loinc.org|2160-0",
    "Patient/%41bc%7e%2f%2F",
    "Patient/%zz?x=%G1&y=%",
    "Patient/\u00fc-\u4e2d\U0001f600?name=J\u00fcrgen",
    "a/./b/../Patient/p1",
    "Patient/p1?",
    "Patient/p1#fragment",
    "Observation?_include=MedicationRequest:medication&x=[1]&y={2}&z=^`\\",
    "Patient/p1;v=1?a=b;c",
    "Patient//p1",
]


def _both(url: str, headers: dict[str, str] = HEADERS) -> tuple[Any, Any]:
    """What ``session.get`` and ``get_streamed`` each did with ``url``: the answer's body, or the error."""
    outcomes = []
    for send in (
        lambda s: s.get(url, headers=headers, timeout=(5, 5), stream=True, allow_redirects=False),
        lambda s: get_streamed(s, url, headers, (5, 5)),
    ):
        session = new_session(2)
        try:
            with send(session) as response:
                outcomes.append((response.status_code, response.raw.read()))
        except Exception as exc:  # the two paths must fail alike, whatever the failure
            outcomes.append((type(exc), str(exc)))
        finally:
            session.close()
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_the_same_request_goes_out_on_the_wire(path):
    with CaptureServer() as server:
        old, new = _both(f"http://127.0.0.1:{server.port}/fhir/{path}")
        assert old == new
        assert len(server.heads) == 2
        assert server.heads[0] == server.heads[1]


@pytest.mark.parametrize(
    "url",
    [
        "HTTP://127.0.0.1:{port}/FHIR/Patient/p1",
        "http://user:pass%20word@127.0.0.1:{port}/fhir/Patient/p1",  # Basic auth from the userinfo
        "  http://127.0.0.1:{port}/fhir/Patient/p1",
    ],
)
def test_the_same_request_for_unusual_spellings(url):
    with CaptureServer() as server:
        old, new = _both(url.format(port=server.port))
        assert old == new
        assert server.heads[0] == server.heads[-1]


@pytest.mark.parametrize(
    "url, headers",
    [
        ("http://127.0.0.1:1/fhir/Patient/a\r\nX-Injected: 1", HEADERS),
        ("http://127.0.0.1:1/fhir/Patient/a b\tc", HEADERS),
        ("http://", HEADERS),
        ("http://*.example.org/fhir/Patient/p1", HEADERS),
        ("http://127.0.0.1:99999/fhir/Patient/p1", HEADERS),
        ("ftp://127.0.0.1/fhir/Patient/p1", HEADERS),
        ("127.0.0.1/fhir/Patient/p1", HEADERS),
        ("http://127.0.0.1:1/fhir/Patient/p1", {**HEADERS, "Authorization": "Bearer a\r\nX-Injected: 1"}),
        ("http://127.0.0.1:1/fhir/Patient/p1", {**HEADERS, "Authorization": " Bearer t"}),
        ("http://127.0.0.1:1/fhir/Patient/p1", HEADERS),  # nothing listens: refused
    ],
)
def test_the_same_error(url, headers):
    old, new = _both(url, headers)
    assert isinstance(old[0], type) and issubclass(old[0], Exception), old
    assert old == new


_URL_CHARS = st.sampled_from(
    list("aZ09-._~:/?#[]@!$&'()*+,;=% \t\"<>\\^`{|}\u00e9\u4e2d\U0001f600") + ["%41", "%7e", "%2F"]
)


@settings(max_examples=300, deadline=None)
@given(
    host=st.sampled_from(
        ["127.0.0.1", "fhir.example.org", "FHIR.Example.ORG", "xn--bcher-kva.example", "b\u00fccher.de"]
    ),
    port=st.sampled_from(["", ":8080", ":080", ":0", ":443"]),
    rest=st.lists(_URL_CHARS, max_size=40).map("".join),
)
def test_the_same_prepared_request_for_any_url(host, port, rest):
    url = f"http://{host}{port}/fhir/{rest}"
    session = new_session(1)

    def old() -> Any:
        return session.prepare_request(requests.Request("GET", url, headers=HEADERS))

    def new() -> Any:
        return prepare_get(session, url, HEADERS)

    seen = []
    for prepare in (old, new):
        try:
            p = prepare()
            seen.append((p.method, p.url, dict(p.headers), p.body, p.hooks))
        except Exception as exc:  # the two paths must fail alike, whatever the failure
            seen.append((type(exc), str(exc)))
    assert seen[0] == seen[1]


def _prepare_url(url: str) -> str | None:
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except Exception:  # requests refuses it: it must not be taken as prepared
        return None
    return prepared.url


def test_a_fallback_calls_queries_are_taken_as_prepared():
    """The shortcut applies where it counts: every query of the bench's fallback calls."""
    from bench.bodies import year_of_monitoring
    from cards.knowledge import load_knowledge
    from service.hooks.templates import prefetch_templates, substitute

    for hook in ("order-select", "patient-view"):
        context = year_of_monitoring(hook)["context"]
        for template in prefetch_templates(load_knowledge()).values():
            url = f"https://fhir.example.org:8443/r4/{substitute(template, context)}"
            assert already_prepared(url), url
            assert _prepare_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://h/a/%41",  # an escaped unreserved character: requote_uri decodes it
        "http://h/a/%7e",  # a lower-case escape: urllib3 upper-cases it
        "http://h/a/%7E",
        "http://h/a/./b",
        "http://h/a/../b",
        "http://h/a/..",
        "http://h/a/.?q=1",
        "http://h/a?",
        "http://h",
        "http://h/a#f",
        "http://H/a",
        "HTTP://h/a",
        "http://h:080/a",
        "http://h:0/a",
        "http://h:65536/a",
        "http://u@h/a",
        "http://h./a",
        "http://-h/a",
        "http://h/a b",
        "http://h/a|b",
        "http://h/a?b|c",
        "http://h/[a]",
        "http://b\u00fccher.de/a",
        " http://h/a",
        "ftp://h/a",
    ],
)
def test_urls_prepare_url_changes_are_not_taken_as_prepared(url):
    assert not already_prepared(url)


_CANONICAL_PIECES = st.sampled_from(
    list("aZ09-._~!$&'()*+,;=:@/?") + ["%3A", "%2F", "%7C", "%20", "%25", "%41", "%7e", "%2E", "/.", "/..", "./"]
)
_ANY_PIECES = st.sampled_from(list("aZ09-._~!$&'()*+,;=:@/?%# []|\\^`{}\t\u00e9") + ["%3A", "%zz", "%4"])


@settings(max_examples=1000, deadline=None)
@given(
    host=st.sampled_from(["127.0.0.1", "fhir.example.org", "a-b.c", "h", "FHIR.example.org", "a..b", "b\u00fccher.de"]),
    port=st.sampled_from(["", ":8080", ":80", ":080", ":0", ":65535", ":65536", ":99999"]),
    path=st.lists(_CANONICAL_PIECES, min_size=1, max_size=30).map("".join),
    odd=st.one_of(st.just(""), st.just(""), _ANY_PIECES),
    at=st.integers(min_value=0),
)
def test_a_url_taken_as_prepared_is_one_prepare_url_leaves_as_it_is(host, port, path, odd, at):
    rest = path[: at % (len(path) + 1)] + odd + path[at % (len(path) + 1) :]
    url = f"http://{host}{port}/{rest}"
    if already_prepared(url):
        assert _prepare_url(url) == url


def _changed(change: str) -> requests.Session:
    session = new_session(1)
    if change == "trust_env":
        session.trust_env = True
    elif change == "auth":
        session.auth = ("user", "password")
    elif change == "params":
        session.params = {"a": "b"}
    elif change == "proxies":
        session.proxies = {"http": "http://proxy.example:3128"}
    elif change == "verify":
        session.verify = False
    elif change == "cert":
        session.cert = "/nonexistent/client.pem"
    elif change == "hooks":
        session.hooks["response"].append(lambda r, **kw: r)
    elif change == "cookie policy":
        session.cookies.set_policy(requests.cookies.cookielib.DefaultCookiePolicy())
    elif change == "a cookie held":
        session.cookies.set("c", "v")
    elif change == "hardened":
        session = HardenedSession(Limits(timeout=5, max_bytes=1000))
    elif change == "a stranger's adapter":
        session.mount("http://", requests.adapters.HTTPAdapter())
    return session


@pytest.mark.parametrize(
    "change",
    [
        "trust_env",
        "auth",
        "params",
        "proxies",
        "verify",
        "cert",
        "hooks",
        "cookie policy",
        "a cookie held",
        "hardened",
        "a stranger's adapter",
    ],
)
def test_any_other_session_goes_through_session_get(change, monkeypatch):
    session = _changed(change)
    calls = []
    monkeypatch.setattr(session, "get", lambda *a, **kw: calls.append((a, kw)) or "sent by session.get")
    assert get_streamed(session, "http://127.0.0.1:1/fhir/Patient/p1", HEADERS, (1, 1)) == "sent by session.get"
    assert calls == [
        (
            ("http://127.0.0.1:1/fhir/Patient/p1",),
            {"headers": HEADERS, "timeout": (1, 1), "stream": True, "allow_redirects": False},
        )
    ]


def test_the_plain_session_is_the_one_new_session_makes():
    assert _plain(new_session(1))
    assert not any(_plain(_changed(change)) for change in ("trust_env", "cookie policy", "hardened"))


def _no_session_get(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the lean path was expected")


def test_a_redirect_is_not_followed_on_the_lean_path():
    with CaptureServer(status="302 Found", extra="Location: http://127.0.0.1:1/elsewhere\r\n") as server:
        session = new_session(1)
        session.get = _no_session_get  # type: ignore[method-assign]
        client = FhirClient(f"http://127.0.0.1:{server.port}/fhir", "t", session=session)
        with pytest.raises(FhirHttpError):
            client.read("Patient/p1")
        assert len(server.heads) == 1


@pytest.fixture
def untrusted_tls_port(tmp_path: Path) -> Iterator[int]:
    """A TLS server on 127.0.0.1 whose certificate (self-signed, for 127.0.0.1) no CA vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(sock, server_side=True) as tls:
                    tls.settimeout(5)
                    read_request_head(tls)
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 36\r\n\r\n" + BODY
                    )
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()


def test_tls_is_verified_on_the_lean_path(untrusted_tls_port, caplog):
    session = new_session(1)
    session.get = _no_session_get  # type: ignore[method-assign]
    client = FhirClient(f"https://127.0.0.1:{untrusted_tls_port}/fhir", "t", session=session)
    with caplog.at_level("WARNING", logger="tacro_cds.fhir"), pytest.raises(FhirConnectionError):
        client.read("Patient/p1")
    assert any("SSLError" in str(getattr(r, "error", "")) for r in caplog.records)

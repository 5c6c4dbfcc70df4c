"""A hostile or failing FHIR server behind ``fhirServer``: the service answers with a clear 4xx/503,
never a 500, says only "unreachable" about a server it could not talk to, keeps one hook call's
memory within a budget across keys and pages, and lets only a few slow fallback calls run at once."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fhir_doubles import hook_body

import service.fhir.client as fhir_client_module
from service.errors import FallbackBusyError
from service.fhir.client import FhirClient, FhirTimeoutError
from service.ops.logs import JsonFormatter

SERVICE = "/cds-services/tacrolimus-patient-view"


class SteppingMonotonic:
    """time.monotonic moving one second at every look: a call always starts at its deadline."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_call_that_starts_at_the_deadline_is_a_timeout_not_a_crash(monkeypatch):
    clock = SteppingMonotonic()
    monkeypatch.setattr(fhir_client_module.time, "monotonic", clock)
    client = FhirClient("https://fhir.example.org/r4", "t", timeout=5.0)
    with pytest.raises(FhirTimeoutError):
        client.search("Observation?patient=p1", deadline=clock.now + 1.5)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("tacro_cds")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A port where a plain-HTTP server answers anything at once (TLS to it fails)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(2)
    listener.close()


def test_unreachable_servers_look_the_same_whatever_listens(make_app, plain_http_port, captured_logs):
    """A refused port and a plain-http port spoken to in TLS: one reason for both, detail in the log."""
    client = make_app(
        ALLOW_HTTP_FHIR="loopback", FHIR_TIMEOUT_S=8.0, FHIR_TOTAL_BUDGET_S=10.0, LOG_LEVEL="INFO"
    ).test_client()
    port = plain_http_port
    reasons = {}
    for name, url in {
        "closed-port": f"https://127.0.0.1:{_closed_port()}/fhir",
        "tls-to-plain-http": f"https://127.0.0.1:{port}/fhir",
    }.items():
        response = client.post(SERVICE, json=hook_body(fhir_server=url))
        assert response.status_code == 412, response.get_json()
        texts = {issue["details"]["text"].split(": ", 1)[1] for issue in response.get_json()["issue"][1:]}
        reasons[name] = texts
        for text in texts:
            assert "Error" not in text and "SSL" not in text and "Connection" not in text, text
    assert reasons["closed-port"] == reasons["tls-to-plain-http"] == {"the FHIR server is unreachable"}
    # The operator still learns what happened.
    assert any("SSL" in line for line in captured_logs.lines)
    assert any("Connection" in line or "NewConnection" in line for line in captured_logs.lines)


# -- memory: one budget per hook call -------------------------------------------------------------

ENTRY_BYTES = 100_000
PAGE_ENTRIES = 199


def _page_parts() -> tuple[bytes, bytes]:
    """A 20 MB searchset page, split where its next link goes (built once: the server's own memory
    must not blur the service's)."""
    entry = {
        "resource": {"resourceType": "Observation", "id": "x", "status": "final", "note": [{"text": "A" * ENTRY_BYTES}]}
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [entry] * PAGE_ENTRIES,
        "link": [{"relation": "next", "url": "NEXT-URL"}],
    }
    before, after = json.dumps(bundle).encode().split(b"NEXT-URL")
    return before, after


class HostileFhir:
    """Every search answers a 20 MB page with a next link; counts the bytes it sent."""

    def __init__(self) -> None:
        outer = self
        self.sent = 0
        self.lock = threading.Lock()
        before, after = _page_parts()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                page = int(query.split("page=")[1]) if "page=" in query else 0
                link = f"{outer.base}/{path.split('/fhir/', 1)[1]}?page={page + 1}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(before) + len(link) + len(after)))
                self.end_headers()
                view = memoryview(before)
                try:
                    for part in (*(view[i : i + 65536] for i in range(0, len(view), 65536)), link, after):
                        self.wfile.write(part)
                        with outer.lock:
                            outer.sent += len(part)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def hostile_fhir() -> Iterator[HostileFhir]:
    server = HostileFhir()
    yield server
    server.close()


def test_one_hook_call_reads_at_most_its_byte_budget_and_gives_memory_back(make_app, hostile_fhir):
    budget = 32 * 1024 * 1024
    client = make_app(
        ALLOW_HTTP_FHIR="loopback",
        FHIR_TIMEOUT_S=20.0,
        FHIR_TOTAL_BUDGET_S=30.0,
        FHIR_MAX_CALL_BYTES=budget,
        LOG_LEVEL="ERROR",
    ).test_client()
    client.get("/healthz")
    start = rss_mib()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        response = client.post(SERVICE, json=hook_body(fhir_server=hostile_fhir.base, token="t"))
    finally:
        done.set()
        sampler.join()
    time.sleep(0.5)
    settled = rss_mib()
    print(
        f"RSS start {start:.0f} MiB, peak {peak[0]:.0f} MiB, settled {settled:.0f} MiB; "
        f"{hostile_fhir.sent / 2**20:.0f} MiB served"
    )
    assert response.status_code == 412
    assert "fhir-too-large" in json.dumps(response.get_json())
    # Without a per-call budget the same call read hundreds of MiB and kept them.
    assert peak[0] - start < 400, (start, peak[0])
    assert settled - start < 120, (start, settled)


# -- slow fallback calls --------------------------------------------------------------------------


def test_one_caller_gets_at_most_its_own_share_of_fallback_calls(make_app, fault_server):
    """Per caller: with room for four in the worker, one issuer still gets only two."""
    fault_server.plan(lambda exchange: exchange.hold(30))
    resolver = (
        make_app(ALLOW_HTTP_FHIR="loopback", FHIR_FALLBACK_MAX_CONCURRENT=4, FHIR_FALLBACK_MAX_PER_ISSUER=2)
        .extensions["tacro_cds"]
        .resolver
    )
    gate = resolver.gate
    gate.enter("https://ehr-a.example.org")
    gate.enter("https://ehr-a.example.org")
    with pytest.raises(FallbackBusyError):
        gate.enter("https://ehr-a.example.org")
    gate.enter("https://ehr-b.example.org")  # another caller still has room
    gate.leave("https://ehr-a.example.org")
    gate.enter("https://ehr-a.example.org")


def test_slow_fallback_calls_beyond_the_limit_are_refused_at_once(make_app, fault_server):
    """16 calls to a FHIR server that never answers: two run, the rest are a 503 to retry, at once."""
    fault_server.plan(lambda exchange: exchange.hold(30))
    client_app = make_app(
        ALLOW_HTTP_FHIR="loopback",
        FHIR_TIMEOUT_S=6.0,
        FHIR_TOTAL_BUDGET_S=8.0,
        FHIR_FALLBACK_MAX_CONCURRENT=2,
        FHIR_FALLBACK_MAX_PER_ISSUER=2,
        LOG_LEVEL="ERROR",
    )

    def call(_: int) -> tuple[int, float, str | None]:
        started = time.monotonic()
        response = client_app.test_client().post(SERVICE, json=hook_body(fhir_server=fault_server.base))
        return response.status_code, time.monotonic() - started, response.headers.get("Retry-After")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(16)))
    busy = [r for r in results if r[0] == 503]
    slow = [r for r in results if r[0] != 503]
    assert len(slow) <= 2 and len(busy) >= 14, results
    assert all(r[2] for r in busy)
    assert all(r[1] < 4.5 for r in busy), busy  # refused without waiting for the slow server (6 s)

"""The one raw FHIR test server: a real HTTP/1.1 server on 127.0.0.1 that answers like a healthy FHIR
server unless its plan says otherwise, per path or per query.

    server.plan(hang(), query=r"2160-0")          # the chemistry search never answers
    server.plan(status(503), path=r"^Patient/")   # the patient read fails
    server.plan(next_loop())                      # every search pages to itself

A fault is a *responder*: ``respond(exchange)`` writes whatever it likes to the raw socket (or
nothing, or a TCP reset), so faults that an HTTP library cannot fake are possible. ``RawServer(fn)``
keeps the older form ``fn(sock, stop, head)`` for tests that script one connection by hand.

The server counts what it saw: requests, faulty answers served (``injected``), connections still
open, and connections the client closed while a fault was holding them (``closed_by_client``), so a
test can check that the service let go of every connection.

Fixtures (imported into tests/conftest.py): ``fault_server`` gives a server started once per test
module, its plan and counters reset before each test. ``FAULT_TALLY`` collects the faults injected
and survived for a summary line at the end of the run.
"""

from __future__ import annotations

import gzip
import json
import re
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

FHIR_JSON = "application/fhir+json"
PATIENT_ID_PATTERN = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})$")


@dataclass
class Exchange:
    """One request on one connection, as a responder sees it."""

    sock: socket.socket
    stop: threading.Event  # set when the server shuts down: a holding responder must end
    head: bytes  # request line and headers, as received
    method: str
    path: str  # below the FHIR base, e.g. "Observation" or "Patient/p1"
    query: str  # percent-decoded query string, "" when none
    server: FaultServer

    @property
    def url(self) -> str:
        """The absolute URL the client asked for."""
        return f"{self.server.base}/{self.path}" + (f"?{self.query}" if self.query else "")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, status: str, body: bytes, content_type: str = FHIR_JSON, **headers: str) -> None:
        """A complete HTTP/1.1 answer with a correct Content-Length; the connection then closes."""
        self.send(http_head(status, content_type, len(body), **headers) + body)

    def answer_json(self, resource: Any, status: str = "200 OK", **headers: str) -> None:
        self.answer(status, json.dumps(resource).encode(), **headers)

    def hold(self, seconds: float) -> bool:
        """Keep the connection open for up to ``seconds`` without answering; True as soon as the
        client closes it (then there is nobody left to answer)."""
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], min(left, 0.02))
            if readable:
                try:
                    if not self.sock.recv(4096):
                        self.server.count("closed_by_client")
                        return True
                except OSError:
                    self.server.count("closed_by_client")
                    return True
        return False

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER on, timeout 0) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Responder = Callable[[Exchange], None]


@dataclass
class _Rule:
    responder: Responder
    path: re.Pattern[str] | None
    query: re.Pattern[str] | None
    times: int | None  # None: every matching request

    def matches(self, exchange: Exchange) -> bool:
        return (
            (self.path is None or bool(self.path.search(exchange.path)))
            and (self.query is None or bool(self.query.search(exchange.query)))
            and (self.times is None or self.times > 0)
        )


@dataclass
class FaultServer:
    """A threading TCP server on 127.0.0.1 (port chosen by the OS) serving ``{base}`` = ``/fhir``."""

    default: Responder | None = None  # None: a healthy FHIR server (``healthy``)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query) seen
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stop = threading.Event()  # replaced by reset(): one per test
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._open = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._opened()
                try:
                    self.request.settimeout(10)
                    outer._serve(self.request)
                except OSError:
                    pass  # the client went away mid-answer: what many faults provoke
                finally:
                    outer._closed()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # above our parallel fan-out: a dropped SYN costs a 1 s retry

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-server", daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the plan -----------------------------------------------------------------------------------

    def plan(
        self, responder: Responder, *, path: str | None = None, query: str | None = None, times: int | None = None
    ) -> FaultServer:
        """Answer requests whose path (below the base) and decoded query match these regexes with
        ``responder``, ``times`` times or always. Earlier rules win."""
        with self._lock:
            self._rules.append(
                _Rule(responder, re.compile(path) if path else None, re.compile(query) if query else None, times)
            )
        return self

    def heal(self) -> None:
        """Drop the plan: healthy from now on (counters kept)."""
        with self._lock:
            self._rules.clear()

    def reset(self) -> None:
        """Back to a healthy server with zeroed counters (the fixture calls it before each test).
        Faults still holding a connection from the previous test are told to end, so one test's
        leak does not spill into the next."""
        with self._lock:
            self.stop.set()
            self.stop = threading.Event()
            self._rules.clear()
            self.requests.clear()
            self.counters.clear()

    # -- what the server saw ------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return self.counters.get("connections", 0)

    @property
    def injected(self) -> int:
        """Faulty answers served (each time a planned fault handled a request)."""
        return self.counters.get("injected", 0)

    @property
    def open_connections(self) -> int:
        return self._open

    def count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + by

    def wait_idle(self, timeout: float) -> bool:
        """True once no connection is open (every handler finished), within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self._open and time.monotonic() < end:
            time.sleep(0.01)
        return self._open == 0

    def seen(self, pattern: str) -> list[str]:
        """The request targets (path?query) that match ``pattern``."""
        return [target for _, target in list(self.requests) if re.search(pattern, target)]

    # -- internals ----------------------------------------------------------------------------------

    def _opened(self) -> None:
        with self._lock:
            self._open += 1
            self.counters["connections"] = self.counters.get("connections", 0) + 1

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1

    def _serve(self, sock: socket.socket) -> None:
        stop = self.stop  # the generation this connection belongs to
        head = read_request_head(sock)
        exchange = _exchange(sock, stop, head, self)
        with self._lock:
            self.requests.append((exchange.method, exchange.path + (f"?{exchange.query}" if exchange.query else "")))
            rule = next((r for r in self._rules if r.matches(exchange)), None)
            if rule is not None:
                self.counters["injected"] = self.counters.get("injected", 0) + 1
                if rule.times is not None:
                    rule.times -= 1
        (rule.responder if rule else self.default or healthy)(exchange)


class RawServer(FaultServer):
    """A FaultServer whose every connection is handled by ``respond(sock, stop, head)``."""

    def __init__(self, respond: Callable[[socket.socket, threading.Event, bytes], None]) -> None:
        super().__init__(default=lambda ex: respond(ex.sock, ex.stop, ex.head))


def _exchange(sock: socket.socket, stop: threading.Event, head: bytes, server: FaultServer) -> Exchange:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    split = urlsplit(target)
    path = split.path.removeprefix("/fhir").lstrip("/")
    return Exchange(sock, stop, head, method, path, unquote(split.query), server)


def read_request_head(sock: socket.socket) -> bytes:
    """The request line and headers (GET requests have no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_head(
    status: str = "200 OK", content_type: str | None = FHIR_JSON, length: int | None = None, **headers: str
) -> bytes:
    """A response head that closes the connection; ``length`` None: no Content-Length."""
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- healthy answers ------------------------------------------------------------------------------


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


def outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": text}],
    }


def healthy(ex: Exchange) -> None:
    """A FHIR server with one patient and no clinical data: every search an empty searchset, a
    Patient read that patient, any other read 404."""
    patient = PATIENT_ID_PATTERN.match(ex.path)
    if patient:
        ex.answer_json({"resourceType": "Patient", "id": patient.group(1)})
    elif "/" in ex.path:
        ex.answer_json(outcome("no such resource"), "404 Not Found")
    else:
        ex.answer_json(searchset([]))


def creatinine(index: int) -> dict[str, Any]:
    """A small, valid Observation (serum creatinine), newest first by index."""
    day = 28 - index % 28
    return {
        "resourceType": "Observation",
        "id": f"cr-{index}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "effectiveDateTime": f"2026-10-{day:02d}",
        "valueQuantity": {"value": 0.8, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }


# -- faults ---------------------------------------------------------------------------------------


def status(code: int, reason: str = "Error", **headers: str) -> Responder:
    """An HTTP error status with an OperationOutcome body."""
    return lambda ex: ex.answer_json(outcome(f"fault {code}"), f"{code} {reason}", **headers)


def delay(seconds: float, then: Responder = healthy) -> Responder:
    """Answer with ``then`` after ``seconds`` (unless the client gave up first)."""

    def respond(ex: Exchange) -> None:
        if not ex.hold(seconds):
            then(ex)

    return respond


def hang() -> Responder:
    """Accept, read the request, never answer; hold the connection until the client closes it."""
    return lambda ex: ex.hold(3600) and None


def reset() -> Responder:
    """Read the request, then reset the connection (RST) without a byte of answer."""
    return lambda ex: ex.reset()


def reset_mid_body() -> Responder:
    """Send the head and half the body, then reset the connection."""

    def respond(ex: Exchange) -> None:
        body = json.dumps(searchset([creatinine(i) for i in range(20)])).encode()
        ex.send(http_head(length=len(body)) + body[: len(body) // 2])
        time.sleep(0.01)  # let the client read what was sent before the RST discards it
        ex.reset()

    return respond


def close_without_answer() -> Responder:
    """Read the request and close the connection cleanly (FIN) with no answer at all."""
    return lambda ex: None


def invalid_json() -> Responder:
    return lambda ex: ex.answer("200 OK", b'{"resourceType": "Bundle", "entry": [')


def huge_number() -> Responder:
    """Valid JSON that Python refuses to parse as a number: 5,000 digits (over int_max_str_digits)."""
    return lambda ex: ex.answer("200 OK", b'{"resourceType": "Bundle", "total": ' + b"9" * 5000 + b"}")


def not_fhir_json() -> Responder:
    return lambda ex: ex.answer_json({"results": [], "status": "ok"})


def content_type(media_type: str = "text/html; charset=utf-8") -> Responder:
    """A non-FHIR content type, e.g. an HTML login page from a proxy."""
    return lambda ex: ex.answer("200 OK", b"<html><body>Please log in</body></html>", media_type)


def truncated() -> Responder:
    """Content-Length larger than what is sent, then close."""

    def respond(ex: Exchange) -> None:
        body = json.dumps(searchset([creatinine(i) for i in range(5)])).encode()
        ex.send(http_head(length=len(body) + 4096) + body)

    return respond


def trickle_body(interval: float = 0.05) -> Responder:
    """A head promising 10 kB, then one byte every ``interval``: each read succeeds, the whole never ends."""

    def respond(ex: Exchange) -> None:
        ex.send(http_head(length=10_000))
        while not ex.hold(interval):
            ex.send(b" ")

    return respond


def trickle_head(interval: float = 0.05, limit: float = 5.0) -> Responder:
    """The status line, then header bytes one at a time for ``limit`` seconds (then the head is
    finished without a Content-Type, so a client that waited it out fails instead of hanging)."""

    def respond(ex: Exchange) -> None:
        end = time.monotonic() + limit
        ex.send(b"HTTP/1.1 200 OK\r\nX-Padding: ")
        while not ex.hold(interval):
            if time.monotonic() > end:
                ex.send(b"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                return
            ex.send(b"a")

    return respond


def redirect(location: str) -> Responder:
    return lambda ex: ex.answer("302 Found", b"", Location=location)


def declared_too_large(size: int) -> Responder:
    """A Content-Length over the byte cap; the body follows until the client hangs up."""

    def respond(ex: Exchange) -> None:
        ex.send(http_head(length=size))
        filler = b" " * 65536
        sent = 0
        while sent < size and not ex.stop.is_set():
            ex.send(filler)
            sent += len(filler)

    return respond


def endless_searchset(entry_bytes: int = 4096) -> Responder:
    """A chunked searchset that never ends: entries of ``entry_bytes`` each, streamed until the
    client hangs up (no Content-Length, so only the byte cap can stop it)."""

    def respond(ex: Exchange) -> None:
        ex.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )

        def chunk(data: bytes) -> None:
            ex.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        chunk(b'{"resourceType": "Bundle", "type": "searchset", "entry": [')
        index = 0
        while not ex.stop.is_set():
            resource = creatinine(index)
            resource["note"] = [{"text": "x" * entry_bytes}]
            chunk((b"," if index else b"") + json.dumps({"resource": resource}).encode())
            index += 1

    return respond


def gzip_bomb(decompressed: int) -> Responder:
    """A small gzip body that inflates to ``decompressed`` bytes (Content-Encoding: gzip)."""
    body = gzip.compress(
        b'{"resourceType": "Bundle", "type": "searchset", "entry": []' + b" " * decompressed + b"}", compresslevel=9
    )

    def respond(ex: Exchange) -> None:
        ex.answer("200 OK", body, Content_Encoding="gzip")

    return respond


def many_entries(count: int) -> Responder:
    """One page holding ``count`` valid Observations."""

    def respond(ex: Exchange) -> None:
        ex.answer_json(searchset([creatinine(i) for i in range(count)]))

    return respond


def endless_pages(per_page: int = 20) -> Responder:
    """Every page links to a next page that does not exist yet: paging never ends by itself."""

    def respond(ex: Exchange) -> None:
        page = int(re.search(r"_page=(\d+)", ex.query).group(1)) if "_page=" in ex.query else 0  # type: ignore[union-attr]
        base = re.sub(r"&?_page=\d+", "", ex.query)
        resources = [creatinine(page * per_page + i) for i in range(per_page)]
        ex.answer_json(searchset(resources, next_url=f"{ex.server.base}/{ex.path}?{base}&_page={page + 1}"))

    return respond


def next_loop() -> Responder:
    """A page whose ``next`` link is its own URL."""
    return lambda ex: ex.answer_json(searchset([creatinine(0)], next_url=ex.url))


def next_elsewhere(url: str) -> Responder:
    """A page whose ``next`` link points to another server (where the token must not go)."""
    return lambda ex: ex.answer_json(searchset([creatinine(0)], next_url=url))


def medication_reference_not_an_object() -> Responder:
    """A MedicationRequest whose ``medicationReference`` is a bare string, not a Reference."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "mr-odd",
        "status": "active",
        "intent": "order",
        "medicationReference": "Medication/tac-1",
    }
    return lambda ex: ex.answer_json(searchset([order]))


def malformed_bundle() -> Responder:
    """JSON that says Bundle but whose ``entry`` and ``link`` are not arrays."""
    return lambda ex: ex.answer_json({"resourceType": "Bundle", "type": "searchset", "entry": 5, "link": True})


# -- pytest fixtures and the run's tally ----------------------------------------------------------


class FaultTally:
    """Fault scenarios injected and survived across the run; printed in the terminal summary."""

    def __init__(self) -> None:
        self.scenarios: list[str] = []
        self.injected = 0  # faulty answers served during scenarios
        self.survived: list[str] = []
        self.slowest = 0.0  # the slowest answer of a survived scenario, seconds

    def begin(self, scenario: str) -> None:
        """A test is about to inject the fault ``scenario``."""
        self.scenarios.append(scenario)

    def passed(self, scenario: str, elapsed: float) -> None:
        """Every check of ``scenario`` held: answered in time, correctly, nothing left stuck."""
        self.survived.append(scenario)
        self.slowest = max(self.slowest, elapsed)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.scenarios:
            return
        kinds = {name.split("[", 1)[0] for name in self.scenarios}
        terminalreporter.write_sep("-", "FHIR fault injection")
        terminalreporter.write_line(
            f"fault scenarios: {len(self.scenarios)} ({len(kinds)} kinds), faulty answers injected: "
            f"{self.injected}, scenarios survived: {len(self.survived)} of {len(self.scenarios)} "
            f"(slowest answer {self.slowest:.2f} s)"
        )


FAULT_TALLY = FaultTally()


@pytest.fixture(scope="module")
def fault_server_module(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    """One fault server per test module."""
    manager = request.config.pluginmanager
    if not manager.is_registered(FAULT_TALLY):
        manager.register(FAULT_TALLY, "fhir-fault-tally")
    with FaultServer() as server:
        yield server


@pytest.fixture
def fault_server(fault_server_module: FaultServer) -> Iterator[FaultServer]:
    """The module's fault server with an empty plan (healthy) and zeroed counters."""
    fault_server_module.reset()
    scenarios = len(FAULT_TALLY.scenarios)
    yield fault_server_module
    if len(FAULT_TALLY.scenarios) > scenarios:  # count what a scenario injected, not other tests' faults
        FAULT_TALLY.injected += fault_server_module.injected
    fault_server_module.reset()

"""Test doubles for FHIR I/O: `responses` helpers that assert the Authorization header, hook request
bodies, and a raw socket server on 127.0.0.1 for faults `responses` cannot fake (hangs, trickles,
truncated bodies)."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from typing import Any, Callable, Iterator

import requests

BASE = "https://fhir.example.org/r4"
TOKEN = "access-token-7f3a9c"
PATIENT = "pat-8812"
FHIR_JSON = "application/fhir+json"


def auth_matcher(token: str | None) -> Callable[[requests.PreparedRequest], tuple[bool, str]]:
    """A `responses` matcher: the call carries ``Bearer <token>``, or no Authorization at all."""
    def match(request: requests.PreparedRequest) -> tuple[bool, str]:
        got = request.headers.get("Authorization")
        want = f"Bearer {token}" if token else None
        return got == want, "" if got == want else "Authorization header is not the expected one"
    return match


def url(path_regex: str, base: str = BASE) -> re.Pattern[str]:
    """A URL pattern for ``{base}/{path_regex}`` (query string allowed after it)."""
    return re.compile(re.escape(base) + "/" + path_regex + r"(\?.*)?$")


def fhir_get(rsps: Any, path_regex: str, resource: Any = None, *, token: str | None = TOKEN, status: int = 200,
             base: str = BASE, **kwargs: Any) -> Any:
    """Register one GET answered with FHIR JSON, matching the Authorization header."""
    kwargs.setdefault("content_type", FHIR_JSON)
    if resource is not None:
        kwargs["json"] = resource
    return rsps.get(url(path_regex, base), status=status, match=[auth_matcher(token)], **kwargs)


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                           "entry": [{"resource": r} for r in resources]}
    if next_url:
        out["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return out


def observation(oid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
            "valueQuantity": {"value": 0.8, "unit": "mg/dL"}}


OUTCOME = {"resourceType": "OperationOutcome",
           "issue": [{"severity": "error", "code": "exception", "diagnostics": "query failed"}]}


def hook_body(prefetch: dict[str, Any] | None = None, *, hook: str = "patient-view",
              fhir_server: str | None = BASE, token: str | None = TOKEN,
              context: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context or {"userId": "Practitioner/doc-1", "patientId": PATIENT},
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
    if fhir_server and token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "tacro-cds"}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


class RawServer:
    """A real TCP server on 127.0.0.1 whose every connection is handled by
    ``respond(sock, stop, head)`` (``head``: the request line and headers); ``stop`` is set when the
    test leaves the ``with`` block, so a hanging handler can end."""

    def __init__(self, respond: Callable[[socket.socket, threading.Event, bytes], None]) -> None:
        stop = self.stop = threading.Event()
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(10)
                outer.connections += 1
                try:
                    respond(self.request, stop, _read_request_head(self.request))
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128  # above our parallel fan-out: a dropped SYN costs a 1 s retry

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _read_request_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_head(status: str = "200 OK", content_type: str = FHIR_JSON, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]

"""A FHIR stand-in: a small stdlib HTTP server on 127.0.0.1 that answers GETs under ``/fhir`` from a
function, for the benches and the load run when no real FHIR server is configured.

Two kinds of answers:

- ``synthetic_answers``: every search a Bundle of a few placeholder resources, every read a bare
  resource of the type asked (what bench/bench_prefetch.py times: the fetch, not the data);
- ``replay_answers``: the fixture scenarios replayed. The query a prefetch template gives for a
  request is answered with that request's prefetched value, so a request sent without its prefetch
  must get the same cards as the prefetched one; reads of any resource of a scenario are answered
  from its patient.json.

    with FhirStandIn(replay_answers(...), token="t") as fhir:
        fhir.url      # http://127.0.0.1:<port>/fhir
        fhir.served   # GETs answered so far
        fhir.connections  # TCP connections accepted so far
        fhir.dropped  # requests not answered: their kept-alive connection was closed as they came

Like real servers, it can close kept-alive connections: ``keep_alive_s`` closes one that has been
idle that long (uvicorn's default is 5 s), and ``drop_reused_after`` closes one, unanswered, when
a request arrives on it after that much idleness: the race a client meets when the server's idle
timer fires just as the client sends on the connection (0 drops every request on a reused
connection), which a client survives only by sending the request again on a new connection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from service.hooks.templates import substitute

# A relative FHIR query ("Observation?patient=p1&code=...", "Patient/p1") -> (status, resource).
Answer = Callable[[str], tuple[int, dict[str, Any]]]
QueryKey = tuple[str, tuple[tuple[str, str], ...]]

BASE_PATH = "/fhir"


def outcome(code: str, text: str) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def searchset(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A searchset Bundle of ``resources``."""
    entries = [{"resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def query_key(relative: str) -> QueryKey:
    """``relative`` in a form independent of percent-encoding and parameter order."""
    path, _, query = relative.partition("?")
    return unquote(path).strip("/"), tuple(sorted(parse_qsl(query, keep_blank_values=True)))


class FhirStandIn:
    """The server; ``answer`` decides every reply. A context manager: started on enter, stopped on exit."""

    def __init__(
        self,
        answer: Answer,
        *,
        delay: float = 0.0,
        token: str | None = None,
        keep_alive_s: float | None = None,
        drop_reused_after: float | None = None,
    ) -> None:
        self.answer = answer
        self.delay = delay
        self.token = token
        self.keep_alive_s = keep_alive_s
        self.drop_reused_after = drop_reused_after
        self.served = 0
        self.connections = 0  # TCP connections accepted so far (a client reusing one adds none)
        self.dropped = 0  # requests whose kept-alive connection was closed as they arrived
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL, to send as ``fhirServer``."""
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{BASE_PATH}"

    def start(self) -> FhirStandIn:
        """Listen on a free 127.0.0.1 port and serve from a daemon thread."""
        # ``timeout`` is the socket timeout of each accepted connection: an idle one is closed at it.
        handler = type("Handler", (_Handler,), {"standin": self, "timeout": self.keep_alive_s})
        # A listen backlog above the service's parallel fan-out: the default 5 drops SYNs, costing
        # a 1 s retransmit on a fallback that fires a dozen queries at once.
        standin = self

        def get_request(server: ThreadingHTTPServer) -> tuple[Any, Any]:
            accepted = ThreadingHTTPServer.get_request(server)
            with standin._lock:
                standin.connections += 1
            return accepted

        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256, "get_request": get_request})
        self._server = server_class(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fhir-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FhirStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reply(self, path_and_query: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The status and resource for one GET (the token checked first, as a real server does)."""
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.served += 1
        if self.token is not None and authorization != f"Bearer {self.token}":
            return 401, outcome("login", "a valid bearer token is required")
        parts = urlsplit(path_and_query)
        if not (parts.path == BASE_PATH or parts.path.startswith(BASE_PATH + "/")):
            return 404, outcome("not-found", "no such endpoint")
        relative = parts.path[len(BASE_PATH) :].strip("/") + (f"?{parts.query}" if parts.query else "")
        return self.answer(relative)


class _Handler(BaseHTTPRequestHandler):
    standin: FhirStandIn
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no delayed-ACK stall

    answered_at: float | None = None  # when this connection's last answer went out

    def do_GET(self) -> None:
        drop_after = self.standin.drop_reused_after
        if (
            drop_after is not None
            and self.answered_at is not None
            and time.monotonic() - self.answered_at >= drop_after
        ):
            with self.standin._lock:
                self.standin.dropped += 1
            self.close_connection = True  # closed with nothing sent, as a timed-out idle connection is
            return
        status, resource = self.standin.reply(self.path, self.headers.get("Authorization"))
        payload = json.dumps(resource).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.answered_at = time.monotonic()

    def log_message(self, *args: Any) -> None:
        pass  # the queries carry patient ids: keep them off the console


def synthetic_answers(patient_id: str, per_search: int = 5) -> Answer:
    """Reads: a bare resource of the type asked (a Patient with ``patient_id``); searches: a
    Bundle of ``per_search`` placeholder resources of the searched type."""

    def answer(relative: str) -> tuple[int, dict[str, Any]]:
        path, _ = query_key(relative)
        kind, _, rid = path.partition("/")
        if rid:
            return 200, {"resourceType": kind, "id": patient_id if kind == "Patient" else rid}
        return 200, searchset({"resourceType": kind, "id": f"{kind.lower()}-{i}"} for i in range(per_search))

    return answer


def replay_answers(
    requests: Iterable[Mapping[str, Any]], templates: Mapping[str, str], resources: Iterable[dict[str, Any]] = ()
) -> Answer:
    """Answers built from prefetched CDS Hooks requests: the query each template gives for a
    request's context answers with the value that request prefetched for that key; ``Type/id``
    reads not covered so are answered from ``resources``. Anything else: 404 for a read, an empty
    searchset for a search. Two requests prefetching different values for one query are an error."""
    table: dict[QueryKey, dict[str, Any]] = {}
    for body in requests:
        prefetch = body.get("prefetch") or {}
        for key, template in templates.items():
            value = prefetch.get(key)
            if value is None:
                continue
            query = query_key(substitute(template, body["context"]))
            if table.setdefault(query, value) != value:
                raise ValueError(f"two requests prefetch different {key!r} for one query")
    for resource in resources:
        table.setdefault((f"{resource['resourceType']}/{resource['id']}", ()), resource)

    def answer(relative: str) -> tuple[int, dict[str, Any]]:
        key = query_key(relative)
        if key in table:
            return 200, table[key]
        if "/" in key[0]:
            return 404, outcome("not-found", "no such resource")
        return 200, searchset(())

    return answer

"""How ``tacro-cds serve`` runs the Flask app so that slow clients cannot take its threads.

gunicorn's threaded worker hands a connection to a thread as soon as its first byte arrives, and the
thread then waits for the rest of the request: a few dozen clients sending a header line every few
seconds (slowloris) or a body a byte at a time hold every thread, and ``/healthz`` stops answering.
So the service runs in gunicorn's asyncio (ASGI) worker instead: headers are read by the event loop,
``BufferedRequest`` reads the whole body there too (up to MAX_REQUEST_BYTES), and only a complete
request is handed to a thread of a2wsgi's pool, which runs the Flask app as WSGI. A slow client
costs a socket and a coroutine, not a thread.

In production a buffering reverse proxy in front of the replicas (nginx in docker-compose.yml) does
the same at the edge; this keeps a service reached directly safe as well.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask
from gunicorn.workers import gasgi

from service.errors import PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Headers every answer carries, gunicorn's own error pages (malformed requests) included.
SAFE_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))


class BufferedRequest:
    """ASGI middleware: read a request's whole body on the event loop before calling ``app``;
    answer 413 (without calling it) once the body exceeds ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _named(send)
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its request: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False
        # The body is complete: say how long it is (a chunked request had no Content-Length, and
        # a WSGI app reads no body without one).
        headers = [
            (k, v) for k, v in scope.get("headers", ()) if k.lower() not in (b"content-length", b"transfer-encoding")
        ]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        await self.app(scope, replay, send)


def _named(send: Send) -> Send:
    """``send`` with a Server header of the service's own, so the server's (which names it and its
    flavour) is not added."""

    async def named(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"server" for name, _ in headers):
                headers.append((b"server", b"tacro-cds"))
            message = {**message, "headers": headers}
        await send(message)

    return named


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send) -> None:
    body = json.dumps(PayloadTooLargeError("request body too large").outcome()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *((k.lower().encode(), v.encode()) for k, v in SAFE_HEADERS),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def asgi_app(wsgi_app: Any, *, threads: int, max_request_bytes: int) -> ASGIApp:
    """The Flask app as an ASGI app whose requests reach it complete, on ``threads`` threads."""
    wsgi: Any = WSGIMiddleware(wsgi_app, workers=threads)  # a2wsgi's own, narrower ASGI types
    return BufferedRequest(wsgi, max_request_bytes)


class _Protocol(gasgi.ASGIProtocol):  # type: ignore[misc]
    """gunicorn's HTTP protocol, with the service's safety headers on its own error answers."""

    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        super()._send_error_response(status, message, (*tuple(extra_headers), *SAFE_HEADERS))


class Worker(gasgi.ASGIWorker):  # type: ignore[misc]
    """gunicorn's asyncio worker using ``_Protocol``, serving a WSGI (Flask) app: the app gunicorn
    loads (``service:create_app()`` in gunicorn.conf.py) runs on gunicorn's ``threads`` setting's
    number of threads, each request handed to it complete (``asgi_app``)."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """gasgi warns that it ignores ``threads``; this worker uses it (a2wsgi's thread pool)."""

    def init_process(self) -> None:
        # gasgi builds its protocol from the module-level name; point it at ours in this worker.
        gasgi.ASGIProtocol = _Protocol
        super().init_process()

    asgi: Any

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.asgi
        if isinstance(app, Flask):
            self.asgi = asgi_app(
                app, threads=max(1, int(self.cfg.threads)), max_request_bytes=app.config["MAX_CONTENT_LENGTH"]
            )

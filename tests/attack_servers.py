"""Attacker servers for the outbound-call tests: small HTTP servers on 127.0.0.1 that record what
reached them, answer from a table of routes, and host names mapped to them inside this process
(``map_names``), so a test can name "ehr.test" or "inside.test" without any real DNS."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = tuple[int, dict[str, str], bytes]
Route = Answer | Callable[["Seen"], Answer]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class AttackServer:
    """One HTTP server on 127.0.0.1; ``routes`` maps "METHOD /path" to an answer."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> AttackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(min(length, 1 << 20)))
                owner.seen.append(seen)
                route = owner.routes.get(f"{self.command} {self.path.split('?', 1)[0]}")
                status, headers, body = (404, {}, b"") if route is None else route(seen) if callable(route) else route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_answer(body: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class Trickler:
    """A listener on 127.0.0.1 that accepts every connection and answers one byte of a status line
    every ``step_s`` seconds, for at most ``limit_s`` (a bounded attack)."""

    def __init__(self, step_s: float = 0.5, limit_s: float = 60.0) -> None:
        self.step_s, self.limit_s = step_s, limit_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        stop = time.monotonic() + self.limit_s
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if self._stop.is_set() or time.monotonic() > stop:
                    break
                conn.sendall(bytes([byte]))
                time.sleep(self.step_s)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@contextmanager
def map_names(monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> Iterator[list[str]]:
    """Resolve each name in ``names`` to its address inside this process; yields the names looked up."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            looked_up.append(host)
            return real(names[host], *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield looked_up

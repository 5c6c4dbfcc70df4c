"""What ``tacro-cds serve`` itself answers and leaves behind: gunicorn's own error answers (to
requests too malformed to reach the app) carry nosniff, and no control socket is created (two
instances on one host unlinked each other's)."""

from __future__ import annotations

import socket

import pytest

from bench.server import gunicorn


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.slow
def test_server_error_answers_carry_nosniff_and_no_control_socket_is_made(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    runtime = home / "run"
    runtime.mkdir()
    with gunicorn(workers=1, threads=2, env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}) as server:
        for bad in (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            answer = _raw(server.port, bad)
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            assert head.startswith("http/1.1 4"), head[:100]
            assert "x-content-type-options: nosniff" in head, head
    made = [p for p in home.rglob("*") if p.name.endswith(".ctl") or p.is_socket()]
    assert made == [], made

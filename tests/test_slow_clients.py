"""Slow clients cannot stall ``tacro-cds serve``: 32 connections to 127.0.0.1 that send a header
line, or a body byte, every half second (slowloris) hold no serving thread, so ``/healthz`` and a
fully prefetched call answer within a second of their time without the attack."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Callable

import pytest
import requests

from bench.samples import builtin_request
from bench.server import gunicorn

VIEW = "/cds-services/tacrolimus-patient-view"
SLOW_CONNECTIONS = 32
ATTACK_S = 60.0  # how long a slow client trickles at most (the test stops them once it has measured)
STEP_S = 0.5
OPEN_TIMEOUT_S = 60.0  # for every connection to be open, on a machine busy with other test runs


class Slowloris:
    """Half the connections trickle headers, half a 100 KB body, one piece every STEP_S."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.connections = connections
        self.stop = threading.Event()
        self.open = 0
        self.lock = threading.Lock()
        self.all_open = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(connections)]

    def __enter__(self) -> Slowloris:
        for thread in self.threads:
            thread.start()
        # Every connection open and trickling before anything is measured (bounded: a connection that
        # cannot open leaves ``open`` short, which the test reports).
        self.all_open.wait(OPEN_TIMEOUT_S)
        self.stop.wait(2 * STEP_S)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)

    def _run(self, i: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            return
        with self.lock:
            self.open += 1
            if self.open == self.connections:
                self.all_open.set()
        deadline = time.monotonic() + ATTACK_S
        try:
            if i % 2 == 0:
                sock.sendall(b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\n")
                n = 0
                while not self.stop.is_set() and time.monotonic() < deadline:
                    sock.sendall(f"X-Slow-{n}: {n}\r\n".encode())
                    n += 1
                    self.stop.wait(STEP_S)
            else:
                sock.sendall(
                    b"POST " + VIEW.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
                while not self.stop.is_set() and time.monotonic() < deadline:
                    sock.sendall(b" ")
                    self.stop.wait(STEP_S)
        except OSError:
            pass
        finally:
            sock.close()


def _timed(call: Callable[[], requests.Response]) -> float:
    started = time.monotonic()
    response = call()
    assert response.status_code == 200, response.text[:300]
    return time.monotonic() - started


@pytest.mark.slow
def test_slowloris_connections_do_not_delay_health_or_a_prefetched_call():
    body = json.dumps(builtin_request("patient-view", with_token=False)).encode()
    with gunicorn(workers=1, threads=4) as server:
        session = requests.Session()

        def health() -> requests.Response:
            return session.get(server.base_url + "/healthz", timeout=15)

        def prefetched() -> requests.Response:
            return session.post(
                server.base_url + VIEW, data=body, timeout=15, headers={"Content-Type": "application/json"}
            )

        for _ in range(3):  # warm up
            _timed(health), _timed(prefetched)
        calm = {
            "health": statistics.median(_timed(health) for _ in range(5)),
            "prefetched": statistics.median(_timed(prefetched) for _ in range(5)),
        }
        # A loaded 2-core machine can stall any one sample: the worst of the best of two tries counts.
        for _attempt in range(2):
            with Slowloris(server.port, SLOW_CONNECTIONS) as attack:
                under = {
                    "health": max(_timed(health) for _ in range(5)),
                    "prefetched": max(_timed(prefetched) for _ in range(5)),
                }
                held = attack.open
            print(f"slowloris: {held} connections held; calm {calm}; under attack (worst of 5) {under}")
            if all(under[k] - calm[k] <= 1.0 for k in calm):
                break
        assert held == SLOW_CONNECTIONS
        for kind in calm:
            assert under[kind] - calm[kind] <= 1.0, (kind, calm, under)

"""Waiting for a test server (bench/server.py): a slow or half-started server is "not yet", never an
error; a server that is gone or never ready ends the wait with False within its bound."""

from __future__ import annotations

import time

import fault_server as faults
from fault_server import FaultServer

from bench.server import POLL_S, wait_for_health


def _healthz_ok(ex: faults.Exchange) -> None:
    ex.answer_json({"status": "ok"})


def test_read_timeouts_resets_and_errors_while_booting_only_mean_not_yet():
    with FaultServer() as server:
        server.plan(faults.hang(), times=2)  # accepted, never answered: a ReadTimeout each
        server.plan(faults.reset(), times=1)  # ConnectionError
        server.plan(faults.status(503, "Service Unavailable"), times=1)
        server.plan(_healthz_ok)
        assert wait_for_health(f"{server.base}/healthz", timeout=60, probe_timeout=0.3)
        assert server.injected >= 5


def test_a_server_that_is_gone_ends_the_wait_at_once():
    with FaultServer() as server:
        server.plan(faults.hang())
        started = time.monotonic()
        assert not wait_for_health(f"{server.base}/healthz", timeout=60, alive=lambda: False)
        assert time.monotonic() - started < 30  # not the 60 s bound: nothing was waited for


def test_a_server_never_ready_ends_the_wait_at_its_bound():
    with FaultServer() as server:
        server.plan(_healthz_ok)
        started = time.monotonic()
        assert not wait_for_health(f"{server.base}/healthz", timeout=1.0, ready=lambda: False)
        assert time.monotonic() - started >= 1.0 - POLL_S

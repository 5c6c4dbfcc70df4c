"""The parallel run of a call's FHIR fetches at its deadline (``service.hooks.prefetch_calls``)."""

from __future__ import annotations

import threading
import time

from service.fhir.client import FhirTimeoutError
from service.hooks.prefetch_calls import run_parallel


def test_calls_still_queued_at_the_deadline_time_out_instead_of_failing_the_hook_call():
    """More calls than threads and a deadline that has passed: the queued calls are cancelled by the
    pool's shutdown, and each must come back as a timeout (a 500 on a loaded machine before)."""
    release = threading.Event()
    started: list[str] = []

    def call(name: str):
        def run() -> str:
            started.append(name)
            release.wait(5)
            return name

        return run

    tasks = {name: call(name) for name in ("a", "b", "c", "d")}
    try:
        results = run_parallel(tasks, time.monotonic() - 1, max_parallel=1, budget_s=10)
    finally:
        release.set()
    assert set(results) == set(tasks)
    queued = [name for name in tasks if name not in started]
    assert queued, "every call started: the case under test did not arise"
    for name in queued:
        assert isinstance(results[name], FhirTimeoutError), (name, results[name])
        assert "10 s" in str(results[name])


def test_calls_done_before_the_deadline_give_their_results():
    results = run_parallel({"a": lambda: 1, "b": lambda: 2}, time.monotonic() + 5, max_parallel=4, budget_s=10)
    assert results == {"a": 1, "b": 2}

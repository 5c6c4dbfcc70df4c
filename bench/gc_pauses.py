"""Pauses of the cyclic garbage collector over many in-process calls, with the start-up heap frozen
(as each gunicorn worker does: ``service.ops.worker.freeze_startup_heap``) or not.

    python -m bench.gc_pauses [--calls 10000] [--body order-select] [--no-freeze] [--limit-ms 20]

The app is built as a worker builds it, called through Flask's test client (no HTTP) ``--calls``
times with one bench body (bench/bodies.py), and every collection is timed through ``gc.callbacks``.
Printed: collections per generation with the median and longest pause, as wall time and as the
collecting thread's CPU time, and how many full (generation 2) collections took longer than
``--limit-ms`` by each; the exit status is 1 if one did by CPU time. On a busy machine a wall-time
pause also counts the time the process waited for a CPU (the load average is printed at the start
and the end); the CPU time is the collector's own work.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bodies import BODY_NAMES, build_body
from service import create_app
from service.ops.worker import freeze_startup_heap


class CollectionTimer:
    """A ``gc.callbacks`` entry recording each collection's duration (seconds) by generation: wall
    time in ``pauses``, and the CPU time of the collecting thread in ``cpu`` (wall time less any wait
    for a CPU, which on a shared machine can be longer than the collection itself)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            generation = int(info["generation"])
            self.pauses[generation].append(time.perf_counter() - self._started[0])
            self.cpu[generation].append(time.thread_time() - self._started[1])


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(calls: int, body_name: str, *, freeze: bool) -> tuple[CollectionTimer, float]:
    """``calls`` in-process calls of the body; the collections timed, and the seconds per call."""
    body = build_body(body_name)
    with tempfile.TemporaryDirectory(prefix="tacro-cds-gc-") as tmp:
        app = create_app(
            {
                "AUTH_REQUIRED": False,
                "FEEDBACK_DB": f"sqlite:///{Path(tmp) / 'feedback.sqlite'}",
                "DATA_DIR": str(Path(tmp) / "data"),
                "LOG_LEVEL": "WARNING",
            }
        )
        client = app.test_client()
        response = client.post(body.path, data=body.payload, content_type="application/json")
        if response.status_code != 200:
            raise RuntimeError(f"{body_name}: {response.status_code} {response.get_data(as_text=True)[:500]}")
        if freeze:
            freeze_startup_heap()
        timer = CollectionTimer()
        gc.callbacks.append(timer)
        try:
            t0 = time.perf_counter()
            for _ in range(calls):
                client.post(body.path, data=body.payload, content_type="application/json")
            elapsed = time.perf_counter() - t0
        finally:
            gc.callbacks.remove(timer)
            if freeze:
                gc.unfreeze()
    return timer, elapsed / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gc_pauses", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000, help="in-process calls (default 10,000)")
    parser.add_argument("--body", default="order-select", choices=BODY_NAMES, help="bench body (default order-select)")
    parser.add_argument("--no-freeze", action="store_true", help="leave the start-up heap to the collector")
    parser.add_argument("--limit-ms", type=float, default=20.0, help="longest full collection allowed (default 20)")
    args = parser.parse_args(argv)
    print(
        f"gc pauses: {args.calls} calls of {args.body}, start-up heap {'not ' if args.no_freeze else ''}frozen; {_load()}"
    )
    timer, per_call = run(args.calls, args.body, freeze=not args.no_freeze)
    for generation, pauses in timer.pauses.items():
        if pauses:
            cpu = timer.cpu[generation]
            print(
                f"  generation {generation}: {len(pauses)} collections; wall median {statistics.median(pauses) * 1000:.2f} ms,"
                f" max {max(pauses) * 1000:.2f} ms; CPU median {statistics.median(cpu) * 1000:.2f} ms,"
                f" max {max(cpu) * 1000:.2f} ms"
            )
        else:
            print(f"  generation {generation}: no collection")
    wall_over = sum(1 for p in timer.pauses[2] if p * 1000 > args.limit_ms)
    cpu_over = sum(1 for p in timer.cpu[2] if p * 1000 > args.limit_ms)
    print(
        f"  {per_call * 1000:.2f} ms per call; full collections over {args.limit_ms:g} ms: {cpu_over} by CPU time,"
        f" {wall_over} by wall time (which counts waiting for a CPU)"
    )
    print(f"done; {_load()}")
    return 1 if cpu_over else 0


if __name__ == "__main__":
    sys.exit(main())

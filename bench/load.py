"""Load run: the service under gunicorn with several workers, driven from this (second) process.

    python -m bench.load [--requests N] [--workers W] [--clients C] [--json report.json]

Sends N requests (default TACRO_CDS_LOAD_REQUESTS or 10,000) from a thread pool, one
requests.Session per thread: valid prefetched calls to the three services, invalid bodies, unknown
services, oversized bodies, discovery and health. First every distinct request is sent once, alone:
that is the single-request answer every loaded answer must equal (status, and body without uuids).
Checks: only those answers, no worker died or was replaced, worker RSS bounded after warm-up, no
secret or patient datum in the server's log, done within the time bound. Prints the status mix,
throughput and latency percentiles; exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.samples import SECRETS, builtin_requests, fixture_requests
from bench.server import gunicorn, rss_kib

MAX_BODY = 256 * 1024  # the server runs with this MAX_REQUEST_BYTES so a 413 is cheap to provoke


@dataclass(frozen=True)
class Call:
    """One distinct request of the mix."""

    name: str
    method: str
    path: str
    body: bytes | None
    weight: float


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def build_mix(max_fixtures: int = 20) -> list[Call]:
    """The distinct requests and their share of the load."""
    valid = [(n, s, b) for n, s, b in builtin_requests()]
    for name, service, body in list(fixture_requests())[:max_fixtures]:
        body = copy.deepcopy(body)
        # Load is about the service, not a FHIR server: no fallback fetch (a key missing is a 412).
        body.pop("fhirServer", None)
        body.pop("fhirAuthorization", None)
        valid.append((name, service, body))
    calls = [Call(f"valid:{n}", "POST", f"/cds-services/{s}", _json(b), 0.50 / len(valid)) for n, s, b in valid]
    view = "/cds-services/tacrolimus-patient-view"
    sample = builtin_requests()[2][2]
    wrong_hook = {**sample, "hook": "order-sign"}
    missing = {k: v for k, v in sample.items() if k != "context"}
    calls += [
        Call("invalid:malformed-json", "POST", view, b'{"hook": "patient-view", ', 0.05),
        Call("invalid:schema", "POST", view, _json(missing), 0.04),
        Call("invalid:hook-mismatch", "POST", view, _json(wrong_hook), 0.03),
        Call("invalid:too-deep", "POST", view, b"[" * 100 + b"]" * 100, 0.03),
        Call("unknown-service", "POST", "/cds-services/no-such-service", _json(sample), 0.10),
        Call("too-large", "POST", view, _json(sample) + b" " * MAX_BODY, 0.01),
        Call("discovery", "GET", "/cds-services", None, 0.16),
        Call("healthz", "GET", "/healthz", None, 0.08),
    ]
    return calls


def _strip_uuids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [_strip_uuids(v) for v in value]
    return value


def _answer(response: requests.Response) -> tuple[int, Any]:
    try:
        body = _strip_uuids(response.json())
    except ValueError:
        body = response.content
    return response.status_code, body


class _Client:
    """A requests.Session per thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.local = threading.local()

    def send(self, call: Call) -> tuple[requests.Response, float]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        started = time.perf_counter()
        response = session.request(call.method, self.base_url + call.path, data=call.body, timeout=30,
                                   headers={"Content-Type": "application/json"} if call.body is not None else {})
        return response, time.perf_counter() - started


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(*, base_url: str, worker_pids: list[int], total: int, clients: int, max_seconds: float,
        seed: int = 20261125) -> dict[str, Any]:
    """Drive the server; return the figures and the list of problems found (empty: pass)."""
    calls = build_mix()
    client = _Client(base_url)
    problems: list[str] = []

    # The single-request answers.
    expected = {}
    for call in calls:
        response, _ = client.send(call)
        expected[call.name] = _answer(response)
    rng = random.Random(seed)
    warmup = rng.choices(calls, weights=[c.weight for c in calls], k=max(200, total // 20))
    plan = rng.choices(calls, weights=[c.weight for c in calls], k=total)

    def fire(batch: list[Call]) -> tuple["collections.Counter[tuple[str, Any]]", list[float], list[str]]:
        statuses: collections.Counter[tuple[str, Any]] = collections.Counter()
        latencies: list[float] = []
        wrong: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
            futures = {pool.submit(client.send, call): call for call in batch}
            try:
                for future in concurrent.futures.as_completed(futures, timeout=max_seconds):
                    call = futures[future]
                    try:
                        response, seconds = future.result()
                    except Exception as exc:  # a transport error is a finding, not a bench crash
                        statuses[(call.name, type(exc).__name__)] += 1
                        wrong.append(f"{call.name}: {type(exc).__name__}")
                        continue
                    latencies.append(seconds)
                    statuses[(call.name, response.status_code)] += 1
                    if _answer(response) != expected[call.name]:
                        wrong.append(f"{call.name}: {response.status_code} differs from the single-request answer")
            except concurrent.futures.TimeoutError:
                wrong.append(f"time bound of {max_seconds}s exceeded")
                for future in futures:
                    future.cancel()
        return statuses, latencies, wrong

    wrong_in_warmup = fire(warmup)[2]
    rss_before = {pid: rss_kib(pid) for pid in worker_pids}
    started = time.perf_counter()
    statuses, latencies, wrong = fire(plan)
    elapsed = time.perf_counter() - started
    rss_after = {pid: rss_kib(pid) for pid in worker_pids if Path(f"/proc/{pid}").exists()}

    problems += sorted(set(wrong_in_warmup + wrong))[:20]
    sent = sum(statuses.values())
    if sent < total:
        problems.append(f"only {sent} of {total} requests completed")
    if set(rss_after) != set(rss_before):
        problems.append(f"workers died or were replaced: before {sorted(rss_before)}, after {sorted(rss_after)}")
    for pid, before in rss_before.items():
        after = rss_after.get(pid, before)
        # After warm-up a worker's memory must be flat: allow allocator noise, not per-request growth.
        if after - before > max(8 * 1024, before // 10):
            problems.append(f"worker {pid} RSS grew from {before} KiB to {after} KiB")
    latencies.sort()
    by_status: collections.Counter[str] = collections.Counter()
    for (_, status), n in statuses.items():
        by_status[str(status)] += n
    return {
        "requests": sent,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(sent / elapsed, 1) if elapsed else None,
        "latency_ms": {f"p{q}": round(_percentile(latencies, q) * 1000, 1) for q in (50, 90, 99)}
        | {"max": round(latencies[-1] * 1000, 1) if latencies else None},
        "status_mix": dict(sorted(by_status.items())),
        "by_request": {f"{name} {status}": n for (name, status), n in sorted(statuses.items(), key=str)},
        "expected": {name: status for name, (status, _) in expected.items()},
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=int(os.environ.get("TACRO_CDS_LOAD_REQUESTS", "10000")),
                        help="requests in the measured run (default $TACRO_CDS_LOAD_REQUESTS or 10000)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--max-seconds", type=float, default=150.0,
                        help="time bound of the measured run (default 150)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    env = {"TACRO_CDS_MAX_REQUEST_BYTES": str(MAX_BODY), "TACRO_CDS_LOG_LEVEL": "INFO"}
    with gunicorn(workers=args.workers, threads=args.threads, env=env) as server:
        workers = server.workers
        result = run(base_url=server.base_url, worker_pids=workers, total=args.requests,
                     clients=args.clients, max_seconds=args.max_seconds)
        log = server.log()
    result["workers"] = args.workers
    result["threads"] = args.threads
    result["clients"] = args.clients
    leaked = [s[:6] + "…" for s in SECRETS if s in log]
    if leaked:
        result["problems"].append(f"server log contains secrets or patient data: {leaked}")
    if "Traceback" in log or '"level": "ERROR"' in log:
        result["problems"].append("server log has errors: " + log[-1500:])

    print(f"load: {result['requests']} requests in {result['seconds']}s = {result['throughput_rps']} req/s "
          f"({args.workers} workers x {args.threads} threads, {args.clients} clients)")
    print(f"  status mix: {result['status_mix']}")
    print(f"  latency ms: {result['latency_ms']}")
    print(f"  worker RSS KiB before/after: "
          + ", ".join(f"{pid}: {b} -> {result['rss_kib_after'].get(pid)}" for pid, b in result["rss_kib_before"].items()))
    for problem in result["problems"]:
        print(f"  PROBLEM: {problem}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

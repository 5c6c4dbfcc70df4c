"""The service side by side with its floor, under the same gunicorn settings.

    python -m bench.side_by_side [--mode prefetched fallback memory profile] [--bodies NAME ...]

Modes (default: prefetched):

prefetched  The floor (bench/floor.py: a bare Flask app that parses the same body and answers a
            card-sized JSON) and the service (``tacro-cds serve``) both run under gunicorn with the
            service's settings file and asyncio worker (only the app differs) and --workers/--threads
            (default 2 x 4, the serve defaults). For each
            body, wrk (bench/wrk.py, its own process, --connections 4) warms both up, then drives
            them in turn for --seconds (longer for a body whose single call is slow: see --min-requests),
            --rounds times, alternating which goes first, each run starting once the other side's
            workers have finished the requests wrk left in flight. Printed per
            body: p50, p99 and throughput of each (median over the rounds) and the line
            ``ratio <body>: p50 <s/f>x  p99 <s/f>x  throughput <s/f>x`` (service / floor, same run).
fallback    Every prefetch key missing, fhirServer a FHIR stand-in (bench/fhir_standin.py) that
            answers each query after --fhir-delay-ms (default 50) with what the prefetched body held.
            Reports the latency of --fallback-calls calls against the slowest single query sent
            alone, whether the cards equal the prefetched body's, and the TCP connections the
            stand-in accepted during a first and a second call on one client connection (a second
            call that opens none reused the first one's connections).
memory      The service's workers' RSS (VmRSS) after a warm-up and at --memory-checkpoints points
            over at least --memory-calls prefetched calls (default 2,000; the full run is 100,000).
profile     The service in-process (Flask's test client, so no HTTP), --profile-calls calls of
            --profile-body under pyinstrument: the call tree as text and HTML under --out, and the
            project functions that take the most time (inclusive share of the profiled calls).

One gunicorn of the service serves every mode of a run (it may fetch from the fallback's stand-in,
which a prefetched call never does); the floor runs only during the prefetched mode.

Bodies (bench/bodies.py): ``order-select`` and ``patient-view`` are a year of monitoring (180
Observations, 25 MedicationRequests, ~140 KiB); ``<hook>-cards`` the same year ending with an
interacting drug and a high trough (cards issued and recorded); ``history-<N>-<hook>`` hold N Observations (50,
500, 5,000; the 5,000 ones cut to the service's 5,000 prefetch-entry limit). Figures go to
<out>/side-by-side.json as well. The ratios are the result; the absolute times depend on the
machine and what else runs on it (the load average is printed at the start and the end).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench import wrk
from bench.bodies import BODY_NAMES, Body, build_body
from bench.fallback_mode import fallback, fallback_setup
from bench.profile_mode import profile
from bench.server import ROOT, Server, gunicorn, rss_kib

FLOOR_APP = "bench.floor:app"
MODES = ("prefetched", "fallback", "memory", "profile")
# The goals the ratios are read against (printed beside them, never asserted here).
GOAL_P99 = 2.0
GOAL_THROUGHPUT = 0.5


@dataclass(frozen=True)
class Figures:
    """One side's figures for one body: medians over the rounds."""

    p50_ms: float
    p99_ms: float
    throughput: float
    requests: int
    failed: int


def _median_figures(runs: list[wrk.WrkResult]) -> Figures:
    """Medians over the runs; a run that completed no request has no latency (NaN if none did)."""
    answered = [r for r in runs if r.requests]
    nan = float("nan")
    return Figures(
        p50_ms=statistics.median(r.p50_ms for r in answered) if answered else nan,
        p99_ms=statistics.median(r.p99_ms for r in answered) if answered else nan,
        throughput=statistics.median(r.throughput for r in runs),
        requests=sum(r.requests for r in runs),
        failed=sum(r.failed for r in runs),
    )


def _ratio(service: float, floor: float) -> float:
    """service / floor; NaN (printed "nan") when the floor measured nothing."""
    return service / floor if floor else float("nan")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _body_file(body: Body, folder: Path) -> Path:
    path = folder / f"{body.name}.json"
    path.write_bytes(body.payload)
    return path


def _check_answers(body: Body, floor: Server, service: Server) -> tuple[int, float]:
    """Both answer the body with a 200 before anything is timed. Returns the service's card count
    and the longer of the two single calls, in seconds."""
    counts, seconds = {}, 0.0
    for name, server in (("floor", floor), ("service", service)):
        t0 = time.perf_counter()
        response = requests.post(
            server.base_url + body.path, data=body.payload, headers={"Content-Type": "application/json"}, timeout=120
        )
        seconds = max(seconds, time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {body.name} with {response.status_code}: {response.text[:500]}")
        counts[name] = len(response.json().get("cards") or [])
    return counts["service"], seconds


def _cpu_ticks(server: Server) -> int:
    """User + system clock ticks used so far by the server's workers (/proc/<pid>/stat)."""
    total = 0
    for pid in server.workers:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def _settle(server: Server, bound_s: float = 120.0) -> None:
    """Wait until the server's workers stop using CPU: wrk stops at its deadline with requests in
    flight, which the server still finishes; they must not run into the other side's measurement."""
    deadline = time.monotonic() + bound_s
    before = _cpu_ticks(server)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = _cpu_ticks(server)
        if now - before <= 1:
            return
        before = now


def prefetched(args: argparse.Namespace, bodies: list[Body], folder: Path, service: Server) -> dict[str, Any]:
    """The floor (started here, with the service's gunicorn settings) and ``service`` in turn under
    wrk, per body; the ratios service/floor."""
    results: dict[str, Any] = {}
    with gunicorn(app=FLOOR_APP, workers=args.workers, threads=args.threads) as floor:
        servers = {"floor": floor, "service": service}
        for body in bodies:
            print(f"\n{body.describe()}")
            cards, single = _check_answers(body, floor, service)
            path = _body_file(body, folder)
            runs: dict[str, list[wrk.WrkResult]] = {"floor": [], "service": []}
            # A body whose single call is slow gets longer runs, so each still has some requests.
            seconds = max(args.seconds, args.min_requests * single)

            def drive(side: str, seconds: float, body: Body = body, path: Path = path) -> wrk.WrkResult:
                result = wrk.run(
                    servers[side].base_url + body.path,
                    path,
                    connections=args.connections,
                    threads=args.wrk_threads,
                    seconds=seconds,
                    timeout_s=args.wrk_timeout,
                )
                _settle(servers[side])
                return result

            warm = [drive(side, max(args.warmup, 2 * single)) for side in servers]
            # Under load a call takes longer than alone: the slower side's warm-up rate counts too.
            slowest_rate = min(w.throughput for w in warm)
            if slowest_rate > 0:
                seconds = max(seconds, args.min_requests / slowest_rate)
            if seconds > args.seconds:
                print(
                    f"  runs of {seconds:.0f} s for at least {args.min_requests} requests a side "
                    f"(a single call took up to {single:.1f} s)"
                )
            for round_no in range(args.rounds):
                order = ("floor", "service") if round_no % 2 == 0 else ("service", "floor")
                for side in order:
                    result = drive(side, seconds)
                    runs[side].append(result)
                    print(
                        f"  round {round_no + 1} {side:<8} p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms"
                        f"  {result.throughput:8.1f} req/s  ({result.requests} requests"
                        + (f", {result.failed} FAILED: {result.errors}" if result.failed else "")
                        + ")"
                    )
            figures = {side: _median_figures(r) for side, r in runs.items()}
            f, s = figures["floor"], figures["service"]
            ratio = {
                "p50": _ratio(s.p50_ms, f.p50_ms),
                "p99": _ratio(s.p99_ms, f.p99_ms),
                "throughput": _ratio(s.throughput, f.throughput),
            }
            for side, fig in figures.items():
                print(
                    f"  {side:<8} p50 {fig.p50_ms:8.2f} ms  p99 {fig.p99_ms:8.2f} ms  {fig.throughput:8.1f} req/s"
                    f"  (median of {args.rounds})"
                )
            print(
                f"ratio {body.name}: p50 {ratio['p50']:.2f}x  p99 {ratio['p99']:.2f}x  "
                f"throughput {ratio['throughput']:.2f}x  (service/floor; goal p99 <= {GOAL_P99:g}x, "
                f"throughput >= {GOAL_THROUGHPUT:g}x; {cards} card(s))"
            )
            results[body.name] = {
                "body": body.describe(),
                "cards": cards,
                "ratio": ratio,
                "floor": asdict(f),
                "service": asdict(s),
                "rounds": {side: [asdict(r) for r in rs] for side, rs in runs.items()},
            }
    if results:
        print("\n| body | p50 service/floor | p99 service/floor | throughput service/floor |")
        print("|---|---|---|---|")
        for name, result in results.items():
            r = result["ratio"]
            print(f"| {name} | {r['p50']:.2f}× | {r['p99']:.2f}× | {r['throughput']:.2f}× |")
    return results


def memory(args: argparse.Namespace, folder: Path, service: Server) -> dict[str, Any]:
    """Worker RSS of ``service`` over at least --memory-calls calls of --memory-body."""
    body = build_body(args.memory_body)
    path = _body_file(body, folder)
    url = service.base_url + body.path
    workers = service.workers

    def drive(seconds: float) -> wrk.WrkResult:
        result = wrk.run(
            url,
            path,
            connections=args.connections,
            threads=args.wrk_threads,
            seconds=seconds,
            timeout_s=args.wrk_timeout,
        )
        if result.failed:
            raise RuntimeError(f"memory run: {result.failed} failed requests {result.errors}")
        _settle(service)
        return result

    warm = drive(args.warmup)
    for _ in range(5):  # a busy machine may answer nothing within a short warm-up: extend it
        if warm.requests >= 2 * args.connections:
            break
        more = drive(args.warmup)
        warm = wrk.WrkResult(
            warm.requests + more.requests,
            warm.seconds + more.seconds,
            more.p50_ms,
            more.p99_ms,
            max(warm.max_ms, more.max_ms),
            more.errors,
        )
    per_checkpoint = args.memory_calls / args.memory_checkpoints
    rate = max(warm.throughput, 1.0)
    calls = 0
    samples = [(0, {pid: rss_kib(pid) for pid in workers})]
    started = time.monotonic()
    print(f"\nmemory: RSS KiB per worker after {warm.requests} warm-up calls: {samples[0][1]}", flush=True)
    while calls < args.memory_calls:
        seconds = max(1.0, min(per_checkpoint, args.memory_calls - calls) / rate)
        result = drive(seconds)
        calls += result.requests
        rate = max(result.throughput, 1.0)
        samples.append((calls, {pid: rss_kib(pid) for pid in workers}))
        # As it goes, so a long run that is stopped early still shows its course.
        print(
            f"  {calls:>7} calls, {time.monotonic() - started:6.0f} s, {result.throughput:6.1f} calls/s: "
            f"RSS KiB {samples[-1][1]}",
            flush=True,
        )
    if sorted(service.workers) != sorted(workers):
        raise RuntimeError(f"workers were replaced during the memory run: {workers} -> {service.workers}")
    print(f"\nmemory: {body.describe()}; {calls} calls after {warm.requests} warm-up calls")
    growth = {}
    for pid in workers:
        series = [s[pid] for _, s in samples]
        growth[pid] = series[-1] - series[0]
        print(
            f"  worker {pid} RSS KiB: "
            + " -> ".join(f"{kib} ({n})" for (n, _), kib in zip(samples, series, strict=False))
            + f"; growth {growth[pid]:+d} KiB"
        )
    return {
        "body": body.describe(),
        "calls": calls,
        "warmup_calls": warm.requests,
        "samples": [{"calls": n, "rss_kib": s} for n, s in samples],
        "growth_kib": growth,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.side_by_side", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", nargs="+", choices=MODES, default=["prefetched"], help="what to run")
    parser.add_argument(
        "--bodies",
        nargs="+",
        default=list(BODY_NAMES),
        metavar="NAME",
        help=f"prefetched mode's bodies (default all: {' '.join(BODY_NAMES)})",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run per side, round and body (default 10)")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=10,
        help="a body's runs last long enough for about this many requests a side, "
        "judged from a single call and the warm-up (default 10)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up run per side and body (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations floor/service per body (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (default 4)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--wrk-timeout",
        type=float,
        default=30.0,
        help="seconds after which wrk counts a request as timed out (default 30)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of both apps (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--fhir-delay-ms", type=float, default=50.0, help="stand-in delay per query (default 50)")
    parser.add_argument("--fallback-calls", type=int, default=10, help="fallback calls per hook (default 10)")
    parser.add_argument(
        "--memory-calls",
        type=int,
        default=2000,
        help="calls of the memory run (default 2,000; the full run is 100,000)",
    )
    parser.add_argument("--memory-checkpoints", type=int, default=5, help="RSS samples after warm-up (default 5)")
    parser.add_argument("--memory-body", default="order-select", help="body of the memory run")
    parser.add_argument("--profile-calls", type=int, default=50, help="profiled calls (default 50)")
    parser.add_argument("--profile-body", default="order-select", help="body of the profile")
    parser.add_argument("--profile-top", type=int, default=20, help="functions listed (default 20)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "bench",
        help="folder of the JSON figures and the call tree (default build/bench)",
    )
    return parser


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tacro-cds-bodies-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if {"prefetched", "memory"} & set(args.mode) and not wrk.available():
        print("wrk is not installed: apt-get install wrk (Debian)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "load_before": os.getloadavg(),
        "settings": {
            k: getattr(args, k) for k in ("workers", "threads", "connections", "wrk_threads", "seconds", "rounds")
        },
    }
    print(
        f"side by side: gunicorn {args.workers} workers x {args.threads} threads for floor and service, "
        f"wrk {args.connections} connections; {_load()}"
    )
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(_workdir())
        setup = stack.enter_context(fallback_setup(args)) if "fallback" in args.mode else None
        service = None
        if {"prefetched", "fallback", "memory"} & set(args.mode):
            # One service for every mode that needs one (allowed to fetch from the stand-in, which
            # a prefetched call never does).
            service = stack.enter_context(
                gunicorn(workers=args.workers, threads=args.threads, env=setup.service_env() if setup else None)
            )
        if "prefetched" in args.mode:
            assert service is not None
            bodies = [build_body(name) for name in args.bodies]
            report["prefetched"] = prefetched(args, bodies, folder, service)
        if "fallback" in args.mode:
            assert service is not None and setup is not None
            report["fallback"] = fallback(args, service, setup)
        if "memory" in args.mode:
            assert service is not None
            report["memory"] = memory(args, folder, service)
    if "profile" in args.mode:
        report["profile"] = profile(args, args.out)
    report["load_after"] = os.getloadavg()
    print(f"\ndone; {_load()}")
    (args.out / "side-by-side.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    failed = {
        f"{name} {side}": result[side]["failed"]
        for name, result in report.get("prefetched", {}).items()
        for side in ("floor", "service")
        if result[side]["failed"]
    }
    if failed:
        print(f"PROBLEM: requests failed (timeouts, errors or non-2xx answers), figures not comparable: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

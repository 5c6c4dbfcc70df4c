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
import copy
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench import wrk
from bench.bodies import BODY_NAMES, Body, build_body, year_of_monitoring
from bench.fhir_standin import FhirStandIn, replay_answers
from bench.load import comparable
from bench.server import ROOT, Server, gunicorn, rss_kib
from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates, substitute, template_is_read

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


def _fallback_body(body: dict[str, Any], url: str, token: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out.pop("prefetch", None)
    out["fhirServer"] = url
    out["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tacro-cds",
    }
    return out


def _slowest_query(standin: FhirStandIn, token: str, body: dict[str, Any], templates: dict[str, str]) -> float:
    """Seconds of the slowest of the body's queries sent one by one on a kept-alive connection."""
    times = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        session.get(f"{standin.url}/metadata", timeout=30)  # connect once, outside the timing
        for template in templates.values():
            query = substitute(template, body["context"])
            t0 = time.perf_counter()
            response = session.get(f"{standin.url}/{query}", timeout=30)
            times.append(time.perf_counter() - t0)
            if response.status_code != 200 and not template_is_read(template):
                raise RuntimeError(f"the stand-in answered {query} with {response.status_code}")
    return max(times)


def _all_at_once(standin: FhirStandIn, token: str, body: dict[str, Any], templates: dict[str, str]) -> float:
    """Seconds until the last of the body's queries is answered when a bare client in another
    process sends them all at once: what a fallback call could take if fetching cost nothing."""
    queries = [substitute(template, body["context"]) for template in templates.values()]
    spec = {"url": standin.url, "token": token, "queries": queries, "rounds": 10}
    out = subprocess.run(
        [sys.executable, "-m", "bench.parallel_queries"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    return float(json.loads(out.stdout)["together"])


@dataclass(frozen=True)
class FallbackSetup:
    """The FHIR stand-in of the fallback mode, the token it insists on, and the prefetched bodies
    whose prefetch it replays."""

    standin: FhirStandIn
    token: str
    bodies: dict[str, dict[str, Any]]
    templates: dict[str, str]

    def service_env(self) -> dict[str, str]:
        """What the service needs to fetch from the stand-in (plain http on loopback, allowlisted)."""
        return {
            "TACRO_CDS_ALLOW_HTTP_FHIR": "loopback",
            "TACRO_CDS_FHIR_SERVER_ALLOWLIST": json.dumps([self.standin.url]),
        }


@contextlib.contextmanager
def fallback_setup(args: argparse.Namespace) -> Iterator[FallbackSetup]:
    templates = prefetch_templates(load_knowledge())
    bodies = {hook: year_of_monitoring(hook) for hook in ("order-select", "patient-view")}
    token = "bench-" + secrets.token_urlsafe(12)
    answers = replay_answers(bodies.values(), templates)
    with FhirStandIn(answers, delay=args.fhir_delay_ms / 1000, token=token) as standin:
        yield FallbackSetup(standin, token, bodies, templates)


def fallback(args: argparse.Namespace, service: Server, setup: FallbackSetup) -> dict[str, Any]:
    """Every prefetch key missing against a FHIR stand-in with a fixed delay per query."""
    standin, token, templates = setup.standin, setup.token, setup.templates
    results: dict[str, Any] = {}
    for hook, body in setup.bodies.items():
        path = f"{service.base_url}/cds-services/{Body(hook, hook, b'').service}"
        payload = json.dumps(_fallback_body(body, standin.url, token)).encode()
        slowest = _slowest_query(standin, token, body, templates)
        at_once = _all_at_once(standin, token, body, templates)
        prefetched_cards = requests.post(path, json=body, timeout=60).json()
        with requests.Session() as session:
            session.headers["Content-Type"] = "application/json"
            # The same call prefetched: what the service itself takes, beside what the fetching adds.
            prefetched_payload = json.dumps(body).encode()
            alone = []
            for _ in range(max(2, args.fallback_calls)):
                t0 = time.perf_counter()
                session.post(path, data=prefetched_payload, timeout=60).raise_for_status()
                alone.append(time.perf_counter() - t0)
            per_call = []
            latencies = []
            for _ in range(max(2, args.fallback_calls)):
                before = (standin.connections, standin.served)
                t0 = time.perf_counter()
                response = session.post(path, data=payload, timeout=60)
                latencies.append(time.perf_counter() - t0)
                per_call.append((standin.connections - before[0], standin.served - before[1]))
                if response.status_code != 200:
                    raise RuntimeError(f"fallback {hook}: {response.status_code} {response.text[:500]}")
            same_cards = comparable(response.json()) == comparable(prefetched_cards)
        median = statistics.median(latencies)
        processing = statistics.median(alone)
        reused = per_call[1][0] == 0
        print(
            f"\nfallback {hook}: every one of {len(templates)} prefetch keys missing, stand-in delay "
            f"{args.fhir_delay_ms:g} ms per query, {len(latencies)} calls on one client connection"
        )
        print(
            f"  latency p50 {median * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; slowest single "
            f"query alone {slowest * 1000:.1f} ms; p50 - slowest = {(median - slowest) * 1000:+.1f} ms "
            f"(goal about +20 ms)"
        )
        print(
            f"  the same call prefetched: p50 {processing * 1000:.1f} ms, so fetching added "
            f"{(median - processing) * 1000:+.1f} ms to the call, {(median - processing - slowest) * 1000:+.1f} ms "
            f"beyond the slowest query"
        )
        print(
            f"  all {len(templates)} queries at once from a bare client: {at_once * 1000:.1f} ms "
            f"({(at_once - slowest) * 1000:+.1f} ms: the stand-in and the client, not the service); "
            f"p50 - prefetched p50 - that = {(median - processing - at_once) * 1000:+.1f} ms"
        )
        print(f"  cards equal to the prefetched body's: {'yes' if same_cards else 'NO'}")
        print(
            f"  connections accepted by the stand-in: call 1: {per_call[0][0]} for {per_call[0][1]} "
            f"queries, call 2: {per_call[1][0]} for {per_call[1][1]} queries -> "
            f"connections reused across calls: {'yes' if reused else 'no'}"
        )
        results[hook] = {
            "latency_ms": [round(x * 1000, 2) for x in latencies],
            "p50_ms": median * 1000,
            "slowest_query_ms": slowest * 1000,
            "overhead_ms": (median - slowest) * 1000,
            "same_cards": same_cards,
            "prefetched_p50_ms": processing * 1000,
            "fetch_overhead_ms": (median - processing - slowest) * 1000,
            "all_at_once_ms": at_once * 1000,
            "fetch_overhead_beyond_all_at_once_ms": (median - processing - at_once) * 1000,
            "connections_per_call": [c for c, _ in per_call],
            "queries_per_call": [q for _, q in per_call],
            "reused": reused,
        }
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


def _project_function(frame: Any) -> str | None:
    path = Path(frame.file_path or "")
    for package in ("service", "cards"):
        with contextlib.suppress(ValueError):
            relative = path.resolve().relative_to(ROOT / package)
            return f"{package}/{relative}:{frame.function}"
    return None


def _inclusive_times(root: Any) -> dict[str, float]:
    """Inclusive seconds per project function (a recursive call counted once)."""
    totals: dict[str, float] = {}

    def walk(frame: Any, on_path: frozenset[str]) -> None:
        name = _project_function(frame)
        if name is not None and name not in on_path:
            totals[name] = totals.get(name, 0.0) + frame.time
            on_path = on_path | {name}
        for child in frame.children:
            walk(child, on_path)

    walk(root, frozenset())
    return totals


def profile(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """pyinstrument over in-process calls; the call tree under ``out``."""
    from pyinstrument import Profiler

    from service import create_app

    body = build_body(args.profile_body)
    with tempfile.TemporaryDirectory(prefix="tacro-cds-profile-") as tmp:
        app = create_app(
            {
                "AUTH_REQUIRED": False,
                "FEEDBACK_DB": f"sqlite:///{Path(tmp) / 'feedback.sqlite'}",
                "LOG_LEVEL": "WARNING",
            }
        )
        client = app.test_client()

        def call() -> None:
            response = client.post(body.path, data=body.payload, content_type="application/json")
            if response.status_code != 200:
                raise RuntimeError(f"profile: {response.status_code} {response.get_data(as_text=True)[:500]}")

        for _ in range(3):
            call()
        profiler = Profiler(interval=0.0005)
        t0 = time.perf_counter()
        profiler.start()
        for _ in range(args.profile_calls):
            call()
        profiler.stop()
        elapsed = time.perf_counter() - t0
    session = profiler.last_session
    assert session is not None
    text_path = out / f"profile-{body.name}.txt"
    html_path = out / f"profile-{body.name}.html"
    text_path.write_text(profiler.output_text(unicode=True, color=False), encoding="utf-8")
    html_path.write_text(profiler.output_html(), encoding="utf-8")
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    top = sorted(_inclusive_times(root).items(), key=lambda kv: -kv[1]) if root is not None else []
    cpu = getattr(session, "cpu_time", None)
    print(
        f"\nprofile: {body.describe()}; {args.profile_calls} calls in-process, "
        f"{elapsed / args.profile_calls * 1000:.1f} ms per call under the profiler"
        + (f" ({cpu / args.profile_calls * 1000:.1f} ms CPU; shares are of wall time)" if cpu else "")
    )
    print(
        f"  call tree: {text_path.relative_to(ROOT) if text_path.is_relative_to(ROOT) else text_path}, "
        f"{html_path.name} beside it"
    )
    print("  project functions by inclusive share of the profiled time:")
    for name, seconds in top[: args.profile_top]:
        print(f"    {100 * seconds / total:5.1f} %  {seconds / args.profile_calls * 1000:7.2f} ms/call  {name}")
    return {
        "body": body.describe(),
        "calls": args.profile_calls,
        "ms_per_call": elapsed / args.profile_calls * 1000,
        "call_tree": str(text_path),
        "html": str(html_path),
        "top": [
            {"function": n, "share": s / total, "ms_per_call": s / args.profile_calls * 1000}
            for n, s in top[: args.profile_top]
        ],
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

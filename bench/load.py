"""Load run: the service under gunicorn with several workers, driven from this (second) process.

    python -m bench.load [--requests N] [--workers W] [--clients C] [--fhir-url URL --fhir-token T]
                         [--json report.json]

Sends N requests (default TACRO_CDS_LOAD_REQUESTS or 10,000) from a thread pool, one
requests.Session per thread, of these kinds: prefetched (valid calls to the three services, every
prefetch key sent), fallback (fixture requests with all or some prefetch keys removed and
fhirServer + fhirAuthorization set, so the service fetches them from a FHIR server), invalid bodies,
unknown services, oversized bodies, discovery and health.

The FHIR server of the fallback requests is the real one when --fhir-url (default
$TACRO_CDS_TEST_FHIR_URL, token $TACRO_CDS_TEST_FHIR_TOKEN) is given, with the fixture patients
loaded; else a stand-in started here (bench/fhir_standin.py) that replays the fixtures' prefetch.
gunicorn runs with ALLOW_HTTP_FHIR=loopback and that server as its FHIR_SERVER_ALLOWLIST.

First every distinct request is sent once, alone: that is the single-request answer every loaded
answer must equal (status, and body without uuids, or a FHIR server's meta.versionId and
meta.lastUpdated in echoed resources); a fallback request must equal the single-request answer of
the same request prefetched (200, same cards). Checks: only those answers, no worker died
or was replaced, worker RSS bounded after warm-up, no secret or patient datum in the server's log,
done within the time bound. Prints the status mix, throughput and latency percentiles, per request
kind too; exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import copy
import json
import os
import random
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.fhir_standin import FhirStandIn, replay_answers
from bench.samples import SECRETS, builtin_requests, fixture_requests, fixture_resources
from bench.server import gunicorn, rss_kib
from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates

MAX_BODY = 256 * 1024  # the server runs with this MAX_REQUEST_BYTES so a 413 is cheap to provoke


PREFETCHED_SHARE = 0.44
FALLBACK_SHARE = 0.06  # each one fans out into a dozen FHIR queries: enough to load the fallback path


@dataclass(frozen=True)
class Call:
    """One distinct request of the mix."""

    name: str
    method: str
    path: str
    body: bytes | None
    weight: float
    # The call whose single-request answer this one must equal (None: its own).
    same_as: str | None = None

    @property
    def kind(self) -> str:
        """prefetched, fallback, invalid, unknown-service, too-large, discovery or healthz."""
        return self.name.split(":", 1)[0]


@dataclass(frozen=True)
class Fhir:
    """The FHIR server the fallback requests name, and the token they hand the service for it."""

    url: str
    token: str | None


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def fallback_body(body: dict[str, Any], fhir: Fhir, drop: list[str] | None = None) -> dict[str, Any]:
    """``body`` with the prefetch keys ``drop`` removed (all of them when None), pointing at ``fhir``."""
    out = copy.deepcopy(body)
    if drop is None:
        out.pop("prefetch", None)
    else:
        out["prefetch"] = {k: v for k, v in out.get("prefetch", {}).items() if k not in drop}
    out["fhirServer"] = fhir.url
    out["fhirAuthorization"] = {
        "access_token": fhir.token or "none",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tacro-cds",
    }
    return out


def build_mix(fhir: Fhir | None = None) -> list[Call]:
    """The distinct requests and their share of the load (fallback ones only when ``fhir`` is given)."""
    valid = [(n, s, b) for n, s, b in builtin_requests()]
    fixtures = []
    for name, service, body in fixture_requests():
        body = copy.deepcopy(body)
        # Prefetched means prefetched: no fhirServer to fall back to (a key missing is a 412).
        body.pop("fhirServer", None)
        body.pop("fhirAuthorization", None)
        valid.append((name, service, body))
        fixtures.append((name, service, body))
    calls = [
        Call(f"prefetched:{n}", "POST", f"/cds-services/{s}", _json(b), PREFETCHED_SHARE / len(valid))
        for n, s, b in valid
    ]
    if fhir is not None and fixtures:
        # Every fixture request once without its prefetch: alternately all keys missing, and half
        # of them (a different half every other request), as an EHR that prefetches only some.
        for i, (name, service, body) in enumerate(fixtures):
            keys = sorted(body.get("prefetch", {}))
            drop = None if i % 2 == 0 else keys[(i // 2) % 2 :: 2]
            variant = "all" if drop is None else "some"
            calls.append(
                Call(
                    f"fallback:{name}:{variant}-keys-missing",
                    "POST",
                    f"/cds-services/{service}",
                    _json(fallback_body(body, fhir, drop)),
                    FALLBACK_SHARE / len(fixtures),
                    same_as=f"prefetched:{name}",
                )
            )
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


# What a FHIR server stamps on every resource it stores. A card action that echoes a fetched resource
# (an update of an active order) carries it; the same resource prefetched from a fixture does not.
SERVER_BOOKKEEPING = {"versionId", "lastUpdated"}


def comparable(value: Any) -> Any:
    """``value`` without card uuids and without the server's bookkeeping in resources' ``meta``."""
    if isinstance(value, dict):
        out = {k: comparable(v) for k, v in value.items() if k != "uuid"}
        meta = out.get("meta")
        if isinstance(meta, dict) and "resourceType" in out:
            meta = {k: v for k, v in meta.items() if k not in SERVER_BOOKKEEPING}
            if meta:
                out["meta"] = meta
            else:
                del out["meta"]
        return out
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def _answer(response: requests.Response) -> tuple[int, Any]:
    try:
        body = comparable(response.json())
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
        response = session.request(
            call.method,
            self.base_url + call.path,
            data=call.body,
            timeout=90,  # a hang bound, above the longest FHIR budget a run sets (--fhir-timeout-s)
            headers={"Content-Type": "application/json"} if call.body is not None else {},
        )
        return response, time.perf_counter() - started


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def _latency(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {f"p{q}": round(_percentile(ordered, q) * 1000, 1) for q in (50, 90, 99)} | {
        "max": round(ordered[-1] * 1000, 1) if ordered else None
    }


def run(
    *,
    base_url: str,
    worker_pids: list[int],
    total: int,
    clients: int,
    max_seconds: float,
    fhir: Fhir | None = None,
    seed: int = 20261125,
) -> dict[str, Any]:
    """Drive the server; return the figures and the list of problems found (empty: pass)."""
    calls = build_mix(fhir)
    client = _Client(base_url)
    problems: list[str] = []

    # The single-request answers; a fallback request must answer as its prefetched twin did.
    single = {}
    for call in calls:
        response, _ = client.send(call)
        single[call.name] = _answer(response)
    expected = {call.name: single[call.same_as or call.name] for call in calls}
    for call in calls:
        if call.same_as is None:
            continue
        if expected[call.name][0] != 200:
            problems.append(f"{call.same_as}: prefetched answer is {expected[call.name][0]}, not 200")
        elif single[call.name] != expected[call.name]:
            problems.append(f"{call.name}: alone, {single[call.name][0]} and not the cards of {call.same_as}")
    # The comparison means something only where there are cards to compare.
    twins = [call for call in calls if call.same_as is not None]
    with_cards = sum(
        1 for call in twins if isinstance(expected[call.name][1], dict) and expected[call.name][1].get("cards")
    )
    rng = random.Random(seed)
    warmup = rng.choices(calls, weights=[c.weight for c in calls], k=max(200, total // 20))
    plan = rng.choices(calls, weights=[c.weight for c in calls], k=total)

    def fire(batch: list[Call]) -> tuple[collections.Counter[tuple[str, Any]], dict[str, list[float]], list[str]]:
        statuses: collections.Counter[tuple[str, Any]] = collections.Counter()
        latencies: dict[str, list[float]] = collections.defaultdict(list)
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
                    latencies[call.kind].append(seconds)
                    statuses[(call.name, response.status_code)] += 1
                    if _answer(response) != expected[call.name]:
                        wrong.append(
                            f"{call.name}: {response.status_code} differs from the single-request answer"
                            + (f" of {call.same_as}" if call.same_as else "")
                        )
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
    by_status: collections.Counter[str] = collections.Counter()
    kinds: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (name, status), n in statuses.items():
        by_status[str(status)] += n
        kinds[name.split(":", 1)[0]][str(status)] += n
    return {
        "requests": sent,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(sent / elapsed, 1) if elapsed else None,
        "latency_ms": _latency([v for values in latencies.values() for v in values]),
        "status_mix": dict(sorted(by_status.items())),
        "by_kind": {
            kind: {
                "requests": sum(mix.values()),
                "status_mix": dict(sorted(mix.items())),
                "latency_ms": _latency(latencies.get(kind, [])),
            }
            for kind, mix in sorted(kinds.items())
        },
        "fallback_requests": sum(kinds["fallback"].values()) if "fallback" in kinds else 0,
        "fallback_distinct": len(twins),
        "fallback_distinct_with_cards": with_cards,
        "by_request": {f"{name} {status}": n for (name, status), n in sorted(statuses.items(), key=str)},
        "expected": {name: status for name, (status, _) in expected.items()},
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "problems": problems,
    }


def _standin(keep_alive_s: float | None) -> FhirStandIn:
    """A FHIR stand-in replaying the fixtures' prefetch, with a fresh token it insists on, closing
    connections idle for ``keep_alive_s`` as real servers do."""
    templates = prefetch_templates(load_knowledge())
    answers = replay_answers((body for _, _, body in fixture_requests()), templates, fixture_resources())
    return FhirStandIn(answers, token="standin-" + secrets.token_urlsafe(16), keep_alive_s=keep_alive_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=int(os.environ.get("TACRO_CDS_LOAD_REQUESTS", "10000")),
        help="requests in the measured run (default $TACRO_CDS_LOAD_REQUESTS or 10000)",
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="time bound of the measured run (default 150)")
    parser.add_argument(
        "--fhir-url",
        default=os.environ.get("TACRO_CDS_TEST_FHIR_URL") or None,
        help="FHIR server (on 127.0.0.1) holding the fixture patients, for the fallback "
        "requests (default $TACRO_CDS_TEST_FHIR_URL; none: a local stand-in)",
    )
    parser.add_argument(
        "--fhir-token",
        default=os.environ.get("TACRO_CDS_TEST_FHIR_TOKEN") or None,
        help="bearer token for --fhir-url (default $TACRO_CDS_TEST_FHIR_TOKEN)",
    )
    parser.add_argument(
        "--standin-keep-alive-s",
        type=float,
        default=1.0,
        help="the stand-in closes a kept-alive connection idle this long, so the service "
        "meets connections closed by the server under load (default 1; 0: never)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--fhir-timeout-s",
        type=float,
        help="the service's FHIR_TIMEOUT_S (and twice it as FHIR_TOTAL_BUDGET_S); default: the shipped "
        "values. A loaded machine can hold a FHIR answer past 5 s, and the service then rightly answers "
        "with partial data, which is not the prefetched twin's answer this bench compares against",
    )
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.fhir_url:
            fhir, standin = Fhir(args.fhir_url.rstrip("/"), args.fhir_token), None
        else:
            standin = stack.enter_context(_standin(args.standin_keep_alive_s or None))
            fhir = Fhir(standin.url, standin.token)
        env = {
            "TACRO_CDS_MAX_REQUEST_BYTES": str(MAX_BODY),
            "TACRO_CDS_LOG_LEVEL": "INFO",
            "TACRO_CDS_ALLOW_HTTP_FHIR": "loopback",
            "TACRO_CDS_FHIR_SERVER_ALLOWLIST": json.dumps([fhir.url]),
        }
        if args.fhir_timeout_s:
            env["TACRO_CDS_FHIR_TIMEOUT_S"] = str(args.fhir_timeout_s)
            env["TACRO_CDS_FHIR_TOTAL_BUDGET_S"] = str(2 * args.fhir_timeout_s)
        server = stack.enter_context(gunicorn(workers=args.workers, threads=args.threads, env=env))
        result = run(
            base_url=server.base_url,
            worker_pids=server.workers,
            total=args.requests,
            clients=args.clients,
            max_seconds=args.max_seconds,
            fhir=fhir,
        )
        log = server.log()
        result["fhir"] = {
            "server": "stand-in (bench/fhir_standin.py)" if standin else "TACRO_CDS_TEST_FHIR_URL",
            "queries_answered": standin.served if standin else None,
            # Requests sent again because the server had closed their kept-alive connection.
            "resent_on_new_connection": log.count("sent again on a new one"),
        }
    result["workers"] = args.workers
    result["threads"] = args.threads
    result["clients"] = args.clients
    leaked = [s[:6] + "…" for s in (*SECRETS, fhir.token) if s and s in log]
    if leaked:
        result["problems"].append(f"server log contains secrets or patient data: {leaked}")
    if "Traceback" in log or '"level": "ERROR"' in log:
        result["problems"].append("server log has errors: " + log[-1500:])

    print(
        f"load: {result['requests']} requests in {result['seconds']}s = {result['throughput_rps']} req/s "
        f"({args.workers} workers x {args.threads} threads, {args.clients} clients)"
    )
    print(f"  status mix: {result['status_mix']}")
    print(f"  latency ms: {result['latency_ms']}")
    for kind, figures in result["by_kind"].items():
        print(f"    {kind:<16} {figures['requests']:>6} requests  {figures['status_mix']}  ms {figures['latency_ms']}")
    queries = result["fhir"]["queries_answered"]
    print(
        f"  fallback: {result['fallback_requests']} requests ({result['fallback_distinct']} distinct, "
        f"{result['fallback_distinct_with_cards']} of them with cards) against {result['fhir']['server']}"
        + (f", {queries} FHIR queries answered" if queries is not None else "")
        + f"; {result['fhir']['resent_on_new_connection']} sent again after the server closed a kept-alive connection"
    )
    print(
        "  worker RSS KiB before/after: "
        + ", ".join(f"{pid}: {b} -> {result['rss_kib_after'].get(pid)}" for pid, b in result["rss_kib_before"].items())
    )
    for problem in result["problems"]:
        print(f"  PROBLEM: {problem}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""The side-by-side bench's fallback mode (``python -m bench.side_by_side --mode fallback``): every
prefetch key missing, the FHIR server a stand-in that answers each query after a delay with what the
prefetched body held; the call against its slowest single query, against the same call prefetched,
and against all its queries sent at once by a bare client."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from bench.bodies import Body, year_of_monitoring
from bench.fhir_standin import FhirStandIn, replay_answers
from bench.load import Fhir, comparable, fallback_body
from bench.server import ROOT, Server
from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates, substitute, template_is_read


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
        payload = json.dumps(fallback_body(body, Fhir(standin.url, token))).encode()
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
            f"(goal at most +25 ms)"
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

"""Benchmark of the data layer: not a test, a measurement.

(a) A fully prefetched order-select with a realistic history (>= 200 Observations, 30
    MedicationRequests): time from request to facts (validate + resolve + build_facts).
(b) Every prefetch key missing: the parallel fallback against a FHIR server versus the sum of the
    same queries sent one after another.

Without ``--fhir-url`` a small stdlib HTTP server on 127.0.0.1 answers every query after
``--delay-ms`` (default 50 ms), so the difference between parallel and sequential is visible.

    python bench/bench_prefetch.py [--runs 200] [--fallback-runs 10] [--delay-ms 50]
    python bench/bench_prefetch.py --fhir-url http://127.0.0.1:8090/fhir --patient-id P1 [--token T]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fhir_standin import FhirStandIn, synthetic_answers
from cards.knowledge import load_knowledge
from service.config import Settings, load_settings
from service.fhir.client import FhirClient, FhirError
from service.hooks.extract import build_facts
from service.hooks.prefetch import PrefetchResolver
from service.hooks.templates import prefetch_templates, substitute, template_is_read
from service.hooks.validation import validate_request

LOINC = "http://loinc.org"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PATIENT = "bench-patient-1"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

# (prefetch key, system, code, unit, value, how many) -> 212 Observations in all.
HISTORY = [
    ("chemistry", LOINC, "2160-0", "mg/dL", 0.8, 40),  # creatinine
    ("chemistry", LOINC, "2345-7", "mg/dL", 92.0, 30),  # glucose
    ("chemistry", LOINC, "2823-3", "mmol/L", 4.2, 30),  # potassium
    ("chemistry", LOINC, "4548-4", "%", 5.2, 6),  # HbA1c
    ("chemistry", LOINC, "1742-6", "U/L", 22.0, 12),  # ALT
    ("chemistry", LOINC, "1920-8", "U/L", 25.0, 12),  # AST
    ("tacrolimusLevels", LOINC, "77348-1", "ng/mL", 6.5, 20),
    ("immunology", LOCAL, "th1-th2-ratio", "{ratio}", 11.9, 6),
    ("cbc", LOINC, "718-7", "g/dL", 13.1, 15),
    ("cbc", LOINC, "777-3", "10*3/uL", 250.0, 15),
    ("pregnancyTests", LOINC, "21198-7", "[IU]/L", 2.0, 6),
]
DRUGS = [
    ("198377", "tacrolimus 1 MG Oral Capsule"),
    ("4450", "fluconazole"),
    ("6135", "ketoconazole"),
    ("21212", "clarithromycin"),
    ("68149", "mycophenolate mofetil"),
    ("4603", "furosemide"),
]


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in resources],
    }


def _observation(oid: str, system: str, code: str, unit: str, value: float, when: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when.isoformat(),
        "issued": when.isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def _med_request(mid: str, rxnorm: str, name: str, status: str, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": start.date().isoformat(),
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm, "display": name}], "text": name},
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "frequency": 2,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {"start": start.date().isoformat()},
                    }
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
                ],
            }
        ],
    }


def realistic_order_select(templates: dict[str, str]) -> dict[str, Any]:
    """An order-select for a tacrolimus draft, every key prefetched, with months of history."""
    by_key: dict[str, list[dict[str, Any]]] = {key: [] for key in templates}
    n = 0
    for key, system, code, unit, value, count in HISTORY:
        for i in range(count):
            n += 1
            by_key[key].append(
                _observation(f"obs-{n}", system, code, unit, value + (i % 5) * 0.1, NOW - timedelta(days=3 * i + n % 3))
            )
    for i in range(10):  # blood pressure panels
        n += 1
        bp = _observation(f"obs-{n}", LOINC, "85354-9", "mm[Hg]", 0, NOW - timedelta(days=7 * i))
        del bp["valueQuantity"]
        bp["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 118 + i,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {
                    "value": 76,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
        ]
        by_key.setdefault("vitals", []).append(bp)
    for i in range(30):
        rxnorm, name = DRUGS[i % len(DRUGS)]
        by_key.setdefault("medicationRequests", []).append(
            _med_request(f"mr-{i}", rxnorm, name, "active" if i % 3 else "on-hold", NOW - timedelta(days=10 * i))
        )
    by_key.setdefault("conditions", []).append(
        {
            "resourceType": "Condition",
            "id": "cond-rif",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": LOCAL, "code": "recurrent-implantation-failure"}]},
        }
    )
    by_key.setdefault("transferRequests", []).append(
        {
            "resourceType": "ServiceRequest",
            "id": "sr-transfer",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "code": {"coding": [{"system": LOCAL, "code": "embryo-transfer"}]},
            "occurrenceDateTime": (NOW + timedelta(days=9)).isoformat(),
        }
    )
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        if template_is_read(template):
            prefetch[key] = {"resourceType": "Patient", "id": PATIENT, "gender": "female", "birthDate": "1990-04-02"}
        else:
            prefetch[key] = _bundle(by_key.get(key, []))
    draft = _med_request("draft-tac", "198377", "tacrolimus 1 MG Oral Capsule", "draft", NOW + timedelta(days=2))
    return {
        "hook": "order-select",
        "hookInstance": "2b4e6f8a-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
        "context": {
            "userId": "Practitioner/bench-doc",
            "patientId": PATIENT,
            "selections": ["MedicationRequest/draft-tac"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]},
        },
        "prefetch": prefetch,
    }


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def bench_prefetched(runs: int) -> list[tuple[str, float, float]]:
    knowledge = load_knowledge()
    config = load_settings(environ={})
    templates = prefetch_templates(knowledge)
    body = realistic_order_select(templates)
    observations = sum(
        len(v.get("entry", [])) for k, v in body["prefetch"].items() if templates[k].startswith("Observation")
    )
    orders = len(body["prefetch"]["medicationRequests"]["entry"])
    print(
        f"(a) fully prefetched order-select: {observations} Observations, {orders} MedicationRequests, "
        f"{len(json.dumps(body)) // 1024} KiB, {runs} runs"
    )
    resolver = PrefetchResolver(config, session_factory=_no_session)
    totals, validate_t, resolve_t, extract_t = [], [], [], []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        request = validate_request(body, hook="order-select", limits=config)
        t1 = time.perf_counter()
        data = resolver.resolve(request, templates)
        t2 = time.perf_counter()
        build_facts(request, data, knowledge)
        t3 = time.perf_counter()
        if i >= 5:  # warm-up runs are not counted
            validate_t.append(t1 - t0)
            resolve_t.append(t2 - t1)
            extract_t.append(t3 - t2)
            totals.append(t3 - t0)
    return [
        ("validate", *_stats(validate_t)),
        ("resolve (no I/O)", *_stats(resolve_t)),
        ("build_facts", *_stats(extract_t)),
        ("request -> facts", *_stats(totals)),
    ]


def _no_session() -> Any:
    raise AssertionError("the fully prefetched benchmark must not open a FHIR session")


def bench_fallback(fhir_url: str, patient_id: str, token: str | None, runs: int) -> list[tuple[str, float, float]]:
    templates = prefetch_templates(load_knowledge())
    config = load_settings({"ALLOW_HTTP_FHIR": "loopback" if _is_loopback(fhir_url) else False}, environ={})
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "3c5e7a9b-2d4f-4a6b-8c0d-1e2f3a4b5c6d",
        "context": {"userId": "Practitioner/bench-doc", "patientId": patient_id},
        "fhirServer": fhir_url,
        "prefetch": {},
    }
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
        }
    request = validate_request(body, hook="patient-view", limits=config)
    resolver = PrefetchResolver(config)
    parallel, sequential, single_max = [], [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        resolver.resolve(request, templates)
        t1 = time.perf_counter()
        singles = _sequential(fhir_url, token, templates, request.context, config)
        if i >= 1:
            parallel.append(t1 - t0)
            sequential.append(sum(singles))
            single_max.append(max(singles))
    print(f"(b) fallback, all {len(templates)} keys missing, against {fhir_url}, {runs} runs")
    return [
        ("parallel resolve", *_stats(parallel)),
        ("sum of single queries", *_stats(sequential)),
        ("slowest single query", *_stats(single_max)),
    ]


def _sequential(
    fhir_url: str, token: str | None, templates: dict[str, str], context: Any, config: Settings
) -> list[float]:
    client = FhirClient(fhir_url, token, timeout=config.fhir_timeout_s)
    times = []
    try:
        for template in templates.values():
            query = substitute(template, context)
            fetch: Callable[[str], Any] = client.read if template_is_read(template) else client.search
            t0 = time.perf_counter()
            try:
                fetch(query)
            except FhirError as exc:
                print(f"  warning: a single query failed: {exc.reason}", file=sys.stderr)
            times.append(time.perf_counter() - t0)
    finally:
        client.close()
    return times


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def _table(rows: list[tuple[str, float, float]]) -> None:
    print(f"  {'stage':<24}{'median ms':>12}{'p95 ms':>12}")
    for name, median, p95 in rows:
        print(f"  {name:<24}{median:>12.2f}{p95:>12.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="runs of the prefetched benchmark (default 200)")
    parser.add_argument("--fallback-runs", type=int, default=10, help="runs of the fallback benchmark (default 10)")
    parser.add_argument("--fhir-url", help="a FHIR server to run the fallback against (default: a local one)")
    parser.add_argument("--patient-id", default=PATIENT, help="patient id on --fhir-url")
    parser.add_argument("--token", help="bearer token for --fhir-url")
    parser.add_argument(
        "--delay-ms", type=float, default=50.0, help="added delay per query of the local server (default 50)"
    )
    args = parser.parse_args(argv)

    _table(bench_prefetched(args.runs))
    print()
    if args.fhir_url:
        _table(bench_fallback(args.fhir_url, args.patient_id, args.token, args.fallback_runs))
        return 0
    with FhirStandIn(synthetic_answers(args.patient_id), delay=args.delay_ms / 1000) as standin:
        print(f"    local stdlib FHIR stand-in, {args.delay_ms:g} ms added per query")
        _table(bench_fallback(standin.url, args.patient_id, args.token, args.fallback_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

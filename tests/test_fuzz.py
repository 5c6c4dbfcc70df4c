"""Fuzzing: schemathesis against service/openapi.json and the in-process app (WSGI), plus hypothesis
strategies for CDS Hooks bodies (tests/strategies.py).

Size: TACRO_CDS_FUZZ_EXAMPLES requests in total per run (default 2000, what CI runs; set it lower
for a quick local run). Requests actually sent are counted, asserted and written to
build/hardening/fuzz-report.json. Every answer: no 5xx, a described status, a JSON body valid against
the description (errors: an OperationOutcome), and the app answers as before afterwards.
"""

from __future__ import annotations

import collections
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from bench.samples import builtin_requests
from service import create_app
from tests.openapi_check import ERROR_MEDIA_TYPE, check_response
from tests.strategies import LOCAL_FHIR, cds_requests

pytestmark = pytest.mark.slow

FUZZ_TOTAL = int(os.environ.get("TACRO_CDS_FUZZ_EXAMPLES", "2000"))
SCHEMATHESIS_SHARE = 0.6
REPORT = Path(__file__).resolve().parent.parent / "build" / "hardening" / "fuzz-report.json"

# Small limits, so generated bodies reach them cheaply; the limits' defaults are tested in test_limits.
LIMITS = {"MAX_REQUEST_BYTES": 256 * 1024, "MAX_JSON_DEPTH": 24, "MAX_DRAFT_ORDERS": 10, "MAX_PREFETCH_ENTRIES": 50}
# The app must never reach out to an address a fuzzer invented: only a closed local port is allowed.
FHIR = {"FHIR_SERVER_ALLOWLIST": [LOCAL_FHIR], "FHIR_TIMEOUT_S": 0.5, "FHIR_TOTAL_BUDGET_S": 1.0}
KINDS = {
    "valid",
    "mutated",
    "wrong-type",
    "too-deep",
    "deep-but-allowed",
    "too-many-drafts",
    "drafts-at-limit",
    "too-many-entries",
    "entries-at-limit",
    "huge-array",
}
SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    return create_app(
        {
            "AUTH_REQUIRED": False,
            "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'feedback.sqlite'}",
            "LOG_LEVEL": "WARNING",
            **LIMITS,
            **FHIR,
        }
    )


@pytest.fixture(scope="module")
def baseline(fuzz_app):
    """Answers to the sample requests before any fuzzing (uuid-free), and the thread count."""
    return _answers(fuzz_app), _threads()


def _threads() -> int:
    """Threads alive, but for the process's one FHIR deadline clock (started by the first FHIR call)."""
    return sum(1 for t in threading.enumerate() if t.name != "fhir-deadlines")


def _strip_uuids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [_strip_uuids(v) for v in value]
    return value


def _answers(app) -> dict[str, tuple[int, Any]]:
    client = app.test_client()
    out = {}
    for name, service, body in builtin_requests():
        response = client.post(f"/cds-services/{service}", json=body)
        out[name] = (response.status_code, _strip_uuids(response.get_json()))
    out["healthz"] = (client.get("/healthz").status_code, None)
    return out


def _assert_still_healthy(app, baseline) -> None:
    answers, threads = baseline
    assert _answers(app) == answers, "the app answers differently after fuzzing"
    assert _threads() <= threads, "fuzzing left threads behind"


def _record(engine: str, sent: int, statuses: collections.Counter, seconds: float) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[engine] = {
        "requests": sent,
        "seconds": round(seconds, 1),
        "statuses": {" ".join(map(str, k)): v for k, v in sorted(statuses.items())},
    }
    report["total_requests"] = sum(v["requests"] for k, v in report.items() if isinstance(v, dict))
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"\nfuzz[{engine}]: {sent} requests in {seconds:.1f}s; {dict(statuses)}")


def _check_error_body(status: int, content_type: str | None, body: bytes) -> None:
    if status >= 400:
        assert (content_type or "").startswith(ERROR_MEDIA_TYPE), f"{status} answered as {content_type}"
        assert json.loads(body)["resourceType"] == "OperationOutcome"


# --- schemathesis ----------------------------------------------------------------------------------

# Share of the schemathesis budget per (operation, mode); operations with a finite input space
# (no parameters, or an enum only) take what they can and the rest goes to the bodies.
WEIGHTS = {
    ("POST /cds-services/{service_id}", "positive"): 0.35,
    ("POST /cds-services/{service_id}", "negative"): 0.25,
    ("POST /cds-services/{service_id}/feedback", "positive"): 0.15,
    ("POST /cds-services/{service_id}/feedback", "negative"): 0.15,
    ("GET /cds-services/{service_id}/feedback/summary", "negative"): 0.10,
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _negatable(op) -> bool:
    """Whether the operation has a body or a parameter (other than the left-out auth) to violate."""
    return bool(op.get_request_payload_content_types()) or any(
        "x-original-security-type" not in p.definition for p in op.iter_parameters()
    )


def test_schemathesis_fuzz(fuzz_app, baseline):
    target = math.ceil(FUZZ_TOTAL * SCHEMATHESIS_SHARE)
    # The security scheme is left out: with AUTH_REQUIRED off, "no Authorization header" is not invalid.
    config = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app, config=config)
    statuses: collections.Counter = collections.Counter()
    started = time.perf_counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {label for label, _ in WEIGHTS}

    def run(op, mode: GenerationMode, examples: int) -> int:
        sent = 0

        @settings(max_examples=examples, **SETTINGS)
        @given(case=op.as_strategy(generation_mode=mode))
        def one(case):
            nonlocal sent
            response = case.call()
            sent += 1
            statuses[(op.label, mode.value, response.status_code)] += 1
            content_type = (response.headers.get("content-type") or [None])[0]
            _check_error_body(response.status_code, content_type, response.content)
            case.validate_response(response, checks=CHECKS)
            # And our own reading of the description, with jsonschema.
            check_response(op.method.upper(), op.path, response.status_code, content_type, response.content)

        if mode is GenerationMode.NEGATIVE and not _negatable(op):
            return 0
        try:
            one()
        except Unsatisfiable:  # a tiny input space already exhausted
            pass
        return sent

    total = 0
    for op in operations:  # each operation at least once, both modes
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if (op.label, mode.value) not in WEIGHTS:
                total += run(op, mode, 5)
    budget = target - total
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            weight = WEIGHTS.get((op.label, mode.value))
            if weight:
                want, sent = math.ceil(budget * weight), 0
                for _ in range(10):  # hypothesis may stop early on a small input space: go again
                    if sent >= want:
                        break
                    sent += run(op, mode, want - sent)
                total += sent
    _record("schemathesis", total, statuses, time.perf_counter() - started)
    assert total >= target, f"only {total} of {target} schemathesis requests were sent"
    assert not any(status >= 500 for _, _, status in statuses)
    _assert_still_healthy(fuzz_app, baseline)


# --- hypothesis: CDS Hooks bodies ------------------------------------------------------------------


def test_hypothesis_fuzz(fuzz_app, baseline):
    target = FUZZ_TOTAL - math.ceil(FUZZ_TOTAL * SCHEMATHESIS_SHARE)
    client = fuzz_app.test_client()
    statuses: collections.Counter = collections.Counter()
    started = time.perf_counter()
    sent = 0
    strategy = cds_requests(
        max_depth=LIMITS["MAX_JSON_DEPTH"],
        max_drafts=LIMITS["MAX_DRAFT_ORDERS"],
        max_entries=LIMITS["MAX_PREFETCH_ENTRIES"],
    )

    @settings(max_examples=max(target, 1), **SETTINGS)
    @given(generated=strategy)
    def one(generated):
        nonlocal sent
        response = client.post(
            f"/cds-services/{generated.service}", data=json.dumps(generated.body), content_type="application/json"
        )
        sent += 1
        status = response.status_code
        statuses[(generated.kind, status)] += 1
        assert status in generated.expected, (generated.kind, status, response.data[:300])
        _check_error_body(status, response.content_type, response.data)
        outcome = check_response("POST", "/cds-services/{service_id}", status, response.content_type, response.data)
        if generated.diagnostics:
            assert outcome["issue"][0]["diagnostics"] == generated.diagnostics

    for _ in range(10):
        if sent >= target:
            break
        one()
    _record("hypothesis", sent, statuses, time.perf_counter() - started)
    assert sent >= target, f"only {sent} of {target} hypothesis requests were sent"
    if target >= 500:  # a full-size run must have tried every kind of body
        assert {kind for kind, _ in statuses} == KINDS
    _assert_still_healthy(fuzz_app, baseline)

"""Prometheus metrics: what the service counts, and the ``/metrics`` exposition.

Every label value comes from a closed vocabulary (service ids, hook names and card families from
``cards.vocab``; HTTP status codes, reason codes, indicators, feedback outcomes): a value outside it is
counted as ``other``. Nothing a caller sends reaches a label as it was sent — no patient or order id,
no issuer URL, no token, no path beyond the route pattern.

Under gunicorn the workers are separate processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the
service's gunicorn.conf.py sets it and empties the folder at each start), each worker writes its
values to files there and a scrape, whichever worker answers it, sums them
(prometheus-client's multiprocess mode). Without it (tests, a single process), the values live in the
process's default registry.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from cards import vocab
from service.errors import CallerRejection
from service.fhir.errors import FhirError
from service.storage import feedback as feedback_log

if TYPE_CHECKING:
    from service.config import Settings

OTHER = "other"

# -- vocabularies -------------------------------------------------------------------------------------

SERVICES = frozenset(vocab.SERVICE_IDS.values())
HOOKS = frozenset(vocab.HOOKS)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Card families: the part of a card's kind before ":" ("interaction:fluconazole" -> "interaction").
CARD_FAMILIES = frozenset(vocab.CARD_FAMILIES)
INDICATORS = frozenset({"info", "warning", "critical"})
FEEDBACK_OUTCOMES = frozenset({"accepted", "overridden"})
# Why a feedback entry was not stored (service.storage.feedback).
FEEDBACK_REFUSALS = feedback_log.REFUSALS


# FhirError codes: every class of the FHIR error tree (service.fhir.errors) brings its own.
def _codes(error: type[FhirError]) -> frozenset[str]:
    return frozenset({error.code}).union(*(_codes(sub) for sub in error.__subclasses__()))


FHIR_FAILURES = _codes(FhirError)
# Why a prefetch key could not be had (service.hooks.prefetch.MissingData codes): the FHIR failures and these.
PREFETCH_REASONS = FHIR_FAILURES | {"prefetch-unavailable", "prefetch-incomplete", "prefetch-token-unresolvable"}
_ROUTE = re.compile(r"^[A-Za-z0-9_./<>:-]{1,100}$")


def closed(value: Any, vocabulary: Iterable[str]) -> str:
    """``value`` when it is a word of ``vocabulary``, else ``other``."""
    return value if isinstance(value, str) and value in vocabulary else OTHER


def reason_code(reason: str) -> str:
    """A refusal reason as a label word: the text before any parenthesis, lower case, runs of other
    characters as one "-" ("signature or claims invalid (InvalidSignatureError)" ->
    "signature-or-claims-invalid")."""
    return re.sub(r"[^a-z0-9]+", "-", reason.split("(", 1)[0].lower()).strip("-")


# Why a caller's JWT was refused: the label word of each reason service.api.auth refuses with.
JWT_REJECTIONS = frozenset(reason_code(rejection) for rejection in CallerRejection)


# -- metrics ------------------------------------------------------------------------------------------

# Seconds; CDS clients wait for a hook call about a second or two, FHIR fallback up to its budget.
_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FHIR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "tacro_cds_http_requests",
    "HTTP requests answered, by route pattern, method and status",
    ["route", "method", "status"],
)
HOOK_CALLS = Counter(
    "tacro_cds_hook_calls",
    "CDS Hooks service calls answered, by service, hook and status",
    ["service", "hook", "status"],
)
HOOK_CALL_SECONDS = Histogram(
    "tacro_cds_hook_call_duration_seconds",
    "Time to answer a CDS Hooks service call, by service and hook",
    ["service", "hook"],
    buckets=_CALL_BUCKETS,
)
FHIR_REQUEST_SECONDS = Histogram(
    "tacro_cds_fhir_request_duration_seconds",
    "Time of one GET to a FHIR server (read, search page), by result",
    ["result"],
    buckets=_FHIR_BUCKETS,
)
FHIR_REQUEST_FAILURES = Counter(
    "tacro_cds_fhir_request_failures", "GETs to a FHIR server that gave no usable data, by reason", ["reason"]
)
PREFETCH_UNAVAILABLE = Counter(
    "tacro_cds_prefetch_unavailable", "Prefetch keys neither prefetched nor fetched, by reason", ["reason"]
)
CARDS_ISSUED = Counter(
    "tacro_cds_cards_issued", "Cards answered, by service, card family and indicator", ["service", "kind", "indicator"]
)
FEEDBACK_STORED = Counter(
    "tacro_cds_feedback_stored", "Feedback entries stored, by service and outcome", ["service", "outcome"]
)
FEEDBACK_REFUSED = Counter(
    "tacro_cds_feedback_refused", "Feedback entries not stored, by service and reason", ["service", "reason"]
)
PILOT_MODE = Gauge(
    "tacro_cds_pilot_mode",
    "1 for each service's pilot mode (live, silent, shadow) for callers without an issuer entry",
    ["service", "mode"],
    multiprocess_mode="max",
)
PILOT_MODES = ("live", "silent", "shadow")
RULEBOOK_SIGNED = Gauge(
    "tacro_cds_rulebook_signed",
    "The knowledge hash in use (first 12 hex digits): 1 on its signed=yes series when it is signed off, else on signed=no",
    ["hash", "signed"],
    multiprocess_mode="max",
)
JWT_REJECTED = Counter("tacro_cds_jwt_rejections", "Callers refused with 401, by reason", ["reason"])


# The labelled series the per-request counts go to, by metric and label values: ``labels`` takes
# a lock and checks its values on every call; the label values are closed vocabularies (and route
# patterns of the app), so this holds a few hundred at most. The series are the metric's own.
_SERIES: dict[tuple[object, tuple[str, ...]], Any] = {}


def _series(metric: Counter | Histogram, *labels: str) -> Any:
    key = (metric, labels)
    series = _SERIES.get(key)
    if series is None:
        series = _SERIES[key] = metric.labels(*labels)
    return series


def http_request(
    route: str | None, method: str, status: int, seconds: float, service_id: str | None = None, hook: str | None = None
) -> None:
    """One answered HTTP request; a CDS Hooks service call (``service_id`` given) also by service and
    hook (``hook`` is the service's own, known only once the service was found)."""
    route_label = route if route is not None and _ROUTE.match(route) else "(unmatched)"
    status_label = str(status) if 100 <= status <= 599 else OTHER
    _series(HTTP_REQUESTS, route_label, closed(method, METHODS), status_label).inc()
    if service_id is not None:
        service_label, hook_label = closed(service_id, SERVICES), closed(hook, HOOKS)
        _series(HOOK_CALLS, service_label, hook_label, status_label).inc()
        _series(HOOK_CALL_SECONDS, service_label, hook_label).observe(seconds)


def fhir_request(seconds: float, failure: str | None = None) -> None:
    """One GET to a FHIR server: its time, and the FhirError code when it failed."""
    FHIR_REQUEST_SECONDS.labels("ok" if failure is None else "failed").observe(seconds)
    if failure is not None:
        FHIR_REQUEST_FAILURES.labels(closed(failure, FHIR_FAILURES)).inc()


def prefetch_unavailable(reason: str) -> None:
    PREFETCH_UNAVAILABLE.labels(closed(reason, PREFETCH_REASONS)).inc()


def cards_issued(service_id: str, kinds: Iterable[str], indicators: Iterable[str]) -> None:
    """The cards of one answer: each card's kind (``cards.model.Card.kind``) and indicator."""
    service_label = closed(service_id, SERVICES)
    for kind, indicator in zip(kinds, indicators, strict=False):
        _series(
            CARDS_ISSUED, service_label, closed(vocab.card_family(kind), CARD_FAMILIES), closed(indicator, INDICATORS)
        ).inc()


def feedback(service_id: str, stored: Mapping[str, int], refused: Mapping[str, int]) -> None:
    """One feedback request: entries stored by outcome, and refused by reason."""
    service_label = closed(service_id, SERVICES)
    for outcome, count in stored.items():
        FEEDBACK_STORED.labels(service_label, closed(outcome, FEEDBACK_OUTCOMES)).inc(count)
    for reason, count in refused.items():
        FEEDBACK_REFUSED.labels(service_label, closed(reason, FEEDBACK_REFUSALS)).inc(count)


def pilot_modes(modes: Mapping[str, str]) -> None:
    """Each service's pilot mode: its mode's series 1, the others 0."""
    for service_id, mode in modes.items():
        for each in PILOT_MODES:
            PILOT_MODE.labels(closed(service_id, SERVICES), each).set(1 if mode == each else 0)


def rulebook(knowledge_hash: str, signed: bool) -> None:
    """The knowledge hash in use and whether it is signed (the hash label is 12 hex digits)."""
    short = knowledge_hash[:12] if re.fullmatch(r"[0-9a-f]{12,64}", knowledge_hash) else OTHER
    RULEBOOK_SIGNED.labels(short, "yes").set(1 if signed else 0)
    RULEBOOK_SIGNED.labels(short, "no").set(0 if signed else 1)


def jwt_rejected(reason: str) -> None:
    JWT_REJECTED.labels(closed(reason_code(reason), JWT_REJECTIONS)).inc()


# -- exposition ---------------------------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The scrape body and its content type: every worker's values summed under gunicorn
    (PROMETHEUS_MULTIPROC_DIR set), else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def scrape_allowed(settings: Settings, authorization: str | None) -> bool | None:
    """Whether this scrape may be answered: None when /metrics is off (neither METRICS_TOKEN nor
    METRICS_OPEN set), True with METRICS_OPEN or for ``Bearer <METRICS_TOKEN>`` (compared in constant
    time), else False. The peer's address is not trusted: behind a proxy on the same host every
    client looks like loopback."""
    token = settings.metrics_token_value
    if settings.metrics_open:
        return True
    if not token:
        return None
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())

"""Prefetch resolution: use what the client sent, fetch what is missing from ``fhirServer``.

Per key, as CDS Hooks 2.0 says (https://cds-hooks.hl7.org/2.0/#prefetch-template):

- present: a Bundle gives its entries of the template's resource type (OperationOutcome entries and
  other types dropped; Medication entries kept aside to resolve ``medicationReference``); a single
  resource of that type gives itself;
- a searchset with a ``next`` link (a client may page prefetch results, CDS Hooks 2.0.1
  "Prefetch Template"): its next pages are fetched from ``fhirServer`` exactly as a fetched
  search's are (same origin only, the bearer token, ``FHIR_MAX_PAGES`` with the page in hand
  counted as the first, ``FHIR_MAX_ENTRIES``, the byte cap and the call's budget), so a key
  reads the same depth of history whether it was prefetched or fetched. Without ``fhirServer``
  the key is incomplete and handled like an absent one;
- ``null`` or an empty searchset: "no such data", an answer; never queried again;
- an OperationOutcome (the client's query failed), a value of the wrong type, or an absent key: the
  template is substituted and ``GET {fhirServer}/{query}`` is sent, with the bearer token when the
  client gave one. All such keys are fetched in parallel, each call within ``FHIR_TIMEOUT_S`` and
  the whole resolution within ``FHIR_TOTAL_BUDGET_S``.

Then every ``medicationReference`` of a MedicationRequest/MedicationStatement (fetched, prefetched or
in ``draftOrders``) that is neither ``contained`` nor a Medication already in hand is read, in
parallel; every Medication in hand is returned under the extra key ``medications``. A read answered
404 leaves the reference unresolved (the Medication does not exist, an answer like ``null``; the
facts stage reports the order as unidentified).

Failure policy: data that cannot be had (no ``fhirServer``, timeout, connection failure,
401/403/429/5xx, a body that is not FHIR, an unfillable template token) is never passed on as if
complete. ``resolve_partial`` returns it as ``MissingData`` beside the data that could be had (the
pipeline records it in the facts: the rules needing it are skipped and a card says so; the call is
412 only when no rule can run). ``resolve`` raises PrefetchUnavailableError (412) for it, one
OperationOutcome issue per key. Keys in ``PREFETCH_OPTIONAL_KEYS`` (default ``patient``: without it
sex and age are unknown, which the rules handle) never make ``resolve`` fail. ``fhirServer`` is checked against the deployment's policy (``service.fhir.policy``) before
the first call, only when a call is needed.

This module decides what to fetch and what the answers mean; ``prefetch_calls`` makes the calls
(the client, the tasks, the parallel run), ``prefetch_values`` reads what a value says and
``fallback_gate`` bounds the fallback calls running at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from cards.vocab import MEDICATIONS
from service.config import Settings
from service.fhir.client import (
    FhirError,
    FhirNotFoundError,
    SessionPool,
)
from service.fhir.policy import BaseUrl
from service.hooks.base import HookRequest
from service.hooks.fallback_gate import FallbackGate
from service.hooks.prefetch_calls import (
    LazyClient,
    Searchset,
    completer,
    encoded,
    reader,
    release_memory,
    run_parallel,
    searcher,
)
from service.hooks.prefetch_values import (
    MissingData,
    needs_fetch,
    resources_of,
    searchset_incomplete,
    unavailable_error,
)
from service.hooks.templates import UnresolvableTokenError, substitute, template_is_read, template_resource_type
from service.ops import metrics

log = logging.getLogger("tacro_cds.prefetch")

# Re-exported: callers import the prefetch stage's names from here.
__all__ = [
    "FallbackGate",
    "MissingData",
    "PrefetchResolver",
    "resources_of",
    "searchset_incomplete",
    "unavailable_error",
]

# Real EHR ids run past FHIR's 64 characters; any id without "/" or whitespace, within a bound.
_MEDICATION_REF = re.compile(r"(?:^|/)Medication/([^/\s]{1,1024})(?:/_history/[^/]+)?$")
_ABSENT = object()

SessionFactory = Callable[[], requests.Session]


def _resource_type(template: str, context: Mapping[str, Any]) -> str | None:
    """The resource type a key holds. A template whose whole path is a token
    (``{{context.userId}}``) holds the type its value names; None when it cannot be filled."""
    kind = template_resource_type(template)
    if not kind.startswith("{{"):
        return kind
    try:
        return template_resource_type(substitute(template, context))
    except UnresolvableTokenError:
        return None


class PrefetchResolver:
    """Turns a request's prefetch plus ``fhirServer`` into every template key's resources."""

    def __init__(self, settings: Settings, session_factory: SessionFactory | None = None) -> None:
        self.timeout = settings.fhir_timeout_s
        self.budget = settings.fhir_total_budget_s
        self.max_pages = settings.fhir_max_pages
        self.max_entries = settings.fhir_max_entries
        self.max_bytes = settings.fhir_max_response_bytes
        self.max_parallel = settings.fhir_max_parallel
        self.optional = frozenset(settings.prefetch_optional_keys)
        self.allow_http = settings.allow_http_fhir
        self.allowlist = settings.fhir_server_allowlist
        self.session_factory = session_factory
        # Kept-alive connections to the FHIR servers of fallback calls, shared by this worker's calls.
        self.sessions = SessionPool(self.max_parallel, settings.fhir_pooled_servers)
        self.max_call_bytes = settings.fhir_max_call_bytes
        self.trim_due = threading.local()
        self.gate = FallbackGate(settings.fhir_fallback_max_concurrent, settings.fhir_fallback_max_per_issuer)

    def resolve(
        self,
        request: HookRequest,
        templates: Mapping[str, str],
        *,
        issuer: str | None = None,
        gate_key: str | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Every template key mapped to its resources, plus ``medications``; or
        PrefetchUnavailableError naming what could not be had. ``issuer`` (the verified JWT's
        ``iss``) selects the per-issuer FHIR server allowlist; ``gate_key`` (default: the issuer)
        is whose share of the fallback gate the fetch takes (the SMART app: one per launch)."""
        data, missing = self.resolve_partial(request, templates, issuer=issuer, gate_key=gate_key)
        required = [m for m in missing if m.key not in self.optional and not m.partial]
        if required:
            raise unavailable_error(required)
        return data

    def resolve_partial(
        self,
        request: HookRequest,
        templates: Mapping[str, str],
        *,
        issuer: str | None = None,
        gate_key: str | None = None,
    ) -> tuple[dict[str, list[dict[str, Any]]], list[MissingData]]:
        """What could be had (every key present, empty when it could not be had) and what could not."""
        deadline = time.monotonic() + self.budget
        data: dict[str, list[dict[str, Any]]] = {}
        medications: dict[str, dict[str, Any]] = {}
        incomplete: list[MissingData] = []
        to_fetch: dict[str, str] = {}
        to_complete: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, template in templates.items():
            kind = _resource_type(template, request.context)
            value = request.prefetch.get(key, _ABSENT)
            if value is _ABSENT or needs_fetch(value, kind):
                to_fetch[key] = template
                continue
            if _has_next_page(value):
                to_complete[key] = (template, value)
                continue
            resources = resources_of(value)
            _collect_medications(resources, medications)
            # resources_of(value, kind), without walking the Bundle twice
            data[key] = resources if kind is None else [r for r in resources if r.get("resourceType") == kind]
            # Only an OperationOutcome entry can mark a searchset incomplete, and resources_of drops it:
            # when every entry was kept there is none, and the Bundle is not walked again.
            entries = value.get("entry") if isinstance(value, dict) else None
            kept_all = isinstance(entries, list) and len(entries) == len(resources)
            warning = None if kept_all else searchset_incomplete(value)
            if warning is not None:
                incomplete.append(MissingData(key, warning, code="prefetch-incomplete", partial=True))
        _collect_medications(request.draft_orders, medications)

        session = LazyClient(self, request, issuer, gate_key)
        missing: list[MissingData] = list(incomplete)
        try:
            if to_fetch or to_complete:
                missing += self._fetch_keys(session, request, to_fetch, to_complete, data, medications, deadline)
            missing += self._resolve_medications(session, request, data, medications, deadline)
        finally:
            session.close()

        data[MEDICATIONS] = list(medications.values())
        for item in missing:
            metrics.prefetch_unavailable(item.code)
            log.warning(
                "prefetch data unavailable",
                extra={"key": item.key, "reason_code": item.code, "optional": item.key in self.optional},
            )
        return data, missing

    def release_memory(self) -> None:
        """At the end of a hook call that read much from FHIR (its data no longer referenced): give
        the freed memory back to the system."""
        if getattr(self.trim_due, "value", False):
            self.trim_due.value = False
            release_memory()

    # -- stages ---------------------------------------------------------------------------------

    def _fetch_keys(
        self,
        session: LazyClient,
        request: HookRequest,
        to_fetch: Mapping[str, str],
        to_complete: Mapping[str, tuple[str, dict[str, Any]]],
        data: dict[str, list[dict[str, Any]]],
        medications: dict[str, dict[str, Any]],
        deadline: float,
    ) -> list[MissingData]:
        """Fetch the keys not answered, and the next pages of the prefetched searchsets that
        have some, in parallel."""
        if request.fhir_server is None:
            for key in [*to_fetch, *to_complete]:
                data[key] = []
            return [
                *(MissingData(key, "not prefetched, and no fhirServer was given to fetch it from") for key in to_fetch),
                *(
                    MissingData(
                        key,
                        "the prefetched searchset has further pages (a next link), and no "
                        "fhirServer was given to fetch them from",
                        code="prefetch-incomplete",
                    )
                    for key in to_complete
                ),
            ]
        client = session.get()
        missing: list[MissingData] = []
        tasks: dict[str, Callable[[], Any]] = {}
        templates = {**to_fetch, **{key: template for key, (template, _) in to_complete.items()}}
        for key, (_, first_page) in to_complete.items():
            data[key] = []
            tasks[key] = completer(client, first_page, deadline)
        for key, template in to_fetch.items():
            data[key] = []
            try:
                query = substitute(template, request.context)
            except UnresolvableTokenError as exc:
                missing.append(
                    MissingData(
                        key,
                        f"its prefetch template cannot be filled ({exc})",
                        "processing",
                        "prefetch-token-unresolvable",
                    )
                )
                continue
            if template_is_read(template):
                tasks[key] = reader(client, query, deadline)
            else:
                tasks[key] = searcher(client, query, deadline)
        for key, outcome in run_parallel(tasks, deadline, max_parallel=self.max_parallel, budget_s=self.budget).items():
            kind = _resource_type(templates[key], request.context)
            if isinstance(outcome, FhirNotFoundError) and key in to_fetch and template_is_read(to_fetch[key]):
                continue  # a read of a resource that does not exist: no such data
            if isinstance(outcome, FhirError):
                first = resources_of(to_complete[key][1]) if key in to_complete else []
                read = outcome.partial or first  # the pages read include the one in hand
                if read:
                    # The pages read are used (a critical first-page result stays critical); the rest is
                    # named as missing.
                    _collect_medications(read, medications)
                    data[key] = [r for r in read if r.get("resourceType") == kind]
                    missing.append(
                        MissingData(
                            key,
                            f"only the first page(s) could be read ({outcome.reason})",
                            outcome.issue_type,
                            "prefetch-incomplete",
                            partial=True,
                        )
                    )
                else:
                    missing.append(MissingData(key, outcome.reason, outcome.issue_type, outcome.code))
                continue
            found = [outcome] if isinstance(outcome, dict) else outcome
            _collect_medications(found, medications)
            data[key] = [r for r in found if r.get("resourceType") == kind]
            if isinstance(outcome, Searchset) and outcome.incomplete is not None:
                missing.append(MissingData(key, outcome.incomplete, code="prefetch-incomplete", partial=True))
        return missing

    def _resolve_medications(
        self,
        session: LazyClient,
        request: HookRequest,
        data: Mapping[str, list[dict[str, Any]]],
        medications: dict[str, dict[str, Any]],
        deadline: float,
    ) -> list[MissingData]:
        to_read: set[str] = set()
        off_server = 0
        base = _base_or_none(request.fhir_server)
        for resource in [*request.draft_orders, *(r for rs in data.values() for r in rs)]:
            if resource.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
                continue
            reference = resource.get("medicationReference")
            ref = reference.get("reference") if isinstance(reference, dict) else None
            if not isinstance(ref, str) or ref.startswith("#"):
                continue  # contained (the facts stage reads it) or no literal reference
            match = _MEDICATION_REF.search(ref)
            if not match or set(match.group(1)) <= {"."}:
                continue  # not a Medication reference we can read; the facts stage reports it
            local = f"Medication/{match.group(1)}"
            if local in medications:
                continue
            if "://" in ref and (base is None or not base.contains(ref)):
                off_server += 1
                continue
            to_read.add(local)
        missing: list[MissingData] = []
        if off_server:
            missing.append(
                MissingData(
                    MEDICATIONS,
                    f"{off_server} medicationReference(s) point to another "
                    "server; send the Medication contained or in the prefetch",
                )
            )
        if not to_read:
            return missing
        if request.fhir_server is None:
            return [
                *missing,
                MissingData(
                    MEDICATIONS,
                    f"{len(to_read)} medicationReference(s) are neither contained nor prefetched, "
                    "and no fhirServer was given to read them from",
                ),
            ]
        client = session.get()
        outcomes = run_parallel(
            {ref: reader(client, encoded(ref), deadline) for ref in sorted(to_read)},
            deadline,
            max_parallel=self.max_parallel,
            budget_s=self.budget,
        )
        failed: list[FhirError] = []
        for ref, outcome in outcomes.items():
            if isinstance(outcome, FhirNotFoundError):
                continue  # the Medication does not exist: left unresolved, reported by the facts stage
            if isinstance(outcome, FhirError):
                failed.append(outcome)
            else:
                medications[ref] = outcome
        if failed:
            first = failed[0]
            missing.append(
                MissingData(
                    MEDICATIONS,
                    f"{len(failed)} referenced Medication(s) could not be read: {first.reason}",
                    first.issue_type,
                    first.code,
                )
            )
        return missing


def _has_next_page(value: Any) -> bool:
    """True for a Bundle with a ``next`` link: the client sent only its first page(s)."""
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return False
    links = value.get("link")
    return isinstance(links, list) and any(
        isinstance(link, dict)
        and link.get("relation") == "next"
        and isinstance(link.get("url"), str)
        and link["url"].strip()
        for link in links
    )


def _collect_medications(resources: list[dict[str, Any]], medications: dict[str, dict[str, Any]]) -> None:
    for resource in resources:
        if resource.get("resourceType") == "Medication" and isinstance(resource.get("id"), str):
            medications.setdefault(f"Medication/{resource['id']}", resource)


def _base_or_none(url: str | None) -> BaseUrl | None:
    if not url:
        return None
    try:
        return BaseUrl.parse(url)
    except ValueError:
        return None

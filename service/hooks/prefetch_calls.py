"""The FHIR calls of one prefetch resolution: the client built on first need (after the fhirServer
policy check and the fallback gate), each call as a task, the tasks run in parallel within the call's
deadline, and freed memory handed back after a call that read much."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from service.fhir.client import ByteBudget, FhirClient, FhirError, FhirTimeoutError
from service.fhir.policy import address_checker, check_fhir_server
from service.hooks.base import HookRequest
from service.hooks.prefetch_values import searchset_incomplete

if TYPE_CHECKING:
    from service.hooks.prefetch import PrefetchResolver


def run_parallel(
    tasks: Mapping[str, Callable[[], Any]], deadline: float, *, max_parallel: int, budget_s: float
) -> dict[str, Any]:
    """Run the calls in a thread pool; each result, or the FhirError it raised. Calls still
    running at the deadline count as timed out (they end by themselves: every request they
    make is bounded by the same deadline)."""
    if not tasks:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(len(tasks), max_parallel), thread_name_prefix="fhir-fetch")
    try:
        futures: dict[str, Future[Any]] = {name: pool.submit(task) for name, task in tasks.items()}
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results: dict[str, Any] = {}
    for name, future in futures.items():
        # A call still running at the deadline, or one still queued then (the shutdown above cancelled
        # it: with more calls than threads, or threads not yet started on a busy machine), timed out.
        if not future.done() or future.cancelled():
            future.cancel()
            results[name] = FhirTimeoutError(f"the overall FHIR budget of {budget_s:g} s ran out")
            continue
        error = future.exception()
        if error is None:
            results[name] = future.result()
        elif isinstance(error, FhirError):
            results[name] = error
        else:
            raise error  # a bug, not a FHIR failure: let the error handler answer 500
    return results


class LazyClient:
    """Builds the FhirClient on first need, after the fhirServer policy check, so a request that
    needs no fetch is neither refused nor given a session."""

    def __init__(
        self, resolver: PrefetchResolver, request: HookRequest, issuer: str | None, gate_key: str | None = None
    ) -> None:
        self._resolver = resolver
        self._request = request
        self._issuer = issuer
        self._gate_key = gate_key if gate_key is not None else issuer
        self._client: FhirClient | None = None
        self._entered = False
        self._pooled = False  # the session is the resolver's, kept for the next call

    def get(self) -> FhirClient:
        """The call's client, built (policy check, gate, session) on the first call."""
        if self._client is None:
            r = self._resolver
            assert self._request.fhir_server is not None
            base = check_fhir_server(
                self._request.fhir_server, allow_http=r.allow_http, allowlist=r.allowlist, issuer=self._issuer
            )
            r.gate.enter(self._gate_key)
            self._entered = True
            if r.session_factory is not None:
                session = r.session_factory()
            else:  # connect only to addresses the policy allows, resolved once per connection
                check = address_checker(allow_http=r.allow_http, allowlist=r.allowlist, issuer=self._issuer)
                # Connections kept alive across calls: per server and per address policy (a server
                # the allowlist names is reached without the check, any other only with it).
                policy = "listed" if check is None else f"checked:{r.allow_http}"
                session = r.sessions.session(base, policy, check)
                self._pooled = True
            self._client = FhirClient(
                self._request.fhir_server,
                self._request.access_token,
                timeout=r.timeout,
                session=session,
                max_pages=r.max_pages,
                max_entries=r.max_entries,
                max_bytes=r.max_bytes,
                budget=ByteBudget(r.max_call_bytes),
            )
        return self._client

    def close(self) -> None:
        """Close an unpooled session and leave the gate; mark the worker's heap for a trim after a large call."""
        if self._client is not None:
            if not self._pooled:
                self._client.close()
            if self._client.budget is not None and self._client.budget.used > TRIM_AFTER_BYTES:
                self._resolver.trim_due.value = True
        if self._entered:
            self._entered = False
            self._resolver.gate.leave(self._gate_key)


# After a call that read this much from FHIR, hand freed memory back to the system: the fetch
# threads' malloc arenas otherwise keep the peak for the life of the worker.
TRIM_AFTER_BYTES = 4 * 1024 * 1024


def release_memory() -> None:
    """Collect garbage and give the freed heap back to the system (glibc only)."""
    gc.collect()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def reader(client: FhirClient, relative: str, deadline: float) -> Callable[[], Any]:
    """A task reading one resource."""
    return lambda: client.read(relative, deadline=deadline)


class Searchset(list[dict[str, Any]]):
    """A fetched search's resources, and why the server said they are not all (or None)."""

    incomplete: str | None = None


def searcher(client: FhirClient, query: str, deadline: float) -> Callable[[], Any]:
    """A task running one search, its resources and why they are not all."""

    def run() -> Searchset:
        outcomes: list[dict[str, Any]] = []
        found = Searchset(client.search(query, deadline=deadline, outcomes=outcomes))
        found.incomplete = searchset_incomplete(
            {"resourceType": "Bundle", "entry": [{"resource": o} for o in outcomes]}
        )
        return found

    return run


def encoded(reference: str) -> str:
    """``Type/id`` with the id percent-encoded: one path segment, whatever characters it holds."""
    kind, _, rid = reference.partition("/")
    return f"{kind}/{quote(rid, safe='')}"


def completer(client: FhirClient, first_page: dict[str, Any], deadline: float) -> Callable[[], Any]:
    """A task reading the next pages of a searchset the client sent only the start of."""
    return lambda: client.complete_search(first_page, deadline=deadline)

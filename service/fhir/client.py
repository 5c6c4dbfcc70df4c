"""All FHIR I/O of the service behind one object: ``FhirClient`` (one ``requests.Session``, a timeout
on every call, ``Accept: application/fhir+json``, the bearer token on every call when there is one).

It runs on the service's one outbound transport (``service.fhir.transport``: address check at
connect, no redirects, byte caps, deadline, no environment credentials). Errors are ``FhirError``
subclasses (``service.fhir.errors``); their ``reason`` is safe to show a caller or write to a log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote, urljoin

import msgspec
import requests

from service.config import default
from service.fhir.connections import AddressRefused, _current_watch, watched_call
from service.fhir.errors import (
    FhirAddressRefusedError,
    FhirConnectionError,
    FhirContentTypeError,
    FhirError,
    FhirForbiddenError,
    FhirHttpError,
    FhirNotFhirError,
    FhirNotFoundError,
    FhirNotJsonError,
    FhirPagingError,
    FhirRateLimitedError,
    FhirResponseError,
    FhirResponseTooLargeError,
    FhirServerError,
    FhirTimeoutError,
    FhirTruncatedError,
    FhirUnauthorizedError,
)
from service.fhir.policy import BaseUrl
from service.fhir.transport import (
    ByteBudget,
    SessionPool,
    _cause_name,
    _check_status,
    _refused_address,
    bounded_get,
    get_streamed,
    new_session,
    read_capped,
)
from service.ops import metrics

# The names callers import from here: the client, its errors and the transport it runs on.
__all__ = [
    "AddressRefused",
    "ByteBudget",
    "FhirAddressRefusedError",
    "FhirClient",
    "FhirConnectionError",
    "FhirContentTypeError",
    "FhirError",
    "FhirForbiddenError",
    "FhirHttpError",
    "FhirNotFhirError",
    "FhirNotFoundError",
    "FhirNotJsonError",
    "FhirPagingError",
    "FhirRateLimitedError",
    "FhirResponseError",
    "FhirResponseTooLargeError",
    "FhirServerError",
    "FhirTimeoutError",
    "FhirTruncatedError",
    "FhirUnauthorizedError",
    "SessionPool",
    "bounded_get",
    "new_session",
    "read_capped",
]

log = logging.getLogger("tacro_cds.fhir")

FHIR_JSON = "application/fhir+json"
JSON_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})


class FhirClient:
    """One FHIR server, one token, one session; every call bounded in time and size."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        *,
        timeout: float = default("FHIR_TIMEOUT_S"),
        session: requests.Session | None = None,
        max_pages: int = default("FHIR_MAX_PAGES"),
        max_entries: int = default("FHIR_MAX_ENTRIES"),
        max_bytes: int = default("FHIR_MAX_RESPONSE_BYTES"),
        budget: ByteBudget | None = None,
    ) -> None:
        self.budget = budget
        self.base_url = base_url.rstrip("/")
        self.base = BaseUrl.parse(self.base_url)
        self._token = access_token
        self.timeout = timeout
        self.session = session or new_session()
        self.max_pages = max_pages
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def __repr__(self) -> str:  # never show the token
        return f"FhirClient({self.base_url!r}, token={'yes' if self._token else 'no'})"

    def close(self) -> None:
        self.session.close()

    def url(self, relative: str) -> str:
        """The absolute URL of a relative FHIR query on this server."""
        if "://" in relative.split("?", 1)[0] or relative.startswith("/"):
            raise ValueError("a relative FHIR query is expected")
        return f"{self.base_url}/{relative}"

    def read(self, relative: str, *, deadline: float | None = None) -> dict[str, Any]:
        """GET ``Type/id``; the resource, of that type. FhirNotFoundError when it does not exist."""
        resource = self._get(self.url(relative), deadline)
        wanted = relative.split("/", 1)[0]
        if resource.get("resourceType") != wanted:
            raise FhirNotFhirError(f"a read of {wanted} answered a {_kind(resource)}")
        return resource

    def search(
        self,
        relative_query: str,
        *,
        deadline: float | None = None,
        resource_types: Collection[str] | None = None,
        outcomes: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """GET a search and follow ``next`` links on this server, up to ``max_pages`` pages and
        ``max_entries`` resources. Returns the entries' resources, without OperationOutcome entries
        (and only of ``resource_types`` when given). Newest-first searches lose their oldest
        entries at the cap, which is the intended bound. The OperationOutcome entries (a server's
        "results truncated") go to ``outcomes`` when a list is given."""
        return self._pages(self.url(relative_query), None, deadline, resource_types, outcomes)

    def complete_search(
        self,
        first_page: dict[str, Any],
        *,
        deadline: float | None = None,
        resource_types: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The resources of a searchset whose first page is already in hand (a client's prefetch)
        and of the pages its ``next`` links lead to, fetched exactly as ``search`` fetches its own:
        on this server only, with the token, within the same page and entry caps (the page in hand
        counts as the first) and the same deadline."""
        return self._pages(None, first_page, deadline, resource_types)

    def _pages(
        self,
        url: str | None,
        first_page: dict[str, Any] | None,
        deadline: float | None,
        resource_types: Collection[str] | None,
        outcomes: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        seen: set[str] = set()
        resources: list[dict[str, Any]] = []
        pages = 0
        while url is not None or first_page is not None:
            if first_page is not None:
                bundle, first_page = first_page, None
            else:
                assert url is not None
                try:
                    # Compared decoded: a server may echo a percent-encoded query back decoded.
                    if unquote(url) in seen:
                        raise FhirPagingError("the searchset's next link loops")
                    seen.add(unquote(url))
                    bundle = self._get(url, deadline)
                except FhirError as exc:
                    exc.partial = resources
                    raise
            if bundle.get("resourceType") != "Bundle":
                raise FhirNotFhirError(f"a search answered a {_kind(bundle)}, not a Bundle")
            pages += 1
            if not isinstance(bundle.get("entry", []), list) or not isinstance(bundle.get("link", []), list):
                raise FhirNotFhirError("a searchset's entry or link is not an array")
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                    continue
                kind = resource["resourceType"]
                # Servers put warnings in searchsets as OperationOutcome entries; they are not data.
                if kind == "OperationOutcome" and outcomes is not None:
                    outcomes.append(resource)
                if kind == "OperationOutcome" or (resource_types is not None and kind not in resource_types):
                    continue
                resources.append(resource)
            if len(resources) >= self.max_entries:
                log.info("search capped", extra={"cap": "entries", "entries": self.max_entries})
                return resources[: self.max_entries]
            url = self._next_link(bundle)
            if url is not None and pages >= self.max_pages:
                log.info("search capped", extra={"cap": "pages", "pages": self.max_pages})
                break
        return resources

    def _next_link(self, bundle: dict[str, Any]) -> str | None:
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                url: str = urljoin(self.base_url + "/", link["url"])
                # Only ever on the same scheme, host, port and base path: the token goes with it.
                if not self.base.contains(url):
                    raise FhirPagingError("the searchset's next link points outside fhirServer")
                return url
        return None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _get(self, url: str, deadline: float | None) -> dict[str, Any]:
        started = time.monotonic()
        try:
            document = self._get_document(url, deadline, started)
        except FhirError as exc:
            metrics.fhir_request(time.monotonic() - started, exc.code)
            raise
        metrics.fhir_request(time.monotonic() - started)
        return document

    def _get_document(self, url: str, deadline: float | None, started: float) -> dict[str, Any]:
        stop = started + self.timeout if deadline is None else min(started + self.timeout, deadline)
        if stop - started <= 0:
            raise FhirTimeoutError("no time left in the request's budget")
        with watched_call(stop, self.timeout):
            body = self._exchange(url, stop)
        try:
            document = decode_json(body)
        except (UnicodeDecodeError, ValueError):
            # ValueError beyond JSONDecodeError: e.g. an integer longer than int_max_str_digits.
            raise FhirNotJsonError("the answer is not valid JSON") from None
        except RecursionError:
            raise FhirNotFhirError("the answer is nested too deeply") from None
        if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
            raise FhirNotFhirError("the answer is JSON but not a FHIR resource")
        return document

    def _exchange(self, url: str, stop: float) -> bytes:
        """One GET: status and content type checked, the body read within the byte cap."""
        remaining = stop - time.monotonic()
        if remaining <= 0:  # requests refuses a zero or negative timeout with a ValueError
            raise FhirTimeoutError("no time left in the request's budget")
        watch = getattr(_current_watch, "value", None)
        try:
            try:
                response = self._send(url, remaining)
            except requests.ConnectionError as exc:
                # A kept-alive connection the server closed (its idle timer) just as this request
                # went out on it: nothing was answered, so the GET is sent once more, on a new
                # connection, within the same deadline. A new connection failing is not retried.
                if (
                    watch is None
                    or not watch.reused
                    or watch.fired
                    or _refused_address(exc)
                    or isinstance(exc, requests.Timeout)
                ):
                    raise
                remaining = stop - time.monotonic()
                if remaining <= 0:
                    raise FhirTimeoutError("no time left in the request's budget") from None
                log.info(
                    "FHIR connection closed by the server as it was reused; sent again on a new one",
                    extra={"error": _cause_name(exc)},
                )
                watch.fresh_connection = True
                response = self._send(url, remaining)
        except requests.Timeout:
            raise FhirTimeoutError(f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            if _refused_address(exc):
                raise FhirAddressRefusedError("fhirServer resolves to an address this service does not call") from None
            # The kind of failure (TLS, refused, reset) tells a caller what listens on a port: it is
            # logged, and the caller is told only that the server is unreachable.
            log.warning("FHIR server unreachable", extra={"error": _cause_name(exc)})
            raise FhirConnectionError("the FHIR server is unreachable") from None
        except requests.RequestException as exc:
            log.warning("FHIR server unreachable", extra={"error": _cause_name(exc)})
            raise FhirConnectionError("the FHIR server is unreachable") from None
        with response:
            _check_status(response)
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if media_type not in JSON_MEDIA_TYPES:
                raise FhirContentTypeError(f"the answer is {media_type or 'of no declared type'}, not FHIR JSON")
            return self._read_body(response, stop)

    def _send(self, url: str, remaining: float) -> requests.Response:
        # No redirects: a 3xx could send the request, and the token, to another host.
        return get_streamed(self.session, url, self._headers(), (remaining, remaining))

    def _read_body(self, response: requests.Response, stop: float) -> bytes:
        return read_capped(response, stop, max_bytes=self.max_bytes, timeout=self.timeout, budget=self.budget)


_DECODER = msgspec.json.Decoder()

# Python frames json.loads spends before its C scanner starts (loads, JSONDecoder.decode,
# raw_decode), plus one to spare. Both C decoders count each nested array or object against the
# interpreter's recursion limit, so msgspec, started this many frames deeper than json.loads starts,
# refuses a deeply nested answer (RecursionError) at least as early as json.loads does.
_JSON_LOADS_FRAMES = 4


def decode_json(body: bytes) -> Any:
    """``json.loads(body)``: the same document, or the same error.

    msgspec's C decoder builds the same dicts, lists and scalars in about half the time (0.6 against
    1.1 ms for the fifteen answers of a year's fallback call). It refuses more than ``json.loads``
    (NaN and Infinity, numbers beyond a float or 64 bits, lone surrogates, any encoding but UTF-8, a
    byte-order mark), never less, and what it refuses goes to ``json.loads``, which decides and
    raises: garbage is refused as before. Its nesting limit is held to ``json.loads``'s by starting
    it deeper in the stack (``_JSON_LOADS_FRAMES``), so an answer nested too deeply is a
    RecursionError as before (this function's own frame moves that limit one level, of some 960).
    tests/test_fhir_decode.py checks both agree, at the nesting limit too."""
    try:
        return _decode_deeper(body, _JSON_LOADS_FRAMES)
    except Exception:  # anything msgspec refuses: json.loads decides
        return json.loads(body)


def _decode_deeper(body: bytes, frames: int) -> Any:
    if frames > 0:
        return _decode_deeper(body, frames - 1)
    return _DECODER.decode(body)


def _kind(resource: dict[str, Any]) -> str:
    return str(resource.get("resourceType"))[:40]

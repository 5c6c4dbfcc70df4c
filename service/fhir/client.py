"""All FHIR I/O of the service behind one object: ``FhirClient`` (one ``requests.Session``, a timeout
on every call, ``Accept: application/fhir+json``, the bearer token on every call when there is one).

Errors are ``FhirError`` subclasses. Their ``reason`` is short and safe to show a caller or write to
a log: it never contains a URL (URLs hold patient ids), a token or a response body.
"""

from __future__ import annotations

import heapq
import http.cookiejar
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Hashable
from typing import Any
from urllib.parse import unquote, urljoin

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

from service.config import default
from service.fhir.policy import AddressCheck, BaseUrl
from service.ops import metrics

log = logging.getLogger("tacro_cds.fhir")

FHIR_JSON = "application/fhir+json"
JSON_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
_CHUNK = 64 * 1024


class FhirError(Exception):
    """The FHIR server did not give usable data. Treat the data as unavailable; never guess it."""

    issue_type = "exception"  # FHIR OperationOutcome issue type for a report
    code = "fhir-error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # A search that failed on a later page: the resources of the pages read before it. The caller
        # may use them, saying that the rest is missing.
        self.partial: list[dict[str, Any]] = []


class FhirTimeoutError(FhirError):
    """No complete answer within the timeout or the overall budget. Retrying later may work."""

    issue_type = "timeout"
    code = "fhir-timeout"


class FhirConnectionError(FhirError):
    """The server could not be reached (refused, reset, DNS, TLS). Check ``fhirServer``; retry later."""

    issue_type = "transient"
    code = "fhir-unreachable"


class FhirAddressRefusedError(FhirConnectionError):
    """``fhirServer``'s host name resolves to an internal address (loopback, private, link-local,
    metadata): the service does not connect, and the token is never sent."""

    issue_type = "security"
    code = "fhir-address-refused"


class FhirHttpError(FhirError):
    """The server answered with an error status; ``status`` holds it."""

    issue_type = "processing"
    code = "fhir-http-error"

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class FhirUnauthorizedError(FhirHttpError):
    """401: the access token is missing, expired or not accepted. The client must send a fresh
    ``fhirAuthorization``; do not retry with the same token."""

    issue_type = "security"
    code = "fhir-unauthorized"


class FhirForbiddenError(FhirHttpError):
    """403: the token lacks the scope for this query. The client must grant the scopes the service's
    prefetch needs, or prefetch the data itself."""

    issue_type = "security"
    code = "fhir-forbidden"


class FhirNotFoundError(FhirHttpError):
    """404: for a read, the resource does not exist (an answer, like a ``null`` prefetch); for a
    search, the server does not support the query."""

    issue_type = "not-found"
    code = "fhir-not-found"


class FhirRateLimitedError(FhirHttpError):
    """429: the server is throttling us. Retry no sooner than ``retry_after`` seconds (when given)."""

    issue_type = "throttled"
    code = "fhir-rate-limited"

    def __init__(self, reason: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class FhirServerError(FhirHttpError):
    """5xx: the server failed. Transient as far as we can tell; retry later."""

    issue_type = "transient"
    code = "fhir-server-error"


class FhirResponseError(FhirError):
    """The server answered 200 but the body is unusable. A server fault: report it, do not retry."""

    issue_type = "processing"
    code = "fhir-bad-response"


class FhirContentTypeError(FhirResponseError):
    """The body is not declared as JSON (e.g. an HTML login or error page): check ``fhirServer``."""

    code = "fhir-content-type"


class FhirNotJsonError(FhirResponseError):
    """The body is not valid JSON."""

    code = "fhir-invalid-json"


class FhirNotFhirError(FhirResponseError):
    """The body is JSON but not the FHIR resource asked for (no ``resourceType``, wrong type)."""

    code = "fhir-not-fhir"


class FhirTruncatedError(FhirResponseError):
    """The connection ended before the whole body arrived. Retrying may work."""

    issue_type = "transient"
    code = "fhir-truncated"


class FhirResponseTooLargeError(FhirResponseError):
    """The body exceeds the byte cap; narrow the query (the cap protects the service's memory)."""

    issue_type = "too-costly"
    code = "fhir-too-large"


class FhirPagingError(FhirResponseError):
    """A searchset's ``next`` link leaves ``fhirServer`` or loops; the rest of the search is refused."""

    issue_type = "security"
    code = "fhir-bad-next-link"


class ByteBudget:
    """The bytes all FHIR answers of one hook call may take together, across keys and pages (each
    answer also has its own cap). Shared by the call's fetch threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, size: int) -> None:
        with self._lock:
            self.used += size
            over = self.used > self.limit
        if over:
            raise FhirResponseTooLargeError(f"the FHIR answers of this call together exceed {self.limit} bytes")


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
        watch = _DeadlineWatch(stop)
        try:
            with watch:
                body = self._exchange(url, stop)
        except FhirError:
            if watch.fired:
                raise FhirTimeoutError(f"no complete answer within {self.timeout:g} s") from None
            raise
        if watch.fired:  # the cut connection may have looked like a short, complete answer
            raise FhirTimeoutError(f"no complete answer within {self.timeout:g} s")
        try:
            document = json.loads(body)
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
        return self.session.get(
            url, headers=self._headers(), timeout=(remaining, remaining), stream=True, allow_redirects=False
        )

    def _read_body(self, response: requests.Response, stop: float) -> bytes:
        return read_capped(response, stop, max_bytes=self.max_bytes, timeout=self.timeout, budget=self.budget)


def read_capped(
    response: requests.Response, stop: float, *, max_bytes: int, timeout: float, budget: ByteBudget | None = None
) -> bytes:
    """A streamed response's body, refused beyond ``max_bytes`` (and ``budget``) or after ``stop``."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FhirResponseTooLargeError(f"the answer is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    raw = response.raw
    try:
        while True:
            # read1 returns as soon as some bytes arrive, so a trickling server is caught by the
            # deadline check below instead of holding one read open for a whole chunk.
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if budget is not None:
                budget.charge(len(chunk))
            if size > max_bytes:
                raise FhirResponseTooLargeError(f"the answer is larger than {max_bytes} bytes")
            chunks.append(chunk)
            if time.monotonic() > stop:
                raise FhirTimeoutError(f"the answer did not complete within {timeout:g} s")
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise FhirTimeoutError(f"the answer stalled for {timeout:g} s") from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError, OSError):
        raise FhirTruncatedError("the connection ended before the whole answer arrived") from None
    except urllib3.exceptions.HTTPError:
        raise FhirTruncatedError("the answer could not be read completely") from None
    return b"".join(chunks)


def bounded_get(
    session: requests.Session, url: str, *, timeout: float, max_bytes: int, accept: str = "application/json"
) -> bytes:
    """One GET of a document other than FHIR data (a JWK Set): within ``timeout`` in all (the
    connection is cut at the deadline), no redirects, at most ``max_bytes``; FhirError otherwise."""
    stop = time.monotonic() + timeout
    watch = _DeadlineWatch(stop)
    try:
        with watch:
            try:
                response = session.get(
                    url, headers={"Accept": accept}, timeout=timeout, stream=True, allow_redirects=False
                )
            except requests.Timeout:
                raise FhirTimeoutError(f"no answer within {timeout:g} s") from None
            except requests.RequestException as exc:
                log.warning("key set server unreachable", extra={"error": _cause_name(exc)})
                raise FhirConnectionError("the server is unreachable") from None
            with response:
                _check_status(response)
                body = read_capped(response, stop, max_bytes=max_bytes, timeout=timeout)
    except FhirError:
        if watch.fired:
            raise FhirTimeoutError(f"no complete answer within {timeout:g} s") from None
        raise
    if watch.fired:
        raise FhirTimeoutError(f"no complete answer within {timeout:g} s")
    return body


def _refused_address(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, AddressRefused):
            return True
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else (nested or seen.__context__)
    return False


def _cause_name(exc: BaseException) -> str:
    """The innermost exception class of a requests/urllib3 failure (for the log only)."""
    names = [type(exc).__name__]
    seen: BaseException | None = exc
    for _ in range(6):
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen is not None and seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested
        if seen is None:
            break
        names.append(type(seen).__name__)
    return "/".join(names)


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 401:
        raise FhirUnauthorizedError("the FHIR server refused the access token (401)", status)
    if status == 403:
        raise FhirForbiddenError("the access token does not allow this query (403)", status)
    if status == 404:
        raise FhirNotFoundError("not found (404)", status)
    if status == 429:
        retry = response.headers.get("Retry-After", "")
        raise FhirRateLimitedError(
            "the FHIR server is rate limiting (429)",
            status,
            float(retry) if retry.replace(".", "", 1).isdigit() else None,
        )
    if status >= 500:
        raise FhirServerError(f"the FHIR server failed ({status})", status)
    if 300 <= status < 400:
        raise FhirHttpError(f"the FHIR server redirected ({status}); redirects are not followed", status)
    raise FhirHttpError(f"the FHIR server answered {status}", status)


def _kind(resource: dict[str, Any]) -> str:
    return str(resource.get("resourceType"))[:40]


def new_session(pool_size: int = 16, address_check: AddressCheck | None = None) -> requests.Session:
    """A session for one FHIR server: a connection pool as wide as our parallel fetches, every
    call's connection cut at its deadline (see ``_DeadlineWatch``), and no proxy or ~/.netrc
    credentials taken from the environment (they could add an Authorization header the caller
    never gave). With ``address_check``, the host name is resolved once per connection and the
    connection goes to an address that passed the check, or is refused (``AddressRefused``)."""
    session = requests.Session()
    session.trust_env = False
    adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0, address_check=address_check)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keeps no cookie: a session is shared by the calls of many callers to one server, and a cookie
    one caller's answer set must never go out with another caller's request."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class SessionPool:
    """One session (and so one pool of kept-alive connections) per FHIR server origin and address
    policy, reused by every hook call of this process. Bounded: at most ``max_servers`` sessions,
    the least recently used closed beyond that, each with at most ``pool_size`` idle connections.

    Only connections are shared: each request still carries its own call's token, timeout and
    deadline; no cookie is kept; a connection is made only to an address that passed the policy's
    check when it was opened (the policy is part of the key, so no session serves two policies)."""

    def __init__(self, pool_size: int, max_servers: int = 32) -> None:
        self.pool_size = pool_size
        self.max_servers = max(1, max_servers)
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple[str, Hashable], requests.Session] = OrderedDict()

    def session(self, base: BaseUrl, policy: Hashable, address_check: AddressCheck | None) -> requests.Session:
        """The session for ``base``'s origin under ``policy`` (a key naming ``address_check``)."""
        key = (f"{base.scheme}://{base.host}:{base.port}", policy)
        with self._lock:
            found = self._sessions.get(key)
            if found is not None:
                self._sessions.move_to_end(key)
                return found
            session = new_session(self.pool_size, address_check)
            session.cookies.set_policy(_NoCookies())
            self._sessions[key] = session
            evicted = self._sessions.popitem(last=False)[1] if len(self._sessions) > self.max_servers else None
        if evicted is not None:
            evicted.close()
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            session.close()

    def __len__(self) -> int:
        return len(self._sessions)


# -- a hard deadline per call ---------------------------------------------------------------------
#
# Socket timeouts bound each read, not a whole answer: a server that sends one header byte every
# 0.4 s never trips a 0.5 s read timeout, and http.client keeps reading headers for as long as it
# likes. The fetch thread would outlive the request (the caller stops waiting at the budget) and
# hold a socket for hours. So every call arms a watch that, at the call's deadline, shuts down the
# socket it is using; the blocked read returns at once and the call ends as a timeout. One clock
# thread per process fires every watch: a timer thread per request cost a thread start per GET (and,
# on a busy machine, the wait for that thread to be scheduled) on the fallback's critical path.

_current_watch = threading.local()


class _DeadlineClock:
    """The one thread of this process that fires deadline watches when their time comes. Started
    on first use; a forked worker starts its own (the parent's thread does not survive a fork)."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _DeadlineWatch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _DeadlineWatch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (watch.stop, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fhir-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = []
                # Watches whose call has ended are dropped as they reach the front.
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].done):
                    watch = heapq.heappop(self._heap)[2]
                    if not watch.done:
                        due.append(watch)
                if not due:
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
                    continue
            for watch in due:
                watch.fire()


_CLOCK = _DeadlineClock()


class _DeadlineWatch:
    """Cuts the calling thread's FHIR connection at ``stop`` (time.monotonic), whatever it is
    blocked in. Sockets are attached by the connection when a request is sent on it and
    detached when the pool takes the connection back, so a cut never reaches a connection that
    another call is now using."""

    def __init__(self, stop: float) -> None:
        self.stop = stop
        self.fired = False
        self.reused = False  # the last request went out on a kept-alive connection used before
        self.fresh_connection = False  # the next request must open a new connection
        self._lock = threading.Lock()
        self._done = False
        self._sockets: list[socket.socket] = []
        self._cut: list[socket.socket] = []

    @property
    def done(self) -> bool:
        """The call has ended: nothing left to cut."""
        return self._done

    def __enter__(self) -> _DeadlineWatch:
        _current_watch.value = self
        _CLOCK.add(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current_watch.value = None
        with self._lock:
            self._done = True
            self._sockets.clear()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            if sock is None or self._done:
                return
            self._sockets.append(sock)
            if self.fired:  # a request sent after the deadline (a next page, a retry): cut at once
                self._shut(sock)

    def detach(self, sock: socket.socket | None) -> bool:
        """Stop watching ``sock``; True when the watch cut it (it must not be used again)."""
        with self._lock:
            if sock in self._sockets:
                self._sockets.remove(sock)
            return any(cut is sock for cut in self._cut)

    def fire(self) -> None:
        """The deadline has come: cut every socket the call is using (the clock calls this)."""
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    def _shut(self, sock: socket.socket) -> None:
        self._cut.append(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read with EOF
        except OSError:
            pass  # already closed


class AddressRefused(NewConnectionError):
    """The host name resolved to an address the service must not connect to."""


class _WatchedConnectionMixin:
    """Attaches the connection's socket to the calling thread's deadline watch on each request;
    with ``address_check`` set, connects only to a resolved address that passes it."""

    sock: socket.socket | None
    _deadline_watch: _DeadlineWatch | None = None
    address_check: AddressCheck | None = None
    _sent_on_socket = 0  # requests sent on the current socket (more than 0: a reused connection)

    def _new_conn(self) -> socket.socket:
        self._sent_on_socket = 0
        check = self.address_check
        if check is None:
            return super()._new_conn()  # type: ignore[misc, no-any-return]
        host: str = self._dns_host  # type: ignore[attr-defined]
        port: int = self.port  # type: ignore[attr-defined]
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(host, self, exc) from exc  # type: ignore[arg-type]
        addresses = [info for info in infos if check(str(info[4][0]))]
        if not addresses or len(addresses) != len(infos):
            # Any internal answer refuses the name: a round-robin mix is not a public server.
            message = "the host name resolves to an address this service does not call"
            raise AddressRefused(self, message)  # type: ignore[arg-type]
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():  # type: ignore[attr-defined]
                    sock.setsockopt(*option)
                sock.settimeout(self.timeout)  # type: ignore[attr-defined]
                sock.connect(sockaddr)  # the address checked above: no second lookup
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if isinstance(error, TimeoutError):
            raise urllib3.exceptions.ConnectTimeoutError(self, f"Connection to {host} timed out.")
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_current_watch, "value", None)
        if watch is not None:
            watch.reused = self.sock is not None and self._sent_on_socket > 0
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]  # connects when not yet connected
        finally:
            self._sent_on_socket += 1  # after the connect, which counts from 0 on a new socket
            if watch is not None:
                self._deadline_watch = watch
                watch.attach(self.sock)


class _WatchedHTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


def _detach(conn: Any) -> None:
    """Before a connection goes back to the pool (and so to another call): it leaves its call's
    deadline watch, and is closed if the watch cut its socket, so no later call is sent on it."""
    watch = getattr(conn, "_deadline_watch", None)
    if watch is not None:
        conn._deadline_watch = None
        if watch.detach(conn.sock) and conn is not None:
            conn.close()


def _fresh_if_asked(conn: Any) -> Any:
    """A connection from the pool, closed (so it reconnects) when the calling thread's watch asks
    for a new one: the retry of a request whose kept-alive connection the server had closed."""
    watch = getattr(_current_watch, "value", None)
    if watch is not None and watch.fresh_connection:
        watch.fresh_connection = False
        if conn is not None and conn.sock is not None:
            conn.close()
    return conn


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _fresh_if_asked(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            _detach(conn)  # before another thread can take it from the pool
        super()._put_conn(conn)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _fresh_if_asked(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            _detach(conn)
        super()._put_conn(conn)


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections take part in ``_DeadlineWatch`` and, with
    ``address_check``, connect only to checked addresses."""

    def __init__(self, *args: Any, address_check: AddressCheck | None = None, **kwargs: Any) -> None:
        self._address_check = address_check
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        check = getattr(self, "_address_check", None)
        if check is None:
            self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
            return
        http_conn = type("_CheckedHTTPConnection", (_WatchedHTTPConnection,), {"address_check": staticmethod(check)})
        https_conn = type("_CheckedHTTPSConnection", (_WatchedHTTPSConnection,), {"address_check": staticmethod(check)})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("_CheckedHTTPPool", (_WatchedHTTPPool,), {"ConnectionCls": http_conn}),
            "https": type("_CheckedHTTPSPool", (_WatchedHTTPSPool,), {"ConnectionCls": https_conn}),
        }

"""The one outbound-HTTP transport of the service: every fetch (FHIR data, caller JWK Sets, the SMART
app's discovery, token and id-token key calls) goes through a session made here.

What every such session does: no proxy and no ~/.netrc credentials from the environment
(``trust_env`` off), no cookies kept, no redirects followed, every call cut at a deadline whatever it
is blocked in (``_DeadlineWatch``), every body read within a byte cap (``read_capped``) and, with an
address check, a connection made only to a resolved address that passed it (every address a name
resolves to is checked; the socket goes to the one checked, with no second lookup). ``OriginGate``
bounds how many calls of this process wait on one origin at once.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from service.fhir.connections import AddressRefused, _DeadlineAdapter, watched_call
from service.fhir.errors import (
    FhirAddressRefusedError,
    FhirBusyError,
    FhirConnectionError,
    FhirError,
    FhirForbiddenError,
    FhirHttpError,
    FhirNotFoundError,
    FhirNotJsonError,
    FhirRateLimitedError,
    FhirResponseTooLargeError,
    FhirServerError,
    FhirTimeoutError,
    FhirTruncatedError,
    FhirUnauthorizedError,
)
from service.fhir.policy import AddressCheck, BaseUrl

log = logging.getLogger("tacro_cds.fhir")

_CHUNK = 64 * 1024


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
    with watched_call(stop, timeout):
        try:
            response = session.get(url, headers={"Accept": accept}, timeout=timeout, stream=True, allow_redirects=False)
        except requests.Timeout:
            raise FhirTimeoutError(f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            log.warning("key set server unreachable", extra={"error": _cause_name(exc)})
            raise FhirConnectionError("the server is unreachable") from None
        with response:
            _check_status(response)
            body = read_capped(response, stop, max_bytes=max_bytes, timeout=timeout)
    return body


# -- the hardened session: every fetch that is not FHIR data ------------------------------------


@dataclass(frozen=True)
class Limits:
    """What bounds each call of a ``HardenedSession``: the whole call within ``timeout`` seconds,
    the body within ``max_bytes``, at most ``per_origin`` calls of this process to one origin at once."""

    timeout: float
    max_bytes: int
    per_origin: int = 4


class OriginGate:
    """How many outbound calls of this process are in flight per origin. A call beyond the origin's
    limit is refused at once (``FhirBusyError``) instead of queueing: a server that answers slowly,
    on purpose or not, then holds at most that many serving threads, never all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[str, int] = {}
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._busy = {}

    @contextmanager
    def hold(self, origin: str, limit: int) -> Iterator[None]:
        with self._lock:
            busy = self._busy.get(origin, 0)
            if busy >= limit:
                raise FhirBusyError("too many calls to this server are already waiting; try again shortly")
            self._busy[origin] = busy + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._busy.get(origin, 1) - 1
                if left > 0:
                    self._busy[origin] = left
                else:
                    self._busy.pop(origin, None)


ORIGINS = OriginGate()


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL (the key of ``OriginGate``), lower case."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return f"{scheme}://{(parts.hostname or '').lower()}:{port or {'http': 80, 'https': 443}.get(scheme, 0)}"


class HardenedSendMixin:
    """Makes every ``send`` of a ``requests.Session`` (or a subclass, such as an OAuth client's) a
    hardened call: redirects are not followed (a 3xx is an error: it could carry a credential to
    another host), the body is read within ``limits.max_bytes`` and the whole call within
    ``limits.timeout`` (the socket is cut at the deadline), and at most ``limits.per_origin`` calls
    wait on one origin. Status codes other than 3xx are the caller's to judge (an OAuth error is a
    400 with a JSON body). Failures are ``FhirError``s; the body is in ``response.content``."""

    limits: Limits

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().request(method, url, *args, **kwargs)  # type: ignore[misc, no-any-return]
        except FhirError:
            raise
        except (requests.RequestException, UnicodeError, ValueError):
            # A URL requests cannot prepare (an odd host spelling, a bad port): nothing was sent.
            raise FhirConnectionError("the server's URL is not usable") from None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        limits = self.limits
        kwargs.update(stream=True, allow_redirects=False, timeout=limits.timeout)
        stop = time.monotonic() + limits.timeout
        with ORIGINS.hold(origin_of(str(request.url)), limits.per_origin):
            with watched_call(stop, limits.timeout):
                response = self._send_once(request, kwargs)
                with response:
                    if 300 <= response.status_code < 400:
                        raise FhirHttpError(
                            f"the server redirected ({response.status_code}); redirects are not followed",
                            response.status_code,
                        )
                    body = read_capped(response, stop, max_bytes=limits.max_bytes, timeout=limits.timeout)
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        return response

    def _send_once(self, request: requests.PreparedRequest, kwargs: dict[str, Any]) -> requests.Response:
        try:
            return super().send(request, **kwargs)  # type: ignore[misc, no-any-return]
        except requests.Timeout:
            raise FhirTimeoutError(f"no answer within {self.limits.timeout:g} s") from None
        except requests.RequestException as exc:
            if _refused_address(exc):
                raise FhirAddressRefusedError(
                    "the server's name resolves to an address this service does not call"
                ) from None
            # What failed (TLS, refused, reset) tells what listens on a port: logged, never shown.
            log.warning("outbound call failed", extra={"error": _cause_name(exc)})
            raise FhirConnectionError("the server is unreachable") from None


def harden(session: requests.Session, limits: Limits, address_check: AddressCheck | None, pool_size: int = 4) -> None:
    """Set a session up for ``HardenedSendMixin``: no environment proxies or ~/.netrc, no cookies,
    connections only to addresses that pass ``address_check`` (when given), cut at the deadline."""
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0, address_check=address_check)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.limits = limits  # type: ignore[attr-defined]


class HardenedSession(HardenedSendMixin, requests.Session):
    """A ``requests.Session`` for documents that are not FHIR data (JWK Sets, SMART configurations)."""

    def __init__(self, limits: Limits, address_check: AddressCheck | None = None, pool_size: int = 4) -> None:
        super().__init__()
        harden(self, limits, address_check, pool_size)


def fetch_bytes(session: HardenedSession, url: str, accept: str = "application/json") -> bytes:
    """GET a document through a hardened session: the body of a 2xx answer, else ``FhirError``."""
    response = session.get(url, headers={"Accept": accept})
    _check_status(response)
    return response.content


def fetch_json(session: HardenedSession, url: str) -> Any:
    """GET a JSON document through a hardened session: 2xx and JSON, else ``FhirError``."""
    body = fetch_bytes(session, url)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FhirNotJsonError("the answer is not valid JSON") from None


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


def new_session(pool_size: int = 16, address_check: AddressCheck | None = None) -> requests.Session:
    """A session for one FHIR server: a connection pool as wide as our parallel fetches, every
    call's connection cut at its deadline (see ``_DeadlineWatch``), no proxy or ~/.netrc
    credentials taken from the environment (they could add an Authorization header the caller
    never gave) and no cookie kept. With ``address_check``, the host name is resolved once per
    connection and the connection goes to an address that passed the check, or is refused
    (``AddressRefused``)."""
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0, address_check=address_check)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def get_streamed(
    session: requests.Session, url: str, headers: Mapping[str, str], timeout: tuple[float, float]
) -> requests.Response:
    """``session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=False)``:
    the same request on the wire, the same response, the same errors.

    For a session as ``new_session`` makes it (and nothing added to it since), the request is
    prepared by requests' own ``PreparedRequest`` steps (``prepare_get``: URL re-encoding unless the
    URL is already in prepared form, header checks, the userinfo rule) and handed straight to the
    session's ``_DeadlineAdapter``, the adapter ``Session.send`` would pick. What is skipped is what
    such a session makes a no-op and costs a fallback call's fetch threads a third of their CPU:
    merging each of the session's settings
    into the request one by one, looking up environment proxies and credentials that
    ``trust_env`` off ignores anyway, the response hooks (none), the redirect bookkeeping (no
    redirect is followed) and copying the answer's cookies into a jar that keeps none. Every
    check of the transport sits below this, in the adapter's connections and pool (deadline
    watch, address check at connect, TLS verification, kept-alive retry), or above it in the
    caller (status, content type, byte cap). Any other session goes through ``session.get``."""
    if _plain(session):
        prepared = prepare_get(session, url, headers)
        adapter = session.get_adapter(prepared.url or "")  # as Session.send picks it (or refuses the URL)
        if type(adapter) is _DeadlineAdapter:
            return adapter.send(prepared, stream=True, timeout=timeout, verify=True, proxies={})
    return session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=False)


def prepare_get(session: requests.Session, url: str, headers: Mapping[str, str]) -> requests.PreparedRequest:
    """The GET ``session.prepare_request`` makes of ``url`` and ``headers`` for a session that
    ``_plain`` accepts: the session's headers under the call's (a None value drops one), by the
    steps of requests' own ``PreparedRequest.prepare``, the URL's skipped when ``already_prepared``."""
    merged: CaseInsensitiveDict[str | bytes | None] = CaseInsensitiveDict(session.headers)
    merged.update(headers)
    prepared = requests.PreparedRequest()
    # PreparedRequest.prepare, step by step, but for a URL already in the form prepare_url gives.
    prepared.prepare_method("GET")
    if already_prepared(url):
        prepared.url = url
    else:
        prepared.prepare_url(url, None)
    prepared.prepare_headers({k: v for k, v in merged.items() if v is not None})
    prepared.prepare_cookies(None)
    prepared.prepare_body(None, None)
    prepared.prepare_auth(None, url)
    prepared.prepare_hooks(None)
    return prepared


# An http(s) URL that requests' prepare_url gives back unchanged: lower-case scheme and host (ASCII
# letters, digits and inner hyphens per label, so no IDNA, no userinfo, no IPv6), a port of 1-5
# digits without a leading zero, a path, an optional non-empty query and no fragment, in characters
# neither urllib3 (which percent-encodes the others and upper-cases escapes) nor requote_uri (which
# quotes the others) changes, escapes written upper-case.
_PREPARED_URL = re.compile(
    r"https?://[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[1-9][0-9]{0,4})?"
    r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-F]{2})*)+"
    r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-F]{2})+)?"
)
# What the pattern lets through that prepare_url still changes: an escape of an unreserved character
# (requote_uri decodes it) and a "." or ".." path segment (urllib3 removes it).
_CHANGED_ANYWAY = re.compile(r"%(?:2[DE]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])|/\.\.?(?:[/?]|$)")


def already_prepared(url: str) -> bool:
    """Whether requests' ``PreparedRequest.prepare_url(url, None)`` would leave ``url`` as it is.

    A fallback call's queries are such URLs (a FHIR base and a template filled with percent-encoded
    values), and preparing them costs a fetch thread more than anything else before the send:
    urllib3 re-encodes a component holding a "%" byte by byte in Python, on top of requote_uri. True
    only where certain (tests/test_fhir_lean_send.py checks prepare_url against it on generated
    URLs); anything else is prepared by requests."""
    if _PREPARED_URL.fullmatch(url) is None or _CHANGED_ANYWAY.search(url) is not None:
        return False
    port = url.split("/", 3)[2].rpartition(":")[2]
    return not port.isdigit() or int(port) <= 65535


def _plain(session: requests.Session) -> bool:
    """Whether ``session.get`` would add nothing to a GET beyond the session's headers: no
    environment, auth, parameters, hooks, proxies, client certificate, cookies (none held and
    none ever kept) or TLS setting other than full verification."""
    return (
        type(session) is requests.Session
        and session.trust_env is False
        and session.auth is None
        and not session.params
        and not session.proxies
        and session.verify is True
        and session.cert is None
        and not any(session.hooks.values())
        and isinstance(getattr(session.cookies, "_policy", None), _NoCookies)
        and len(session.cookies) == 0
    )


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

"""The connections under the service's outbound transport (``service.fhir.transport``): a hard
deadline per call, and connections made only to addresses that passed the address check.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError

from service.fhir.errors import FhirError, FhirTimeoutError
from service.fhir.policy import AddressCheck

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
            # The clock sleeps until the front of the heap is due. A watch behind the front changes
            # nothing of that, so the clock is woken only for a new front: waking it for each of a
            # fallback call's fifteen watches cost a thread switch per query on the call's path.
            if self._heap[0][2] is watch:
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


@contextmanager
def watched_call(stop: float, timeout: float) -> Iterator[_DeadlineWatch]:
    """One call under a deadline watch that cuts its connection at ``stop``. Once the watch has cut
    it, the call's outcome is a timeout: a FhirError raised then, or an answer that looked complete
    (a cut connection may look like a short, complete answer), becomes FhirTimeoutError."""
    watch = _DeadlineWatch(stop)
    try:
        with watch:
            yield watch
    except FhirError:
        if watch.fired:
            raise FhirTimeoutError(f"no complete answer within {timeout:g} s") from None
        raise
    if watch.fired:
        raise FhirTimeoutError(f"no complete answer within {timeout:g} s")


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


class _WatchedPoolMixin:
    """Gives a call that asks for one a new connection, and detaches a connection from its call's
    deadline watch when it goes back to the pool."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _fresh_if_asked(super()._get_conn(timeout))  # type: ignore[misc]

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            _detach(conn)  # before another thread can take it from the pool
        super()._put_conn(conn)  # type: ignore[misc]


class _WatchedHTTPPool(_WatchedPoolMixin, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_WatchedPoolMixin, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


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

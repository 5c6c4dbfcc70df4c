"""The SMART on FHIR app: a tacrolimus monitor launched from a card or from the EHR.

A blueprint of the service (``/smart/...``), on by default as a public client with PKCE and client id
``tacro-cds``; ``SMART_APP_ENABLED=false`` turns it off. It serves only the EHRs the operator lists
(``SMART_ISSUERS``, else ``FHIR_SERVER_ALLOWLIST``; in development, the EHR on this machine), and
makes every outbound call through the service's hardened transport (docs/security.md). ``init_smart_app`` wires it into the app:
the server-side session (Flask-Session over a cachelib file store shared by the workers: the browser
holds only a random session id), the secret key, the security headers, and the blueprint.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from cachelib import FileSystemCache
from flask import Flask
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request, Response
from flask_session import Session

from service.config import Settings

log = logging.getLogger("tacro_cds.smart_app")


COOKIE_NAME = "tacro_cds_smart"


def _secret_key(app: Flask, settings: Settings) -> str:
    """SECRET_KEY, else the one kept in the instance folder, made once for every worker: written
    to a private temporary file and linked into place, so a worker never reads a half-written key."""
    if settings.secret_key_value:
        return settings.secret_key_value
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temp, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
        finally:
            os.unlink(temp)
    return path.read_text(encoding="ascii").strip()


def init_smart_app(app: Flask, settings: Settings) -> None:
    """Register the app's blueprint and its session (nothing when ``SMART_APP_ENABLED`` is off)."""
    if not settings.smart_app_enabled:
        return
    from service.smart_app.views import bp

    app.config["SECRET_KEY"] = _secret_key(app, settings)
    session_dir = str(settings.smart_session_dir or Path(app.instance_path) / "smart-sessions")
    Path(session_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(session_dir, 0o700)  # an existing folder too: it holds access tokens
    lifetime = settings.smart_session_lifetime_s
    store = FileSystemCache(session_dir, threshold=5000, default_timeout=lifetime, mode=0o600)
    app.extensions["tacro_cds_smart_sweep"] = ExpiredSessionSweep(store)
    app.config.update(
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=store,
        SESSION_PERMANENT=True,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=lifetime),
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH="/smart",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.smart_cookie_secure,
        WTF_CSRF_TIME_LIMIT=lifetime,
    )
    Session(app)
    app.session_interface = AppPathSessions(app.session_interface, str(bp.url_prefix))
    app.register_blueprint(bp)


class AppPathSessions(SessionInterface):
    """The SMART app's server-side session, opened only for the app's own paths: a CDS Hooks call,
    discovery or feedback never reads or writes the session store (nor makes a session id), even
    when a caller sends the app's cookie along."""

    def __init__(self, inner: SessionInterface, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix.rstrip("/")

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        path = request.path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return self.inner.open_session(app, request)
        return self.make_null_session(app)  # Flask saves no null session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)

    def __getattr__(self, name: str) -> Any:
        # The rest of the store's interface (``regenerate`` after sign-in) is the inner one's.
        return getattr(self.inner, name)


class ExpiredSessionSweep:
    """Deletes the session files whose lifetime has passed, and the tokens in them. The store drops
    expired files only once it is full; the app calls this after each sign-in, and it sweeps at
    most once per ``interval_s`` in a process."""

    def __init__(self, store: FileSystemCache, interval_s: float = 60.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last = 0.0

    def __call__(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last < self.interval_s:
                return
            self._last = now
        try:
            self.store._remove_expired(now)  # cachelib's own reader of each file's expiry
        except OSError:
            log.warning("expired app sessions could not all be removed")

"""The reviewers' session: server-side (the browser holds a random id in its own cookie, path
``/review``), in a file store of its own, opened only for the review pages. The SMART app's session
is left as it is: every other path goes to the session interface the app already had."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from cachelib import FileSystemCache
from flask import Flask
from flask.sessions import SessionInterface, SessionMixin
from flask.wrappers import Request, Response
from flask_session.cachelib import CacheLibSessionInterface

COOKIE_NAME = "tacro_cds_review"
PREFIX = "/review"


class _ReviewStore(CacheLibSessionInterface):  # type: ignore[misc]
    """Flask-Session's cachelib sessions under the review cookie's own name and path."""

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def open_session(self, app: Flask, request: Request) -> Any:
        # Flask-Session reads the id from SESSION_COOKIE_NAME (the SMART app's cookie) itself: the
        # review cookie is read here, the rest as it does.
        sid = request.cookies.get(COOKIE_NAME)
        if sid:
            saved = self._retrieve_session_data(self._get_store_id(sid))
            if saved is not None:
                return self.session_class(saved, sid=sid)
        return self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)

    def get_cookie_path(self, app: Flask) -> str:
        return PREFIX


class ReviewPathSessions(SessionInterface):
    """The review pages' session for ``/review...``, the app's previous interface for the rest."""

    def __init__(self, outer: SessionInterface, review: SessionInterface) -> None:
        self.outer = outer
        self.review = review

    def _mine(self, request: Request) -> bool:
        return request.path == PREFIX or request.path.startswith(PREFIX + "/")

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return (self.review if self._mine(request) else self.outer).open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        from flask import request

        (self.review if self._mine(request) else self.outer).save_session(app, session, response)

    def is_null_session(self, obj: object) -> bool:
        return self.outer.is_null_session(obj) or self.review.is_null_session(obj)

    def regenerate(self, session: SessionMixin) -> None:
        """A new session id (after sign-in), in whichever store holds this session."""
        from flask import request

        target = self.review if self._mine(request) else self.outer
        target.regenerate(session)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outer, name)


def install(app: Flask, folder: Path, lifetime_s: int) -> None:
    """Put the review session in front of the app's session interface (the cookie's Secure,
    HttpOnly and SameSite flags are the SMART app's settings)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    store = FileSystemCache(str(folder), threshold=2000, default_timeout=lifetime_s, mode=0o600)
    review = _ReviewStore(app, client=store, key_prefix="review:", permanent=True)
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(seconds=lifetime_s))
    app.session_interface = ReviewPathSessions(app.session_interface, review)

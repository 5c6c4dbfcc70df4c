"""Wiring of the review pages into the app (needs the SMART app's secret key and sign-in pieces)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from service.config import Settings
from service.review import session as review_session


def init_review(app: Flask, settings: Settings) -> None:
    """Register ``/review/`` with its own session (nothing when the SMART app is off: reviewers sign
    in with its OAuth client)."""
    if not settings.smart_app_enabled:
        return
    from service.review.views import bp

    folder = Path(app.instance_path) / "review-sessions"
    review_session.install(app, folder, settings.smart_session_lifetime_s)
    app.register_blueprint(bp)

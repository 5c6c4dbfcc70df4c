"""The app's HTTP endpoints. Thin: the OAuth steps live in ``oauth``, the record in ``record``, the
page in ``page``; errors are ``SmartAppError``s rendered as pages by this blueprint."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm

from cards.vocab import SERVICE_PATIENT_VIEW
from service.app_runtime import runtime
from service.errors import CdsError, FhirServerRefusedError
from service.fhir.policy import check_fhir_server
from service.smart_app import oauth
from service.smart_app.charts import style_hashes
from service.smart_app.errors import (
    AuthorizationDeniedError,
    IssuerRefusedError,
    LaunchMissingIssuerError,
    SessionExpiredError,
    SmartAppError,
    StateMismatchError,
    TokenError,
)
from service.smart_app.page import build_page
from service.smart_app.record import load_record

log = logging.getLogger("tacro_cds.smart_app")

bp = Blueprint(
    "smart_app",
    __name__,
    url_prefix="/smart",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PENDING = "smart_pending"  # state -> what the callback needs (PKCE verifier, token endpoint, ...)
TOKEN = "smart_token"
MAX_PENDING = 5  # launches started in one browser session and not yet finished
PENDING_TTL_S = 600
REFRESH_MARGIN_S = 30


class SignOutForm(FlaskForm):  # type: ignore[misc]
    """Ends the session (a POST with a CSRF token)."""


def _redirect_uri() -> str:
    base = runtime().settings.external_base_url
    if base:
        return base.rstrip("/") + url_for("smart_app.callback")
    return str(url_for("smart_app.callback", _external=True))


def _check_iss(iss: str) -> None:
    settings = runtime().settings
    try:
        check_fhir_server(iss, allow_http=settings.allow_http_fhir, allowlist=settings.fhir_server_allowlist)
    except FhirServerRefusedError:
        raise IssuerRefusedError(
            "The app was launched for a FHIR server this deployment does not read from "
            "(plain http, or not on its allowlist). Ask the administrator."
        ) from None


@bp.get("/launch")
def launch() -> Any:
    """EHR launch (``iss`` + ``launch``) or standalone launch (no ``launch``; ``iss`` or the configured
    ``SMART_STANDALONE_ISS``)."""
    settings = runtime().settings
    iss = (request.args.get("iss") or "").strip()
    launch_id = request.args.get("launch")
    if launch_id is not None and not iss:
        raise LaunchMissingIssuerError(
            "The EHR sent a launch without saying which FHIR server it is (no iss). Open the app again from the EHR."
        )
    if not iss:
        iss = settings.smart_standalone_iss or ""
        if not iss:
            raise LaunchMissingIssuerError(
                "This app starts from your EHR: open a patient's chart, or a card's link, and launch it from there."
            )
    if len(iss) > 2048 or (launch_id is not None and len(launch_id) > 2048):
        raise SmartAppError("The launch parameters are too long.")
    iss = iss.rstrip("/")
    _check_iss(iss)
    conf = oauth.discover(iss, settings)
    verifier = oauth.new_code_verifier()
    url, state, scope = oauth.authorization_url(
        conf, settings, _redirect_uri(), launch=launch_id, code_verifier=verifier
    )
    pending = {
        k: v for k, v in (session.get(PENDING) or {}).items() if v.get("created", 0) > time.time() - PENDING_TTL_S
    }
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda s: pending[s]["created"]))
    pending[state] = {
        "iss": iss,
        "token_endpoint": conf.token_endpoint,
        "code_verifier": verifier,
        "scope": scope,
        "created": time.time(),
        "issuer": conf.issuer,
        "jwks_uri": conf.jwks_uri,
    }
    session[PENDING] = pending
    log.info(
        "smart launch started",
        extra={"launch_type": "ehr" if launch_id else "standalone", "scopes": "v1" if conf.v1_only else "v2"},
    )
    return redirect(url, code=302)


@bp.get("/callback")
def callback() -> Any:
    state = request.args.get("state") or ""
    pending_all = session.get(PENDING) or {}
    pending = pending_all.pop(state, None) if state else None
    session[PENDING] = pending_all
    if pending is None or pending.get("created", 0) < time.time() - PENDING_TTL_S:
        raise StateMismatchError(
            "The answer from the EHR's sign-in does not match a launch started in this "
            "browser (the state parameter differs, or the launch is too old)."
        )
    if request.args.get("error"):
        error = request.args["error"]
        if error == "access_denied":
            raise AuthorizationDeniedError("Access to the patient's record was not granted, so the app cannot show it.")
        raise AuthorizationDeniedError(f"The EHR's sign-in ended with an error ({error[:60]!s}).")
    code = request.args.get("code")
    if not code:
        raise TokenError("The EHR's sign-in answered without an authorization code.")
    token = oauth.exchange_code(pending, runtime().settings, _redirect_uri(), code)
    # A new session id once signed in: a session id seen before the sign-in is never the signed-in one.
    current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
    session[TOKEN] = token
    log.info("smart launch completed", extra={"refresh": bool(token.get("refresh_token"))})
    return redirect(url_for("smart_app.page"), code=303)


def _current_token() -> dict[str, Any]:
    token = session.get(TOKEN)
    if not token:
        raise SessionExpiredError(
            "There is no signed-in session in this browser (it ended, or the app was opened without a launch)."
        )
    expires_at = token.get("expires_at")
    if expires_at is not None and expires_at - REFRESH_MARGIN_S < time.time():
        try:
            token = oauth.refreshed(token, runtime().settings, _redirect_uri())
        except SessionExpiredError:
            session.pop(TOKEN, None)
            raise
        session[TOKEN] = token
    return dict(token)


@bp.get("/")
def page() -> Any:
    rt = runtime()
    token = _current_token()
    try:
        record = load_record(
            token, rt.resolver, rt.registry.get(SERVICE_PATIENT_VIEW).prefetch, rt.knowledge, rt.today()
        )
    except SessionExpiredError:
        session.pop(TOKEN, None)
        raise
    view = build_page(record, rt.knowledge, show_banner=token.get("need_patient_banner") is not False)
    g.smart_style_hashes = style_hashes(view.svgs)
    return render_template("smart/page.html", view=view, form=SignOutForm())


@bp.post("/sign-out")
def sign_out() -> Any:
    form = SignOutForm()
    if not form.validate_on_submit():
        raise SmartAppError(
            "The sign-out form has expired or did not come from this app. Reload the page and try again."
        )
    session.clear()
    return render_template(
        "smart/message.html",
        title="Signed out",
        message="The app's session has ended; its access token is forgotten.",
        launch_again=True,
    ), 200


@bp.errorhandler(CdsError)
def _error_page(exc: CdsError) -> tuple[str, int]:
    if isinstance(exc, SmartAppError):
        title, message, again = exc.title, exc.message, exc.launch_again
    else:
        title, message, again = "The app could not continue", exc.message, True
    log.warning("smart app error", extra={"reason_code": exc.code, "status": exc.status})
    return render_template("smart/message.html", title=title, message=message, launch_again=again), exc.status


@bp.after_request
def _security_headers(response: Response) -> Response:
    ancestors = " ".join(runtime().settings.smart_frame_ancestors or ["'none'"])
    styles = " ".join(["'self'", *g.get("smart_style_hashes", [])])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; "
        f"style-src {styles}; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    if ancestors.strip() == "'self'":
        # Browsers without CSP frame-ancestors; a list of EHR origins has no X-Frame-Options form.
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response

"""The app's HTTP endpoints. Thin: the OAuth steps live in ``oauth``, the record in ``record``, the
page in ``page``; errors are ``SmartAppError``s rendered as pages by this blueprint."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse

from cards.vocab import SERVICE_PATIENT_VIEW
from service.app_runtime import request_host_is_loopback, runtime
from service.errors import CdsError
from service.smart_app import oauth
from service.smart_app.charts import style_hashes
from service.smart_app.errors import (
    AuthorizationDeniedError,
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

LAUNCHES = "smart_launches"  # launch id -> that launch's token and context (the session's only content)
PENDING_COOKIE = "tacro_cds_smart_pending"  # encrypted: state -> what the callback needs (PKCE verifier, ...)
MAX_PENDING = 3  # launches started in one browser and not yet finished
MAX_LAUNCHES = 6  # finished launches one browser session keeps (the oldest is dropped)
PENDING_TTL_S = 600
MAX_PENDING_COOKIE = 3800  # characters: with its name and attributes, within a browser's 4 KB
REFRESH_MARGIN_S = 30


class SignOutForm(FlaskForm):  # type: ignore[misc]
    """Ends the session (a POST with a CSRF token)."""


def _redirect_uri() -> str:
    """The callback URL: from ``EXTERNAL_BASE_URL``; from the Host header only when that names this
    machine (a browser on the host itself). Any other Host could be the attacker's own name."""
    base = runtime().settings.external_base_url
    if base:
        return base.rstrip("/") + url_for("smart_app.callback")
    if not request_host_is_loopback():
        raise SmartAppError(
            "This deployment does not know its own public address: the administrator must set "
            "EXTERNAL_BASE_URL before the app can be launched from another machine."
        )
    return str(url_for("smart_app.callback", _external=True))


def _pending_box() -> Fernet:
    """Encrypts and authenticates the pending launches (their PKCE verifiers) for the browser."""
    key = hashlib.sha256(b"tacro-cds smart pending\0" + str(current_app.config["SECRET_KEY"]).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _read_pending() -> dict[str, dict[str, Any]]:
    raw = request.cookies.get(PENDING_COOKIE)
    if not raw or len(raw) > MAX_PENDING_COOKIE:
        return {}
    try:
        pending = json.loads(_pending_box().decrypt(raw.encode("ascii"), ttl=PENDING_TTL_S))
    except (InvalidToken, ValueError, UnicodeError):
        return {}
    if not isinstance(pending, dict):
        return {}
    now = time.time()
    return {k: v for k, v in pending.items() if isinstance(v, dict) and v.get("created", 0) > now - PENDING_TTL_S}


def _write_pending(response: BaseResponse, pending: dict[str, dict[str, Any]]) -> BaseResponse:
    """Pending launches live in an encrypted cookie, not in the session store: a launch or a callback
    that does not succeed writes nothing on the server, and the browser cannot read the verifiers."""
    settings = runtime().settings
    pending = dict(pending)
    value = ""
    while pending:
        value = _pending_box().encrypt(json.dumps(pending, separators=(",", ":")).encode()).decode("ascii")
        if len(value) <= MAX_PENDING_COOKIE:
            break
        # Browsers drop a cookie over 4 KB: the oldest launches give way to the newest.
        pending.pop(min(pending, key=lambda s: pending[s].get("created", 0)))
    if pending:
        response.set_cookie(
            PENDING_COOKIE,
            value,
            max_age=PENDING_TTL_S,
            path=str(bp.url_prefix),
            secure=settings.smart_cookie_secure,
            httponly=True,
            samesite="Lax",
        )
    else:
        response.delete_cookie(PENDING_COOKIE, path=str(bp.url_prefix))
    return response


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
    issuer = oauth.check_issuer(iss, settings)  # before any outbound call
    redirect_uri = _redirect_uri()
    oauth.oauth_client(settings, redirect_uri, issuer=issuer)  # a confidential client refuses an unlisted EHR
    conf = oauth.discover(issuer, iss, settings)
    verifier = oauth.new_code_verifier()
    url, state, scope = oauth.authorization_url(conf, settings, redirect_uri, launch=launch_id, code_verifier=verifier)
    pending = _read_pending()
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
    log.info(
        "smart launch started",
        extra={"launch_type": "ehr" if launch_id else "standalone", "scopes": "v1" if conf.v1_only else "v2"},
    )
    return _write_pending(redirect(url, code=302), pending)


@bp.get("/callback")
def callback() -> Any:
    state = request.args.get("state") or ""
    pending_all = _read_pending()
    pending = pending_all.pop(state, None) if state else None
    if pending is None:
        raise StateMismatchError(
            "The answer from the EHR's sign-in does not match a launch started in this "
            "browser (the state parameter differs, or the launch is too old)."
        )
    if request.args.get("error"):
        error = request.args["error"]
        description = oauth.safe_text(request.args.get("error_description"))
        log.warning("smart sign-in ended with an error", extra={"oauth_error": oauth.safe_text(error, 60)})
        if error == "access_denied":
            raise AuthorizationDeniedError("Access to the patient's record was not granted, so the app cannot show it.")
        shown = error if error in oauth.OAUTH_ERRORS else "an unrecognised error"
        raise AuthorizationDeniedError(
            f"The EHR's sign-in ended with an error ({shown}{': ' + description if description else ''})."
        )
    code = request.args.get("code")
    if not code or len(code) > 4096:
        raise TokenError("The EHR's sign-in answered without a usable authorization code.")
    settings = runtime().settings
    issuer = oauth.check_issuer(str(pending["iss"]), settings)
    token = oauth.exchange_code(pending, settings, _redirect_uri(), code, issuer)
    token["created"] = time.time()
    token["allowlist_issuer"] = oauth.allowlist_key(str(pending["iss"]), settings)
    # The session is made here, and only here: a signed-in launch. A new session id once signed in
    # (a session id seen before the sign-in is never the signed-in one).
    launches = dict(session.get(LAUNCHES) or {})
    while len(launches) >= MAX_LAUNCHES:
        launches.pop(min(launches, key=lambda k: launches[k].get("created", 0)))
    launch_key = secrets.token_urlsafe(16)
    launches[launch_key] = token
    if session.get(LAUNCHES):
        current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
    session[LAUNCHES] = launches
    _sweep_expired_sessions()
    log.info("smart launch completed", extra={"refresh": bool(token.get("refresh_token"))})
    return _write_pending(redirect(url_for("smart_app.page", launch_key=launch_key), code=303), pending_all)


def _sweep_expired_sessions() -> None:
    """Delete the session files whose lifetime has passed (with their tokens), at most once a minute
    per process: the store only removes them when it is full otherwise."""
    sweep = current_app.extensions.get("tacro_cds_smart_sweep")
    if sweep is not None:
        sweep()


def _launch_token(launch_key: str) -> dict[str, Any]:
    launches = session.get(LAUNCHES) or {}
    token = launches.get(launch_key)
    if not token:
        raise SessionExpiredError(
            "This page's launch is not signed in in this browser (it ended, or the page was opened "
            "without a launch). Open the app again from the patient's chart."
        )
    expires_at = token.get("expires_at")
    if expires_at is not None and expires_at - REFRESH_MARGIN_S < time.time():
        try:
            token = oauth.refreshed(token, runtime().settings, _redirect_uri())
        except SessionExpiredError:
            _forget(launch_key)
            raise
        session[LAUNCHES] = {**launches, launch_key: token}
    return dict(token)


def _forget(launch_key: str) -> None:
    """Drop one launch's tokens; the whole session when it was the last."""
    launches = dict(session.get(LAUNCHES) or {})
    launches.pop(launch_key, None)
    if launches:
        session[LAUNCHES] = launches
    else:
        session.clear()


@bp.get("/")
def index() -> Any:
    """The app's address without a launch: each page belongs to one launch (one patient)."""
    raise SessionExpiredError(
        "Each page of this app belongs to one launch, for one patient. Open the app from the patient's chart."
    )


@bp.get("/view/<launch_key>")
def page(launch_key: str) -> Any:
    rt = runtime()
    token = _launch_token(launch_key)
    try:
        record = load_record(
            token,
            rt.resolver,
            rt.registry.get(SERVICE_PATIENT_VIEW).prefetch,
            rt.knowledge,
            rt.today(),
            # Its own share of the fallback gate (named by a digest: the gate logs its keys).
            gate_key="smart-app:" + hashlib.sha256(launch_key.encode()).hexdigest()[:16],
        )
    except SessionExpiredError:
        _forget(launch_key)
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

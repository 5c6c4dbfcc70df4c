"""The one error handler: every error, ours or Flask's, rendered once as JSON (an OperationOutcome,
or a bare 401 for a refused caller). The error hierarchy itself is ``service.errors``."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from service.errors import UNAUTHORIZED_OUTCOME, CdsError, PayloadTooLargeError, UnauthorizedError, UnknownServiceError

log = logging.getLogger("tacro_cds.errors")


def register_error_handler(app: Flask) -> None:
    """Render every error, ours or Flask's, in one place."""

    @app.errorhandler(Exception)
    def handle(exc: Exception) -> Response | tuple[Response | str, int]:
        if isinstance(exc, UnauthorizedError):
            # service.api.auth has logged the reason; the caller learns nothing more.
            response = jsonify(UNAUTHORIZED_OUTCOME)
            response.status_code = 401
            response.mimetype = "application/fhir+json"
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if isinstance(exc, CdsError):
            err = exc
        elif isinstance(exc, HTTPException):
            err = _from_http(exc)
        else:
            log.exception("unhandled error")
            err = CdsError("internal error; the request was not processed")
        if err.status == 413:
            _drain_body()
        response = jsonify(err.outcome())
        response.status_code = err.status
        if err.retry_after:
            response.headers["Retry-After"] = str(err.retry_after)
        response.mimetype = "application/fhir+json"
        return response


def _drain_body() -> None:
    """Read and drop the rest of a refused body of up to twice MAX_REQUEST_BYTES.

    gunicorn answers keep-alive but drops the connection when more than 64 KiB of the body is left
    unread, so the client's next call on that connection failed. Beyond the cap the connection is
    given up (a client sending that much more has no claim on it)."""
    stream = request.environ.get("wsgi.input")
    cap = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    if stream is None or (request.content_length or 0) > 2 * cap:
        return
    remaining = 2 * cap
    try:
        while remaining > 0:
            chunk = stream.read(min(64 * 1024, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:  # the client went away: nothing left to keep
        return


def _from_http(exc: HTTPException) -> CdsError:
    status = exc.code or 500
    if status == 413:
        return PayloadTooLargeError("request body too large")
    if status == 404:
        return UnknownServiceError("no such resource")
    err = CdsError(exc.description or exc.name)
    err.status = status
    err.code = exc.name.lower().replace(" ", "-")
    err.issue_type = "processing" if status < 500 else "exception"
    return err

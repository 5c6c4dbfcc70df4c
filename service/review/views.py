"""The review pages (``/review/``): adjudication of the cards recorded in silent and shadow modes, its
CSV export, and the feedback analytics. Server-rendered; every form carries a CSRF token; URLs carry
record numbers only, never a patient's id or data; logs say what was done, not to whom."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, current_app, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.validators import DataRequired, Length

from service.app_runtime import runtime
from service.errors import CdsError
from service.review import signin
from service.smart_app.errors import SmartAppError
from service.storage.pilot import VERDICTS

log = logging.getLogger("tacro_cds.review")

bp = Blueprint(
    "review",
    __name__,
    url_prefix="/review",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

REVIEWER = "reviewer"
PENDING = "review_pending"

P = ParamSpec("P")
R = TypeVar("R")


class VerdictForm(FlaskForm):  # type: ignore[misc]
    """A reviewer's verdict on one recorded card."""

    verdict = RadioField(
        "Verdict",
        choices=[("right", "Right"), ("wrong", "Wrong"), ("unsure", "Unsure")],
        validators=[DataRequired()],
    )
    reason = StringField("Reason", validators=[DataRequired(), Length(max=1000)])


class SignOutForm(FlaskForm):  # type: ignore[misc]
    """Ends the reviewer's session (a POST with a CSRF token)."""


class NotSignedInError(SmartAppError):
    status = 401
    code = "review-sign-in"
    title = "Sign in to review"
    launch_again = False


def reviewer_required(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not session.get(REVIEWER):
            raise NotSignedInError("Reviewing needs a sign-in through the EHR.")
        return view(*args, **kwargs)

    return wrapper


def _redirect_uri() -> str:
    base = runtime().settings.external_base_url
    if base:
        return base.rstrip("/") + url_for("review.callback")
    return str(url_for("review.callback", _external=True))


@bp.get("/sign-in")
def sign_in() -> Any:
    url, pending = signin.start(runtime().settings, _redirect_uri())
    session[PENDING] = pending
    log.info("review sign-in started")
    return redirect(url, code=302)


@bp.get("/callback")
def callback() -> Any:
    pending = session.pop(PENDING, None)
    who = signin.finish(runtime().settings, _redirect_uri(), pending, request.args)
    current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
    session[REVIEWER] = who
    log.info("review sign-in completed")
    return redirect(url_for("review.index"), code=303)


@bp.post("/sign-out")
def sign_out() -> Any:
    if not SignOutForm().validate_on_submit():
        raise SmartAppError("The sign-out form has expired. Reload the page and try again.")
    session.clear()
    return render_template("review/message.html", title="Signed out", message="Your review session has ended.")


@bp.get("/")
@reviewer_required
def index() -> Any:
    records = runtime().pilot_records
    cards = records.for_review()
    return render_template(
        "review/index.html",
        cards=cards,
        figures=records.figures(cards),
        forms={card.id: _form_for(card) for card in cards},
        reviewer=session[REVIEWER],
        sign_out=SignOutForm(),
    )


def _form_for(card: Any) -> VerdictForm:
    form = VerdictForm(formdata=None, prefix=f"c{card.id}")
    form.verdict.data = card.verdict
    form.reason.data = card.reason or ""
    return form


@bp.post("/cards/<int:record_id>")
@reviewer_required
def adjudicate(record_id: int) -> Any:
    form = VerdictForm(prefix=f"c{record_id}")
    if not form.validate_on_submit() or form.verdict.data not in VERDICTS:
        raise SmartAppError("The verdict needs right, wrong or unsure and a reason (or the form expired: reload).")
    stored = runtime().pilot_records.adjudicate(
        record_id, reviewer=session[REVIEWER], verdict=form.verdict.data, reason=form.reason.data.strip()
    )
    if not stored:
        raise SmartAppError("No such recorded card (it may have passed its retention).")
    log.info("review verdict recorded", extra={"record": record_id, "verdict": form.verdict.data})
    return redirect(url_for("review.index", _anchor=f"card-{record_id}"), code=303)


CSV_FIELDS = (
    "record",
    "recorded_at",
    "service",
    "hook",
    "mode",
    "shown",
    "kind",
    "indicator",
    "summary",
    "quoted_values",
    "quoted_orders",
    "verdict",
    "reason",
    "reviewer",
)


@bp.get("/export.csv")
@reviewer_required
def export() -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for c in runtime().pilot_records.for_review(limit=100_000):
        values = "; ".join(f"{v['what']} {v['value']} {(v.get('date') or '')[:10]}" for v in c.quoted.get("values", []))
        orders = "; ".join(
            f"{o['order']} ({o['status']}{', draft' if o.get('draft') else ''})" for o in c.quoted.get("orders", [])
        )
        row = [
            c.id,
            c.recorded_at.isoformat(timespec="seconds") + "Z",
            c.service_id,
            c.hook,
            c.mode,
            "yes" if c.shown else "no",
            c.kind,
            c.indicator,
            c.summary,
            values,
            orders,
            c.verdict or "",
            c.reason or "",
            c.reviewer or "",
        ]
        writer.writerow([_no_formula(str(v)) for v in row])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="adjudication.csv"'},
    )


def _no_formula(text: str) -> str:
    """A cell a spreadsheet would run as a formula is quoted as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@bp.errorhandler(CdsError)
def _error_page(exc: CdsError) -> tuple[str, int]:
    title = exc.title if isinstance(exc, SmartAppError) else "The review page could not continue"
    log.warning("review error", extra={"reason_code": exc.code, "status": exc.status})
    return render_template(
        "review/message.html", title=title, message=exc.message, sign_in=exc.status in (401, 403)
    ), exc.status


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/analytics")
@reviewer_required
def analytics() -> Any:
    from service.review import analytics as charts

    issuer = request.args.get("issuer") or None
    tenant = request.args.get("tenant")
    data = charts.summarise(runtime().pilot_records.feedback_rows(), issuer=issuer, tenant=tenant)
    return render_template(
        "review/analytics.html",
        data=data,
        issuer=issuer,
        tenant=tenant,
        over_time=charts.over_time_chart(data),
        per_kind=charts.per_kind_chart(data.kinds),
        reviewer=session[REVIEWER],
        sign_out=SignOutForm(),
    )

"""The development EHR's Flask app (see the package docstring)."""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, abort, redirect, render_template, request
from flask_wtf import FlaskForm
from joserfc.jwk import ECKey
from markdown_it import MarkdownIt
from wtforms import HiddenField, SelectField, StringField

from service.fhir.errors import FhirError
from service.fhir.transport import HardenedSession, Limits
from tacro_dev.dev_ehr.authorization import DevClient, DevUser, Store, build_server
from tacro_dev.dev_ehr.hooks import CdsClient, HookCallError
from tacro_dev.fixture_dates import shift_dates
from tacro_dev.fixtures import scenario_names, scenario_shift

_MARKDOWN = MarkdownIt("commonmark", {"html": False})
# What a SMART app may read through the development EHR: a patient-compartment search or read, or a
# Medication (not in the compartment; read by id).
_READ = re.compile(
    r"^(Patient|Medication|Observation|Condition|MedicationRequest|MedicationStatement|"
    r"ServiceRequest|Procedure|Appointment|Immunization)/([A-Za-z0-9\-.]{1,64})$"
)
_SEARCH = re.compile(
    r"^(Observation|Condition|MedicationRequest|MedicationStatement|ServiceRequest|Procedure|"
    r"Appointment|Immunization|Medication)$"
)


@dataclass
class DevEhrSettings:
    fhir_url: str  # the real FHIR server (sekmet), with the fixtures loaded
    fhir_token: str | None
    cds_url: str  # the CDS service's base URL (its /cds-services and /smart/)
    public_url: str  # this EHR's own base URL, e.g. http://127.0.0.1:8090
    fixtures_dir: Path
    shift_to: date | None = None  # fixture dates were moved to read as of this day
    client_id: str = "tacro-cds"
    client_secret: str | None = None
    redirect_uris: list[str] = field(default_factory=list)  # default: {cds_url}/smart/callback
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-384", parameters={"kid": "dev-ehr-1"}))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # the clock feedback is stamped with


class LaunchForm(FlaskForm):  # type: ignore[misc]
    url = HiddenField()
    patient = HiddenField()
    app_context = HiddenField()


class HookForm(FlaskForm):  # type: ignore[misc]
    """Fires a hook (CSRF-protected: it spends the service's time and writes feedback stats)."""


class FeedbackForm(FlaskForm):  # type: ignore[misc]
    """A clinician's answer to a card: accept one of its suggestions, or override it with a reason."""

    card = HiddenField()
    suggestion = HiddenField()
    reason = SelectField("Override reason", choices=[], validate_choice=False)
    comment = StringField("Comment")


# Cards shown, by uuid, so that feedback can name them and an accepted suggestion can be applied to
# the draft the chart showed; the oldest are forgotten beyond this many.
MAX_SHOWN = 500


class ConsentForm(FlaskForm):  # type: ignore[misc]
    # Checked against the list in the view: an EHR launch brings its patient, and the form has none.
    patient = SelectField("Patient", choices=[], validate_choice=False)
    decision = HiddenField()


def create_dev_ehr(settings: DevEhrSettings) -> Flask:
    app = Flask(__name__)
    # The service's outbound transport: no redirects (the admin token must not follow one), a cap,
    # a deadline, no environment proxies or ~/.netrc.
    # The app reads every data group of a record at once (one search each, up to the service's
    # FHIR_MAX_PARALLEL): the proxy must let as many through to its one FHIR server.
    upstream_http = HardenedSession(Limits(20.0, 64 * 1024 * 1024, per_origin=32), pool_size=32)
    app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    app.config["SESSION_COOKIE_NAME"] = "tacro_cds_dev_ehr"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    public = settings.public_url.rstrip("/")
    fhir_base = public + "/fhir"
    store = Store()
    # The SMART app's callback, and the review pages' (reviewers sign in through this EHR).
    redirect_uris = settings.redirect_uris or [
        settings.cds_url.rstrip("/") + "/smart/callback",
        settings.cds_url.rstrip("/") + "/review/callback",
    ]
    store.clients[settings.client_id] = DevClient(settings.client_id, redirect_uris, settings.client_secret)
    server = build_server(app, store, issuer=public, fhir_base=fhir_base, key=settings.key)
    app.jinja_env.globals["order_text"] = order_text
    shown: OrderedDict[str, dict[str, Any]] = OrderedDict()
    shown_lock = threading.Lock()
    cds = CdsClient(settings.cds_url, public, settings.key, settings.fhir_url, settings.fhir_token)
    names = scenario_names(settings.fixtures_dir)

    def scenario(name: str) -> dict[str, Any]:
        if name not in names:
            abort(404)
        data = json.loads((settings.fixtures_dir / name / "scenario.json").read_text(encoding="utf-8"))
        if settings.shift_to is not None:
            data = shift_dates(data, scenario_shift(settings.fixtures_dir, name, settings.shift_to))
        return dict(data)

    @app.get("/")
    def patients() -> str:
        rows = []
        for name in names:
            data = scenario(name)
            rows.append({"id": name, "description": data.get("description", ""), "hooks": sorted(data["hooks"])})
        return render_template("dev_ehr/patients.html", rows=rows, form=HookForm(), settings=settings)

    @app.post("/chart/<name>/<hook>")
    def chart(name: str, hook: str) -> tuple[str, int] | str:
        form = HookForm()
        if not form.validate_on_submit():
            abort(400)
        data = scenario(name)
        if hook not in ("patient-view", "order-select") or hook not in data["hooks"]:
            abort(404)
        context = data["hooks"][hook]["context"]
        access = store.issue(context["patientId"], "patient/*.rs")
        try:
            service_id, cards = cds.call(
                hook,
                context,
                fhir_base,
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/*.rs",
                    "subject": "dev-ehr",
                },
            )
        except HookCallError as exc:
            return render_template(
                "dev_ehr/message.html", title="The CDS service could not be called", message=str(exc)
            ), 502
        draft = [copy.deepcopy(e.get("resource")) for e in (context.get("draftOrders") or {}).get("entry") or []]
        with shown_lock:
            for card in cards:
                if card.get("uuid"):
                    shown[str(card["uuid"])] = {"service": service_id, "card": card, "draft": draft, "name": name}
            while len(shown) > MAX_SHOWN:
                shown.popitem(last=False)
        for card in cards:
            card["detail_html"] = _MARKDOWN.render(card.get("detail") or "")
        return render_template(
            "dev_ehr/chart.html",
            name=name,
            hook=hook,
            service_id=service_id,
            cards=cards,
            description=data.get("description", ""),
            patient=context["patientId"],
            form=LaunchForm(),
            feedback_form=FeedbackForm(),
        )

    @app.post("/feedback")
    def feedback() -> tuple[str, int] | str:
        """Accept a suggestion (applied to the draft the chart showed) or override a card with a
        reason, and send the service the feedback, as an EHR does."""
        form = FeedbackForm()
        if not form.validate_on_submit():
            abort(400)
        with shown_lock:
            seen = shown.get(form.card.data or "")
        if seen is None:
            return render_template(
                "dev_ehr/message.html", title="Unknown card", message="Open the chart again and answer its cards."
            ), 404
        card = seen["card"]
        when = settings.now().isoformat(timespec="seconds").replace("+00:00", "Z")
        entry: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": when}
        draft = seen["draft"]
        if form.suggestion.data:
            chosen = next((s for s in card.get("suggestions") or [] if s.get("uuid") == form.suggestion.data), None)
            if chosen is None:
                abort(400)
            entry |= {"outcome": "accepted", "acceptedSuggestions": [{"id": chosen["uuid"]}]}
            draft = apply_suggestion(draft, chosen)
            with shown_lock:
                seen["draft"] = draft
            what = f"Accepted: {chosen.get('label', '')}"
        else:
            offered = {f"{r.get('system', '')}|{r.get('code', '')}": r for r in card.get("overrideReasons") or []}
            reason = offered.get(form.reason.data or "")
            if reason is None:
                abort(400)
            override: dict[str, Any] = {"reason": reason}
            if (form.comment.data or "").strip():
                override["userComment"] = form.comment.data.strip()[:500]
            entry |= {"outcome": "overridden", "overrideReason": override}
            what = f"Overridden: {reason.get('display', reason.get('code'))}"
        try:
            answer = cds.feedback(seen["service"], [entry])
        except HookCallError as exc:
            return render_template("dev_ehr/message.html", title="Feedback not sent", message=str(exc)), 502
        return render_template(
            "dev_ehr/feedback.html", what=what, answer=answer, card=card, draft=draft, name=seen["name"]
        )

    @app.post("/launch")
    def launch() -> Any:
        form = LaunchForm()
        if not form.validate_on_submit():
            abort(400)
        url = form.url.data or ""
        if form.patient.data not in names:
            abort(400, "no such patient in this EHR")
        if not url.startswith(settings.cds_url.rstrip("/") + "/"):
            abort(400, "this EHR launches only the CDS service's own app")
        launch_id = store.new_launch(
            {"patient": form.patient.data, "need_patient_banner": True, "appContext": form.app_context.data or None}
        )
        return redirect(
            f"{url}{'&' if '?' in url else '?'}{urlencode({'iss': fhir_base, 'launch': launch_id})}", code=303
        )

    @app.route("/oauth/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        form = ConsentForm()
        form.patient.choices = [(n, n) for n in names]
        launch_id = request.values.get("launch")
        context = store.launch(launch_id) if launch_id else None
        if launch_id and context is None:
            return render_template(
                "dev_ehr/message.html", title="Unknown or expired launch", message="Launch the app again from a card."
            ), 400
        if request.values.get("aud", "").rstrip("/") != fhir_base:
            return render_template(
                "dev_ehr/message.html", title="Wrong audience", message=f"aud must be this EHR's FHIR base {fhir_base}."
            ), 400
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as exc:
            return render_template(
                "dev_ehr/message.html",
                title="Invalid authorization request",
                message=f"{exc.error}: {exc.description or ''}",
            ), 400
        if request.method == "GET":
            return render_template(
                "dev_ehr/consent.html",
                form=form,
                grant=grant,
                context=context,
                scopes=(request.values.get("scope") or "").split(),
            )
        if not form.validate_on_submit():
            abort(400)
        if form.decision.data != "allow":
            return server.create_authorization_response(grant_user=None, grant=grant)
        if context is None:
            if form.patient.data not in names:
                abort(400, "no such patient in this EHR")
            context = {"patient": form.patient.data, "need_patient_banner": True}
        return server.create_authorization_response(
            grant_user=DevUser("Practitioner/dev-ehr-user", context), grant=grant
        )

    @app.post("/oauth/token")
    def token() -> Any:
        return server.create_token_response()

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration() -> Response:
        return Response(
            json.dumps(
                {
                    "issuer": public,
                    "jwks_uri": public + "/.well-known/jwks.json",
                    "authorization_endpoint": public + "/oauth/authorize",
                    "token_endpoint": public + "/oauth/token",
                    "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
                    "grant_types_supported": ["authorization_code"],
                    "code_challenge_methods_supported": ["S256"],
                    "capabilities": [
                        "launch-ehr",
                        "launch-standalone",
                        "client-public",
                        "client-confidential-symmetric",
                        "context-ehr-patient",
                        "context-standalone-patient",
                        "context-banner",
                        "permission-patient",
                        "permission-v2",
                    ],
                    "scopes_supported": [
                        "launch",
                        "launch/patient",
                        "openid",
                        "fhirUser",
                        "online_access",
                        "patient/*.rs",
                        "patient/Observation.rs",
                        "patient/Patient.r",
                    ],
                }
            ),
            mimetype="application/json",
        )

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        return Response(json.dumps({"keys": [settings.key.as_dict(private=False)]}), mimetype="application/json")

    @app.get("/fhir/<path:relative>")
    def fhir(relative: str) -> Response:
        header = request.headers.get("Authorization", "")
        granted = store.token(header[7:]) if header.startswith("Bearer ") else None
        if granted is None:
            return _outcome(401, "login", "no valid access token")
        if not _allowed(relative, request.args.getlist("patient"), granted.get("patient")):
            return _outcome(403, "forbidden", "outside the launch's patient compartment")
        headers = {"Accept": "application/fhir+json"}
        if settings.fhir_token:
            headers["Authorization"] = f"Bearer {settings.fhir_token}"
        query = _forwarded_query(relative)
        if query is None:
            return _outcome(400, "not-supported", "a query parameter this EHR does not forward")
        try:
            upstream = upstream_http.get(
                f"{settings.fhir_url.rstrip('/')}/{relative}{'?' + query if query else ''}", headers=headers
            )
        except FhirError:
            return _outcome(502, "transient", "the FHIR server did not answer")
        if upstream.status_code == 200 and not _in_compartment(relative, upstream, granted["patient"]):
            return _outcome(403, "forbidden", "outside the launch's patient compartment")
        body = upstream.text.replace(settings.fhir_url.rstrip("/"), fhir_base)
        return Response(
            body,
            status=upstream.status_code,
            content_type=upstream.headers.get("Content-Type", "application/fhir+json"),
        )

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def apply_suggestion(draft: list[dict[str, Any]], suggestion: dict[str, Any]) -> list[dict[str, Any]]:
    """The draft orders after a suggestion's actions: create adds the resource, update replaces the
    order of the same type and id, delete removes the one named."""
    orders = [copy.deepcopy(r) for r in draft]
    for action in suggestion.get("actions") or []:
        resource = action.get("resource")
        kind = action.get("type")
        if kind == "create" and isinstance(resource, dict):
            orders.append(copy.deepcopy(resource))
        elif kind == "update" and isinstance(resource, dict):
            key = (resource.get("resourceType"), resource.get("id"))
            orders = [copy.deepcopy(resource) if (r.get("resourceType"), r.get("id")) == key else r for r in orders]
        elif kind == "delete":
            gone = str(action.get("resourceId") or "")
            orders = [r for r in orders if f"{r.get('resourceType')}/{r.get('id')}" != gone]
    return orders


def order_text(resource: dict[str, Any]) -> str:
    """One line for a draft order: what, and how much (as its sig says)."""
    concept = resource.get("medicationCodeableConcept") or resource.get("code") or {}
    what = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")), "")
    sig = "; ".join(d.get("text", "") for d in resource.get("dosageInstruction") or [] if d.get("text"))
    return f"{resource.get('resourceType', '')} {what or '(no name)'}{': ' + sig if sig else ''}"


def _allowed(relative: str, patient_params: list[str], patient: str | None) -> bool:
    if patient is None:
        return False
    read = _READ.match(relative)
    if read:
        # Patient: only hers; other types: checked on the answer (_in_compartment)
        return read.group(1) != "Patient" or read.group(2) == patient
    if _SEARCH.match(relative):
        return bool(patient_params) and all(p in (patient, f"Patient/{patient}") for p in patient_params)
    return False


def _in_compartment(relative: str, upstream: requests.Response, patient: str) -> bool:
    """A read of a compartment resource (not Patient, not Medication) must name the patient."""
    read = _READ.match(relative)
    if not read or read.group(1) in ("Patient", "Medication"):
        return True
    try:
        resource = upstream.json()
    except ValueError:
        return False
    wanted = f"Patient/{patient}"
    refs = [
        (resource.get(k) or {}).get("reference") for k in ("subject", "patient") if isinstance(resource.get(k), dict)
    ]
    refs += [
        (p.get("actor") or {}).get("reference")
        for p in resource.get("participant") or []
        if isinstance(p, dict) and isinstance(p.get("actor"), dict)
    ]
    return wanted in refs


def _outcome(status: int, code: str, text: str) -> Response:
    return Response(
        json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
        ),
        status=status,
        mimetype="application/fhir+json",
    )


# The search parameters the app's queries use; anything else (``_type``, ``_include``, ``_has``,
# chained parameters) could turn a compartment search into a query of the whole server, which the
# proxy answers with its own credentials.
_FORWARDED = frozenset(
    {"patient", "subject", "code", "date", "status", "category", "_count", "_sort", "intent", "service-type"}
)
# The one include the prefetch templates use: the Medications her own orders reference.
_INCLUDES = frozenset({"MedicationRequest:medication"})


def _forwarded_query(relative: str) -> str | None:
    """The query string sent upstream: none for a read, known parameters only for a search; None
    when the request carries anything else."""
    pairs = [(k, v) for k, values in request.args.lists() for v in values]
    if _READ.match(relative):
        return "" if not pairs else None
    if any(k not in _FORWARDED and not (k == "_include" and v in _INCLUDES) for k, v in pairs):
        return None
    return urlencode(pairs)


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""

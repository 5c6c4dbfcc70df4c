"""No access token, JWT, patient id, name or birth date in any log line.

Every fixture scenario request (fhir_fixtures/*/requests/*.json; the built-in requests until those
exist) is sent with a JWT-looking bearer token and a fhirAuthorization access token, with logging
at DEBUG, and every line of the tacro_cds loggers, the root logger and werkzeug is searched. Records
are rendered twice: as the service's JSON lines, and verbosely (every record attribute and the full
traceback), so a secret parked in a record field that today's formatter drops is caught too.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from bench.samples import ACCESS_TOKEN, BIRTH_DATE, FAKE_JWT, FAMILY_NAME, SECRETS, all_requests, with_secrets
from service.ops.logs import JsonFormatter

_STANDARD = set(vars(logging.makeLogRecord({})))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.json = JsonFormatter()
        self.verbose = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        self.lines.append(f"{self.verbose.format(record)} args={record.args!r} extra={extra!r}")


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [logging.getLogger(name) for name in ("tacro_cds", "", "werkzeug", "urllib3", "flask.app")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("werkzeug").setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


class _FhirServer(BaseHTTPRequestHandler):
    """A local FHIR server answering every search with an empty searchset (for the fallback path)."""

    def do_GET(self) -> None:
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # its own request log would print patient ids: not the service's log, and not wanted


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FhirServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()


def _identifiers(body: dict[str, Any]) -> set[str]:
    """The secrets a request carries: token, patient id, and every Patient's id, names and birth date."""
    found = set(SECRETS)
    context = body.get("context") or {}
    if isinstance(context.get("patientId"), str):
        found.add(context["patientId"])
    token = (body.get("fhirAuthorization") or {}).get("access_token")
    if token:
        found.add(token)
    for value in (body.get("prefetch") or {}).values():
        resources = (
            [e.get("resource") for e in value.get("entry", [])]
            if isinstance(value, dict) and value.get("resourceType") == "Bundle"
            else [value]
        )
        for res in resources:
            if isinstance(res, dict) and res.get("resourceType") == "Patient":
                found.update(filter(None, [res.get("id"), res.get("birthDate")]))
                for name in res.get("name") or []:
                    found.update(n for n in [name.get("family"), *(name.get("given") or [])] if n)
    # Very short values would match unrelated text; ids and dates are long enough in practice.
    return {s for s in found if isinstance(s, str) and len(s) >= 4}


def _assert_clean(lines: list[str], secrets: set[str]) -> None:
    assert lines, "nothing was logged: the capture is not working"
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"log line leaks {secret[:6]}…: {line[:300]}"


def _scenarios(fhir_base: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Each request as sent with secrets, plus a variant with no prefetch, so the FHIR fallback (once
    present) fetches with the access token from the local server."""
    out = []
    for name, service, body in all_requests():
        loaded = with_secrets(body)
        out.append((name, service, loaded))
        bare = copy.deepcopy(loaded)
        bare.pop("prefetch", None)
        bare["fhirServer"] = fhir_base
        out.append((f"{name}/fallback", service, bare))
    return out


@pytest.mark.parametrize("auth_required", [False, True], ids=["auth-off", "auth-on-rejected"])
def test_no_secret_or_phi_in_any_log_line(make_app, captured, fhir_server, auth_required):
    app = make_app(
        LOG_LEVEL="DEBUG",
        AUTH_REQUIRED=auth_required,
        ALLOW_HTTP_FHIR="loopback",
        FHIR_TIMEOUT_S=2.0,
        FHIR_SERVER_ALLOWLIST=[],
    )
    client = app.test_client()
    secrets: set[str] = set()
    statuses = []
    for name, service, body in _scenarios(fhir_server):
        secrets |= _identifiers(body)
        response = client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {FAKE_JWT}"})
        statuses.append(response.status_code)
        assert response.status_code < 500, name
    # Errors quoting the input are logged nowhere either: a schema error about the patient's name.
    broken = with_secrets(all_requests()[0][2])
    broken["context"]["patientId"] = {"name": FAMILY_NAME, "born": BIRTH_DATE, "token": ACCESS_TOKEN}
    response = client.post(
        f"/cds-services/{all_requests()[0][1]}", json=broken, headers={"Authorization": f"Bearer {FAKE_JWT}"}
    )
    assert response.status_code == (401 if auth_required else 400)
    if auth_required:
        assert set(statuses) == {401}
    _assert_clean(captured.lines, secrets | {ACCESS_TOKEN, FAKE_JWT, FAKE_JWT.split(".")[1]})


def test_http_client_debug_lines_do_not_carry_patient_urls(make_app, captured, fhir_server):
    """urllib3 logs every request line (path and query: the patient id) at DEBUG; the service keeps
    it quiet even when the root logger is at DEBUG, so the FHIR fallback cannot leak through it."""
    make_app(LOG_LEVEL="DEBUG")
    patient = "pt-Url-Leak-Check-77"
    requests.get(
        f"{fhir_server}/Observation",
        params={"patient": patient},
        timeout=5,
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
    )
    for line in captured.lines:
        assert patient not in line and ACCESS_TOKEN not in line, line

"""Adjudication at /review/: a silent-mode card recorded, a reviewer signed in through the development
EHR marks it wrong with a reason, the per-kind figures and the CSV show it; only listed reviewers get
in; every form needs its CSRF token; no patient data in URLs or logs."""

from __future__ import annotations

import csv
import io
import logging
import re

import pytest
from conftest import SteppingClock
from review_support import REVIEWER, dev_ehr, review_settings, sign_in

from fhir_fixtures import load_request, scenario_clock
from service.ops.logs import JsonFormatter

SIGN = "tacrolimus-order-sign"


@pytest.fixture
def ehr_url():
    with dev_ehr() as url:
        yield url


def _silent_app(make_app, ehr_url, **extra):
    clock = SteppingClock(scenario_clock("trough-high"))
    return make_app(PILOT_MODES={"*": "silent"}, clock=clock, **review_settings(ehr_url), **extra)


def _csrf(page: str, prefix: str) -> str:
    found = re.search(rf'id="{prefix}-csrf_token" name="{prefix}-csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


class _Collect(logging.Handler):
    """The service's log records as its JSON formatter writes them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_silent_card_adjudicated_wrong_shows_in_the_figures_and_the_csv(make_app, ehr_url):
    collect = _Collect()
    logging.getLogger("tacro_cds").addHandler(collect)
    try:
        _adjudicate_wrong(make_app, ehr_url, collect)
    finally:
        logging.getLogger("tacro_cds").removeHandler(collect)


def _adjudicate_wrong(make_app, ehr_url, collect):
    app = _silent_app(make_app, ehr_url)
    client = app.test_client()
    assert client.post(f"/cds-services/{SIGN}", json=load_request("trough-high", "order-sign")).get_json() == {
        "cards": []
    }
    assert client.get("/review/").status_code == 401  # not signed in
    done = sign_in(client)
    assert done.status_code == 303 and done.headers["Location"].endswith("/review/")
    page = client.get("/review/").get_data(as_text=True)
    assert "Signed in as Practitioner/dev-ehr-user" in page
    assert "Tacrolimus level 16.2 ng/mL (2026-11-23)" in page
    assert "<strong>16.2 ng/mL</strong> on 2026-11-23" in page  # what the card quoted
    record = int(re.search(r'id="card-(\d+)"', page).group(1))
    answer = client.post(
        f"/review/cards/{record}",
        data={
            f"c{record}-csrf_token": _csrf(page, f"c{record}"),
            f"c{record}-verdict": "wrong",
            f"c{record}-reason": "level drawn 2 h after the dose",
        },
    )
    assert answer.status_code == 303
    page = client.get("/review/").get_data(as_text=True)
    row = re.search(r'<tr data-kind="trough">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[:6] == ["1", "1", "0", "1", "0", "0 %"]  # recorded, reviewed, right, wrong, unsure, agreement
    assert "level drawn 2 h after the dose" in cells[6]
    exported = client.get("/review/export.csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [
        (r["kind"], r["indicator"], r["mode"], r["shown"], r["verdict"], r["reason"], r["reviewer"]) for r in rows
    ] == [("trough", "warning", "silent", "no", "wrong", "level drawn 2 h after the dose", REVIEWER)]
    assert "tacrolimus 16.2 ng/mL 2026-11-23" in rows[0]["quoted_values"]
    # No patient data in the URLs the pages use, nor in the logs.
    assert "trough-high" not in " ".join(re.findall(r'(?:href|action)="([^"]+)"', page))
    logged = "\n".join(collect.lines)
    assert "review verdict recorded" in logged  # the log says what was done
    for private in ("16.2", "level drawn", "trough-high", "Tacrolimus level"):
        assert private not in logged, private


def test_a_verdict_without_its_csrf_token_is_refused(make_app, ehr_url):
    app = _silent_app(make_app, ehr_url)
    client = app.test_client()
    client.post(f"/cds-services/{SIGN}", json=load_request("trough-high", "order-sign"))
    sign_in(client)
    page = client.get("/review/").get_data(as_text=True)
    record = int(re.search(r'id="card-(\d+)"', page).group(1))
    refused = client.post(f"/review/cards/{record}", data={f"c{record}-verdict": "wrong", f"c{record}-reason": "x"})
    assert refused.status_code == 400
    assert app.extensions["tacro_cds"].pilot_records.get(record).verdict is None


def test_a_signed_in_user_not_on_the_reviewer_list_is_refused(make_app, ehr_url):
    clock = SteppingClock(scenario_clock("trough-high"))
    app = make_app(clock=clock, **review_settings(ehr_url, reviewers=["Practitioner/someone-else"]))
    client = app.test_client()
    answer = sign_in(client)
    assert answer.status_code == 403
    assert "not on this site" in answer.get_data(as_text=True)
    assert client.get("/review/").status_code == 401


def test_review_pages_send_a_strict_csp(make_app, ehr_url):
    app = _silent_app(make_app, ehr_url)
    client = app.test_client()
    sign_in(client)
    response = client.get("/review/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert client.get_cookie("tacro_cds_review", path="/review") is not None
    assert client.get_cookie("tacro_cds_smart") is None  # the SMART app's session is not opened here


@pytest.mark.parametrize("secure", [True, False])
def test_the_review_cookie_is_its_own_httponly_and_secure_as_configured(make_app, ehr_url, secure):
    app = make_app(**{**review_settings(ehr_url), "SMART_COOKIE_SECURE": secure})
    started = app.test_client().get("/review/sign-in")
    (cookie,) = started.headers.getlist("Set-Cookie")
    assert cookie.startswith("tacro_cds_review=")
    assert "Path=/review" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure

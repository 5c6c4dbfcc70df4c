"""The SMART app in a real browser: launched from a card of the development EHR, through its
authorization page and the app's callback, to the page; standalone launch; a denied
authorization; a tampered state. Charts, value tables, keyboard use and axe-core checked on the
page; a screenshot of each patient's page is kept under build/screenshots/."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.browser

# A candidate (no tacrolimus yet), one on tacrolimus with a high trough, one pregnant.
PATIENTS = {
    "rif-eligible": {"trough_chart": False},
    "trough-high": {"trough_chart": True},
    "rif-rpl-pregnant": {"trough_chart": True},
}


def open_chart_and_launch(page, stack, patient: str, hook: str = "patient-view"):
    page.goto(stack["ehr"] + "/")
    page.locator(f"#patient-{patient} button[data-hook='{hook}']").click()
    cards = page.locator("article.card")
    assert cards.count() > 0, f"no cards for {patient}: {page.inner_text('main')[:1500]}"
    page.locator("button.smart-link").first.click()
    page.wait_for_url(re.compile(r"/oauth/authorize\?"))


def allow(page):
    page.locator("#allow").click()
    page.wait_for_url(re.compile(r"/smart/view/[A-Za-z0-9_-]+$"))  # each launch has its own page


def axe_violations(page, axe_source: str) -> list[dict]:
    page.evaluate(axe_source + "\n;0")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


@pytest.mark.parametrize("patient", list(PATIENTS))
def test_card_link_to_the_page(page, stack, axe_source, patient):
    open_chart_and_launch(page, stack, patient)
    assert "launch" in page.url and "code_challenge_method=S256" in page.url
    allow(page)
    assert page.locator("h1").first.inner_text().startswith("Tacrolimus course"), page.inner_text("main")[:800]
    assert patient in page.locator(".banner").inner_text()
    # The Th1/Th2 chart: matplotlib's SVG inline, drawn (non-empty paths), with its value table.
    ratio_svg = page.locator("#ratio-chart svg[role='img']")
    assert ratio_svg.count() == 1 and ratio_svg.bounding_box()["width"] > 500
    assert ratio_svg.locator("path").count() > 5
    assert page.locator("#ratio-table tbody tr").count() >= 1
    if PATIENTS[patient]["trough_chart"]:
        assert page.locator("#trough-chart svg[role='img'] path").count() > 5
        assert page.locator("#trough-table tbody tr").count() >= 1
    else:
        assert page.locator("#trough-missing").is_visible()
        assert page.locator("#no-tacrolimus").is_visible()
    assert page.locator(".card-list li").count() >= 1
    assert page.locator("#safety-table tbody tr").count() == 6
    if patient == "trough-high":
        assert "16.2" in page.locator("#trough-table").inner_text()
        assert "above target" in page.locator("#trough-table").inner_text()
    if patient == "rif-rpl-pregnant":
        assert "pregnant" in page.locator(".status-line").inner_text()
    # Usable at 1024 px: nothing wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    # By keyboard: the first Tab reaches the skip link, and the card details open with Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator(".card-list summary").first.focus()
    page.keyboard.press("Enter")
    assert page.locator(".card-list details").first.get_attribute("open") is not None
    assert page.csp_errors == [], page.csp_errors  # the page works under its own CSP
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"smart-app-{patient}.png"), full_page=True)
    assert axe_violations(page, axe_source) == []


def test_order_select_card_names_the_unsaved_order(page, stack):
    # The order-select card is about a draft the EHR has not saved: the app says so by its id.
    open_chart_and_launch(page, stack, "rif-eligible", hook="order-select")
    allow(page)
    assert page.locator("h1").first.inner_text().startswith("Tacrolimus course"), page.inner_text("main")[:800]
    assert "is not on the FHIR server" in page.locator(".note").first.inner_text()


def test_standalone_launch(page, stack):
    page.goto(stack["cds"] + "/smart/launch")
    page.wait_for_url(re.compile(r"/oauth/authorize\?"))
    assert "launch%2Fpatient" in page.url or "launch/patient" in page.url
    page.select_option("#patient", "trough-high")
    allow(page)
    assert "trough-high" in page.locator(".banner").inner_text()
    assert page.locator("#trough-chart svg").count() == 1


def test_denied_authorization(page, stack):
    open_chart_and_launch(page, stack, "trough-high")
    page.locator("#deny").click()
    page.wait_for_url(re.compile(r"/smart/callback\?"))
    assert page.locator("h1").inner_text() == "Access was not granted"
    assert "Launch the app again" in page.content()


def test_tampered_state(page, stack):
    open_chart_and_launch(page, stack, "trough-high")

    def tamper(route):
        # The EHR's redirect back to the app, with one character added to its state.
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        location = response.headers["location"]
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert "code" in query
        query["state"] = "x" + query["state"]
        headers = {**response.headers, "location": f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"}
        route.fulfill(response=response, headers=headers)

    page.route(re.compile(r".*/oauth/authorize\?.*"), tamper)
    page.locator("#allow").click()
    page.wait_for_url(re.compile(r"/smart/callback\?"))
    assert page.locator("h1").inner_text() == "This sign-in does not belong to this browser session"
    # and no session was made: the page asks for a launch
    page.goto(stack["cds"] + "/smart/")
    assert page.locator("h1").inner_text() == "Your session has ended"

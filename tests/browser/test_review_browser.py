"""Real-browser tests of the pilot's pages: a card recorded in silent mode, a reviewer signing in
through the development EHR and marking it wrong, the per-kind figures; the rulebook as printed; the
analytics after feedback from the CDS Hooks flow. axe-core on each page; screenshots of each under
build/screenshots/ (review-adjudication.png, review-rulebook.png, review-analytics.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser.conftest import SCREENSHOTS, Served, free_port

SIGN = "tacrolimus-order-sign"
SELECT = "tacrolimus-order-select"


def axe_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    page.evaluate(axe_source + "\n;0")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]


@pytest.fixture(scope="module")
def review_stack(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The service (order-sign silent, the others live) and the development EHR (its authorization
    server only: the hook calls carry their prefetch, so no FHIR server is read)."""
    from fhir_fixtures import FIXTURES_DIR, scenario_clock
    from service import create_app
    from tacro_dev.dev_ehr import DevEhrSettings, create_dev_ehr

    work = tmp_path_factory.mktemp("review-stack")
    cds_port, ehr_port = free_port(), free_port()
    cds_url, ehr_url = f"http://127.0.0.1:{cds_port}", f"http://127.0.0.1:{ehr_port}"
    ehr = DevEhrSettings(
        fhir_url="http://127.0.0.1:9/fhir",
        fhir_token=None,
        cds_url=cds_url,
        public_url=ehr_url,
        fixtures_dir=FIXTURES_DIR,
    )
    clock = scenario_clock("trough-high")
    service = create_app(
        {
            "AUTH_REQUIRED": False,
            "PILOT_MODES": {SIGN: "silent"},
            "REVIEWERS": ["Practitioner/dev-ehr-user"],
            "ALLOW_HTTP_FHIR": "loopback",
            "SMART_COOKIE_SECURE": False,
            "SMART_STANDALONE_ISS": ehr_url + "/fhir",
            "DATA_DIR": str(work / "data"),
            "FEEDBACK_DB": f"sqlite:///{work / 'feedback.sqlite'}",
            "LOG_LEVEL": "WARNING",
        },
        clock=lambda: clock,
    )
    servers = [Served(service, cds_port), Served(create_dev_ehr(ehr), ehr_port)]
    try:
        yield {"cds": cds_url, "ehr": ehr_url}
    finally:
        for s in servers:
            s.stop()


def _sign_in(page: Any, stack: dict[str, str]) -> None:
    page.goto(stack["cds"] + "/review/sign-in")
    page.wait_for_url(re.compile(r"/oauth/authorize\?"))
    page.locator("#allow").click()
    page.wait_for_url(re.compile(r"/review/$"))


def test_silent_card_adjudicated_in_the_browser(page, review_stack, axe_source):
    from fhir_fixtures import load_request

    for scenario in ("trough-high", "hyperkalaemia"):
        answer = requests.post(f"{review_stack['cds']}/cds-services/{SIGN}", json=load_request(scenario, "order-sign"))
        assert answer.json() == {"cards": []}  # silent: the EHR gets no card
    _sign_in(page, review_stack)
    trough = page.locator("li.card", has_text="16.2 ng/mL (2026-11-23)")
    assert trough.locator(".quoted").inner_text().count("16.2 ng/mL") == 1
    trough.get_by_label("Wrong").check()
    trough.get_by_label("Reason").fill("Level drawn 2 hours after the evening dose: not a trough")
    trough.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/review/#card-\d+$"))
    critical = page.locator("li.card", has_text="Potassium 5.8 mmol/L")
    critical.get_by_label("Right").check()
    critical.get_by_label("Reason").fill("Contraindicated with this potassium")
    critical.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/review/#card-\d+$"))
    row = page.locator('tr[data-kind="trough"] td')
    assert row.all_inner_texts()[:6] == ["1", "1", "0", "1", "0", "0 %"]
    assert "not a trough" in row.nth(6).inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review-adjudication.png"), full_page=True)
    assert axe_violations(page, axe_source) == []
    assert page.csp_errors == []
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert "Level drawn 2 hours after the evening dose: not a trough" in text


def test_analytics_after_feedback_in_the_browser(page, review_stack, axe_source):
    from fhir_fixtures import load_request

    cds = review_stack["cds"]
    for scenario, outcome in (
        ("trough-high", "overridden"),
        ("azole-fluconazole", "accepted"),
        ("trough-high", "accepted"),
    ):
        card = requests.post(f"{cds}/cds-services/{SELECT}", json=load_request(scenario, "order-select")).json()[
            "cards"
        ][0]
        entry: dict[str, Any] = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": "2026-11-25T09:00:00Z"}
        if outcome == "overridden":
            entry["overrideReason"] = {"reason": card["overrideReasons"][0]}
        else:
            entry["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
        assert requests.post(f"{cds}/cds-services/{SELECT}/feedback", json={"feedback": [entry]}).json() == {
            "stored": 1
        }
    _sign_in(page, review_stack)
    page.get_by_role("link", name="Analytics").click()
    page.wait_for_url(re.compile(r"/review/analytics"))
    cells = page.locator('tr[data-kind="trough"] td').all_inner_texts()
    assert cells[:3] == ["2", "1", "1"]
    assert page.locator("img.chart").count() == 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review-analytics.png"), full_page=True)
    assert axe_violations(page, axe_source) == []
    assert page.csp_errors == []


def test_rulebook_renders_and_its_hash_follows_a_site_number(page, axe_source, tmp_path, monkeypatch):
    import yaml

    from fhir_fixtures import FIXTURES_DIR
    from service.cli.main import main as cli_main

    monkeypatch.setenv("TACRO_CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TACRO_CDS_SITE_CONFIG", raising=False)
    assert cli_main(["rulebook", "--out", str(tmp_path / "shipped"), "--fixtures", str(FIXTURES_DIR)]) == 0
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"protocol": {"trough": {"target_high": {"value": 7}}}}), encoding="utf-8")
    assert (
        cli_main(["rulebook", "--site", str(site), "--out", str(tmp_path / "site"), "--fixtures", str(FIXTURES_DIR)])
        == 0
    )
    page.goto((tmp_path / "site" / "rulebook.html").as_uri())
    site_hash = page.locator("#knowledge-hash").inner_text()
    changed = page.locator('tr[data-path="protocol.trough.target_high.value"]')
    assert changed.locator("td").nth(1).inner_text() == "7"
    assert "changed by the site" in changed.inner_text()
    assert page.locator("tr.to-confirm").count() > 0
    page.screenshot(path=str(SCREENSHOTS / "review-rulebook.png"), full_page=False)
    changed.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "review-rulebook-numbers.png"), full_page=False)
    assert axe_violations(page, axe_source) == []
    page.goto((tmp_path / "shipped" / "rulebook.html").as_uri())
    assert page.locator("#knowledge-hash").inner_text() != site_hash

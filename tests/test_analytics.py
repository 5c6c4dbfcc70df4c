"""/review/analytics: cards shown and the feedback sent on them through the CDS Hooks feedback
endpoint, per card kind and override reason, over time, per issuer and tenant."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from conftest import SteppingClock
from review_support import dev_ehr, review_settings, sign_in

from fhir_fixtures import load_request, scenario_clock
from service.review.analytics import per_kind_chart, summarise

SIGN = "tacrolimus-order-sign"


@pytest.fixture
def ehr_url():
    with dev_ehr() as url:
        yield url


def _row(page: str, kind: str) -> list[str]:
    row = re.search(rf'<tr data-kind="{re.escape(kind)}">(.*?)</tr>', page, re.S)
    assert row, page[:3000]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row.group(1), re.S)]


def test_analytics_after_feedback_from_the_cds_hooks_flow(make_app, ehr_url):
    clock = SteppingClock(scenario_clock("trough-high"))
    app = make_app(clock=clock, **review_settings(ehr_url))
    client = app.test_client()
    first = client.post(f"/cds-services/{SIGN}", json=load_request("trough-high", "order-sign")).get_json()["cards"]
    second = client.post(f"/cds-services/{SIGN}", json=load_request("trough-high", "order-sign")).get_json()["cards"]
    reason = first[0]["overrideReasons"][0]
    when = clock().isoformat().replace("+00:00", "Z")
    stored = client.post(
        f"/cds-services/{SIGN}/feedback",
        json={
            "feedback": [
                {
                    "card": first[0]["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {"reason": reason},
                    "outcomeTimestamp": when,
                },
                {
                    "card": second[0]["uuid"],
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": second[0]["suggestions"][0]["uuid"]}],
                    "outcomeTimestamp": when,
                },
            ]
        },
    ).get_json()
    assert stored == {"stored": 2}
    sign_in(client)
    response = client.get("/review/analytics")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    cells = _row(page, "trough")
    assert cells[:5] == ["trough", "2", "1", "1", "50 %"]
    assert f"({reason['code']}): 1" in cells[5]
    assert page.count('src="data:image/png;base64,') == 2  # the charts, with the tables under them
    assert "2026-11-25" in page  # the day of the feedback


def test_per_issuer_and_tenant_figures_are_kept_apart():
    day = datetime(2026, 11, 25, 9)
    rows = [
        {
            "at": day,
            "service": SIGN,
            "kind": "trough",
            "issuer": "https://a.example",
            "tenant": "t1",
            "event": "shown",
            "reason": None,
        },
        {
            "at": day,
            "service": SIGN,
            "kind": "trough",
            "issuer": "https://a.example",
            "tenant": "t1",
            "event": "overridden",
            "reason": "Not applicable (cds-not-applicable)",
        },
        {
            "at": day,
            "service": SIGN,
            "kind": "trough",
            "issuer": "https://b.example",
            "tenant": None,
            "event": "shown",
            "reason": None,
        },
    ]
    only_a = summarise(rows, issuer="https://a.example", tenant="t1")
    assert [(k.kind, k.shown, k.overridden) for k in only_a.kinds] == [("trough", 1, 1)]
    only_b = summarise(rows, issuer="https://b.example")
    assert [(k.kind, k.shown, k.overridden) for k in only_b.kinds] == [("trough", 1, 0)]
    everyone = summarise(rows)
    assert everyone.callers == [("https://a.example", "t1"), ("https://b.example", None)]
    assert [(k.shown, k.overridden) for k in everyone.kinds] == [(2, 1)]
    assert per_kind_chart(everyone.kinds).startswith("data:image/png;base64,")


def test_analytics_needs_a_signed_in_reviewer(make_app, ehr_url):
    app = make_app(**review_settings(ehr_url))
    assert app.test_client().get("/review/analytics").status_code == 401

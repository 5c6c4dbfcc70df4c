"""Pilot modes: silent records and answers no cards, shadow answers only the listed practitioners,
live is unchanged; /readyz and the metrics say each service's mode; recording keeps the store's
retention and never stores a token."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from conftest import SteppingClock
from sqlalchemy import select

from fhir_fixtures import load_request, scenario_clock
from service.config import ConfigError
from service.storage.pilot import pilot_cards

SCENARIO = "trough-high"
SIGN = "tacrolimus-order-sign"
LISTED = "Practitioner/pilot-pharmacist"


def _app(make_app, **settings):
    clock = SteppingClock(scenario_clock(SCENARIO))
    return make_app(SMART_APP_ENABLED=False, clock=clock, **settings), clock


def _request(user: str | None = None) -> dict:
    body = copy.deepcopy(load_request(SCENARIO, "order-sign"))
    if user:
        body["context"]["userId"] = user
    return body


def _recorded(app) -> list:
    rt = app.extensions["tacro_cds"]
    with rt.store.engine.begin() as conn:
        return conn.execute(select(pilot_cards).order_by(pilot_cards.c.id)).all()


def test_live_answers_cards_and_records_nothing(make_app):
    app, _ = _app(make_app)
    answer = app.test_client().post(f"/cds-services/{SIGN}", json=_request()).get_json()
    assert [c["indicator"] for c in answer["cards"]] == ["warning"]
    assert _recorded(app) == []


def test_silent_answers_no_cards_and_records_them_with_what_they_quoted(make_app):
    app, _ = _app(make_app, PILOT_MODES={SIGN: "silent"})
    response = app.test_client().post(f"/cds-services/{SIGN}", json=_request())
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    (row,) = _recorded(app)
    assert (row.mode, row.shown, row.kind, row.indicator) == ("silent", False, "trough", "warning")
    assert row.summary.startswith("Tacrolimus level 16.2 ng/mL (2026-11-23)")
    # The value the card quoted, with its date, and the order the hook drafted: not the whole chart.
    assert [(v["what"], v["value"], v["date"][:10]) for v in row.quoted["values"]] == [
        ("tacrolimus", "16.2 ng/mL", "2026-11-23")
    ]
    assert row.quoted["orders"] == []  # the card names no medication order; the drafted lab order is no drug
    assert row.card["summary"] == row.summary and row.patient_id == "trough-high"


def test_a_recorded_interaction_card_quotes_the_drafted_order(make_app):
    clock = SteppingClock(scenario_clock("azole-fluconazole"))
    app = make_app(SMART_APP_ENABLED=False, clock=clock, PILOT_MODES={"*": "silent"})
    app.test_client().post(f"/cds-services/{SIGN}", json=load_request("azole-fluconazole", "order-sign"))
    (row,) = _recorded(app)
    drafts = [o for o in row.quoted["orders"] if o["draft"]]
    assert [o["order"].lower() for o in drafts] == ["fluconazole"]
    assert drafts[0]["source"] == "MedicationRequest/azole-fluconazole-draft15"


def test_silent_for_one_service_leaves_the_others_live(make_app):
    app, _ = _app(make_app, PILOT_MODES={SIGN: "silent"})
    body = load_request(SCENARIO, "patient-view")
    answer = app.test_client().post("/cds-services/tacrolimus-patient-view", json=body).get_json()
    assert len(answer["cards"]) == 1


def test_shadow_shows_the_listed_practitioner_only_in_the_same_run(make_app):
    app, _ = _app(make_app, PILOT_MODES={"*": "shadow"}, PILOT_SHADOW_USERS=[LISTED])
    client = app.test_client()
    listed = client.post(f"/cds-services/{SIGN}", json=_request(LISTED)).get_json()
    other = client.post(f"/cds-services/{SIGN}", json=_request("Practitioner/someone-else")).get_json()
    assert [c["indicator"] for c in listed["cards"]] == ["warning"]
    assert other == {"cards": []}
    rows = _recorded(app)
    assert [(r.mode, r.shown, r.user_id) for r in rows] == [
        ("shadow", True, LISTED),
        ("shadow", False, "Practitioner/someone-else"),
    ]


def test_a_per_issuer_mode_overrides_the_service_mode():
    from service.hooks.pilot import pilot_policy

    policy = pilot_policy(
        {"*": "silent", SIGN: "shadow", "https://ehr.example.org": {SIGN: "live"}}, [], [SIGN, "other-service"]
    )
    assert policy.mode(SIGN, "https://ehr.example.org") == "live"
    assert policy.mode(SIGN, "https://another.example.org") == "shadow"
    assert policy.mode("other-service", "https://ehr.example.org") == "silent"
    assert policy.mode("other-service", None) == "silent"


def test_shadow_matches_an_absolute_fhir_user_url():
    from service.hooks.pilot import pilot_policy

    policy = pilot_policy({SIGN: "shadow"}, [LISTED], [SIGN])
    assert policy.shows("shadow", [None, f"https://ehr.example.org/fhir/{LISTED}"])
    assert not policy.shows("shadow", ["https://ehr.example.org/fhir/Practitioner/other"])
    assert not policy.shows("silent", [LISTED])


@pytest.mark.parametrize(
    ("modes", "said"),
    [
        ({"no-such-service": "silent"}, "'no-such-service' is neither a service id"),
        ({SIGN: "quiet"}, "mode must be one of live, silent, shadow"),
        ({"https://ehr.example.org": {SIGN: "loud"}}, "issuer https://ehr.example.org"),
    ],
)
def test_a_wrong_pilot_setting_stops_start_up_naming_it(make_app, modes, said):
    with pytest.raises(ConfigError, match="PILOT_MODES") as caught:
        make_app(PILOT_MODES=modes)
    assert said in str(caught.value)


def test_readyz_and_metrics_say_each_services_mode(make_app):
    app, _ = _app(make_app, PILOT_MODES={SIGN: "silent", "tacrolimus-order-select": "shadow"}, METRICS_OPEN=True)
    client = app.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["pilotModes"] == {
        "tacrolimus-order-select": "shadow",
        "tacrolimus-order-sign": "silent",
        "tacrolimus-patient-view": "live",
    }
    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'tacro_cds_pilot_mode{mode="silent",service="tacrolimus-order-sign"} 1.0' in exposition
    assert 'tacro_cds_pilot_mode{mode="live",service="tacrolimus-order-sign"} 0.0' in exposition
    assert 'tacro_cds_pilot_mode{mode="live",service="tacrolimus-patient-view"} 1.0' in exposition


def test_recording_never_stores_the_fhir_token(make_app):
    app, _ = _app(make_app, PILOT_MODES={"*": "silent"})
    body = _request()
    secret = "pilot-secret-access-token-7f3a"
    body["fhirAuthorization"] = {
        "access_token": secret,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "tacro-cds",
    }
    body["fhirServer"] = "https://ehr.example.org/fhir"
    app.test_client().post(f"/cds-services/{SIGN}", json=body)
    rows = _recorded(app)
    assert rows
    assert all(secret not in json.dumps(row._asdict(), default=str) for row in rows)


def test_recorded_cards_follow_the_issued_card_retention(make_app):
    app, clock = _app(make_app, PILOT_MODES={"*": "silent"}, ISSUED_CARDS_RETENTION_DAYS=7)
    client = app.test_client()
    client.post(f"/cds-services/{SIGN}", json=_request())
    records = app.extensions["tacro_cds"].pilot_records
    (row,) = _recorded(app)
    assert records.adjudicate(row.id, reviewer=LISTED, verdict="wrong", reason="old result")
    clock.advance(days=6)
    assert records.purge() == 0
    clock.now += timedelta(days=2)
    assert records.purge() == 1
    assert _recorded(app) == [] and records.get(row.id) is None

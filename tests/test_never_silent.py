"""Never silent on real charts: a fixture patient with one real-world shape changed at a time.

Each result, order and prefetch key that arrives is either used or named on a card, and a decision
never rests on an older result while a newer one is ignored. The charts are the fixture scenarios
(``fhir_fixtures/``) answered through the HTTP API with the scenario's clock; each test changes one
shape of one resource, as EHRs and laboratory interfaces send it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fhir_fixtures import load_request, scenario_clock
from service import create_app

Request = dict[str, Any]
Resource = dict[str, Any]


@pytest.fixture(scope="module")
def ask(tmp_path_factory) -> Callable[[str, str, Callable[[Request], None] | None], list[dict[str, Any]]]:
    """Answer one scenario's request for one hook after ``change`` edited it; the cards."""
    apps: dict[Any, Any] = {}

    def run(scenario: str, hook: str = "patient-view", change: Callable[[Request], None] | None = None):
        clock = scenario_clock(scenario)
        if clock not in apps:
            app = create_app(
                {
                    "AUTH_REQUIRED": False,
                    "LOG_LEVEL": "ERROR",
                    "SMART_APP_ENABLED": False,
                    "FEEDBACK_DB": f"sqlite:///{tmp_path_factory.mktemp('silent') / 'f.sqlite'}",
                },
                clock=lambda: clock,
            )
            ids = {s["hook"]: s["id"] for s in app.test_client().get("/cds-services").get_json()["services"]}
            apps[clock] = (app, ids)
        app, ids = apps[clock]
        body = copy.deepcopy(load_request(scenario, hook))
        if change is not None:
            change(body)
        response = app.test_client().post(f"/cds-services/{ids[hook]}", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)[:800]
        cards: list[dict[str, Any]] = response.get_json()["cards"]
        return cards

    return run


def resources(body: Request, key: str) -> Iterator[Resource]:
    value = body["prefetch"].get(key)
    for entry in (value or {}).get("entry") or []:
        yield entry["resource"]


def observation(body: Request, key: str, code: str, *, newest: bool = True) -> Resource:
    """The newest (or oldest) Observation of ``code`` in the prefetch key."""
    found = sorted(
        (r for r in resources(body, key) if r["code"]["coding"][0]["code"] == code),
        key=lambda r: r.get("effectiveDateTime", ""),
    )
    return found[-1] if newest else found[0]


def summaries(cards: list[dict[str, Any]]) -> list[str]:
    return [f"{c['indicator']}: {c['summary']}" for c in cards]


def critical_with(cards: list[dict[str, Any]], *words: str) -> dict[str, Any]:
    hits = [c for c in cards if c["indicator"] == "critical" and all(w in c["summary"] + c["detail"] for w in words)]
    assert hits, summaries(cards)
    return hits[0]


TROUGH = "77348-1"
POTASSIUM = "2823-3"


# ---- 1. a limit instead of a value ----------------------------------------------------------------


def test_trough_reported_above_a_limit_is_critical(ask):
    """'>30 ng/mL' is above the 20 ng/mL critical level whatever the exact value."""

    def change(body: Request) -> None:
        observation(body, "tacrolimusLevels", TROUGH)["valueQuantity"].update(value=30, comparator=">")

    card = critical_with(ask("trough-critical", "patient-view", change), ">30 ng/mL")
    assert "cannot be compared" not in card["summary"]


def test_potassium_reported_above_a_limit_is_critical_and_the_older_value_is_not_quoted(ask):
    def change(body: Request) -> None:
        observation(body, "chemistry", POTASSIUM)["valueQuantity"].update(value=7, comparator=">")

    cards = ask("hyperkalaemia", "patient-view", change)
    card = critical_with(cards, ">7 mmol/L")
    assert "4.1" not in card["summary"] + card["detail"]
    assert not any("4.1 mmol/L" in c["summary"] for c in cards), summaries(cards)


def test_a_trough_below_a_limit_under_the_critical_level_is_not_called_critical(ask):
    """'<25' may be anything below 25: no critical card, the result is shown as reported."""

    def change(body: Request) -> None:
        observation(body, "tacrolimusLevels", TROUGH)["valueQuantity"].update(value=25, comparator="<")

    cards = ask("trough-critical", "patient-view", change)
    assert not [c for c in cards if c["indicator"] == "critical"], summaries(cards)
    assert any("<25 ng/mL" in c["summary"] for c in cards), summaries(cards)


# ---- 2. a number sent as text ---------------------------------------------------------------------


def test_potassium_sent_as_text_is_read(ask):
    def change(body: Request) -> None:
        k = observation(body, "chemistry", POTASSIUM)
        del k["valueQuantity"]
        k["valueString"] = "6.9"

    card = critical_with(ask("hyperkalaemia", "patient-view", change), "6.9")
    assert "4.1" not in card["summary"]


def test_text_that_is_no_number_is_shown_and_no_older_result_decides(ask):
    def change(body: Request) -> None:
        k = observation(body, "chemistry", POTASSIUM)
        del k["valueQuantity"]
        k["valueString"] = "see report"

    cards = ask("hyperkalaemia", "patient-view", change)
    named = [c for c in cards if "see report" in c["summary"]]
    assert named, summaries(cards)
    assert not any("4.1" in c["summary"] for c in cards), summaries(cards)


# ---- 3. preliminary ------------------------------------------------------------------------------


def test_a_preliminary_critical_trough_is_shown_as_critical_and_pending(ask):
    def change(body: Request) -> None:
        observation(body, "tacrolimusLevels", TROUGH)["status"] = "preliminary"

    card = critical_with(ask("trough-critical", "patient-view", change), "21.5", "preliminary")
    assert "final pending" in card["summary"]


# ---- 4. timing given other than as effectiveDateTime -----------------------------------------------


@pytest.mark.parametrize(
    "timing",
    [
        {"effectivePeriod": {"start": "2026-11-24T07:30:00Z", "end": "2026-11-24T07:35:00Z"}},
        {"effectivePeriod": {"start": "2026-11-24T07:30:00Z"}},
        {"effectiveTiming": {"event": ["2026-11-24T07:30:00Z"]}},
        {"effectiveInstant": "2026-11-24T07:30:00.000Z"},
    ],
    ids=["period", "period-start-only", "timing", "instant"],
)
def test_a_trough_timed_otherwise_is_read(ask, timing):
    def change(body: Request) -> None:
        level = observation(body, "tacrolimusLevels", TROUGH)
        del level["effectiveDateTime"]
        level.pop("issued", None)
        level.update(timing)

    critical_with(ask("trough-critical", "patient-view", change), "21.5")


# ---- 7. a missing key removes only the checks that read it ---------------------------------------


def missing_card(cards: list[dict[str, Any]]) -> dict[str, Any]:
    found = [c for c in cards if "data not available" in c["summary"] or "checks not made" in c["summary"]]
    assert len(found) == 1, summaries(cards)
    return found[0]


def drop(*keys: str) -> Callable[[Request], None]:
    def change(body: Request) -> None:
        for key in keys:
            del body["prefetch"][key]

    return change


def test_missing_pregnancy_tests_do_not_hide_a_critical_potassium(ask):
    def change(body: Request) -> None:
        observation(body, "chemistry", POTASSIUM)["valueQuantity"]["value"] = 6.4
        drop("pregnancyTests")(body)

    cards = ask("hyperkalaemia", "patient-view", change)
    critical_with(cards, "6.4 mmol/L")
    card = missing_card(cards)
    assert (
        "- Pregnancy thresholds for glucose and blood pressure (pregnancy status unknown): no pregnancy tests"
        in (card["detail"])
    )
    assert "- Glucose:" not in card["detail"]
    assert "- Potassium:" not in card["detail"]


def test_a_missing_blood_count_does_not_hide_acute_kidney_injury(ask):
    cards = ask("creatinine-aki", "patient-view", drop("cbc"))
    critical_with(cards, "acute kidney injury")
    assert "- Monitoring schedule: no blood counts" in missing_card(cards)["detail"]


def test_missing_medication_orders_do_not_hide_a_critical_trough(ask):
    """The level on record is evidence of therapy; the trough is judged on the level."""
    cards = ask("trough-critical", "patient-view", drop("medicationRequests"))
    critical_with(cards, "21.5")
    assert "- When to draw the next tacrolimus trough: no medication orders" in missing_card(cards)["detail"]


def test_missing_chemistry_does_not_hide_the_spironolactone_interaction(ask):
    cards = ask("hyperkalaemia", "order-select", drop("chemistry"))
    assert any("spironolactone" in c["summary"].lower() for c in cards), summaries(cards)
    assert "- Potassium: no kidney, potassium, glucose and liver results" in missing_card(cards)["detail"]


# ---- 8. a Medication that did not come affects its order only --------------------------------------


def test_an_unresolved_medication_reference_affects_only_that_order(ask):
    def change(body: Request) -> None:
        body["prefetch"]["medicationRequests"]["entry"].append(
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "other-order",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": f"Patient/{body['context']['patientId']}"},
                    "medicationReference": {"reference": "Medication/not-sent"},
                }
            }
        )

    cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    assert not [c for c in cards if "data not available" in c["summary"]], summaries(cards)
    assert any("could not be resolved" in c.get("detail", "") for c in cards), summaries(cards)


# ---- 9. evidence of therapy ------------------------------------------------------------------------


def test_a_level_on_record_is_evidence_of_therapy_without_an_active_order(ask):
    def change(body: Request) -> None:
        body["prefetch"]["medicationRequests"]["entry"] = []
        body["prefetch"]["medicationRequests"]["total"] = 0

    cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    assert not any("candidate" in c["summary"].lower() for c in cards), summaries(cards)


def test_a_stopped_tacrolimus_order_is_read_apart_from_current_ones(ask):
    def change(body: Request) -> None:
        for order in resources(body, "medicationRequests"):
            order["status"] = "stopped"

    cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")


# ---- 14. an order not to give the drug -------------------------------------------------------------


def test_do_not_perform_is_not_an_order_to_give_it(ask):
    def change(body: Request) -> None:
        body["context"]["draftOrders"]["entry"][0]["resource"]["doNotPerform"] = True

    cards = ask("dose-total-two-drafts", "order-sign", change)
    assert not any("5 mg/day" in c["summary"] for c in cards), summaries(cards)


# ---- 10-12. data the rules need are asked for ----------------------------------------------------


def test_a_completed_transfer_is_fetched_and_dates_the_cycle():
    """The templates ask for completed transfers (answered here by the fixture server over the chart)."""
    from cards.knowledge import load_knowledge
    from fhir_fixtures import FIXTURES_DIR, read_json
    from fhir_fixtures.matcher import search, substitute
    from service.hooks.base import HookRequest
    from service.hooks.extract import build_facts
    from service.hooks.templates import prefetch_templates

    chart = [e["resource"] for e in read_json(FIXTURES_DIR / "trough-critical" / "patient.json")["entry"]]
    transfer = next(r for r in chart if r["resourceType"] == "ServiceRequest")
    transfer["status"] = "completed"
    context = {"patientId": "trough-critical", "userId": "Practitioner/p"}
    found = search(substitute(prefetch_templates(load_knowledge())["transferRequests"], context), chart)
    assert found is not None and [e["resource"]["id"] for e in found.get("entry", [])] == [transfer["id"]]
    facts = build_facts(
        HookRequest(hook="patient-view", hook_instance="i", context=context),
        {"transferRequests": [e["resource"] for e in found["entry"]]},
        load_knowledge(),
    )
    assert facts.pregnancy is not None and not facts.unusable


def stopped_fluconazole(patient: str, ended: str) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": "fluconazole-course",
        "status": "stopped",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": "2026-11-15",
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "4450", "display": "fluconazole"}
            ]
        },
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {"start": "2026-11-16", "end": ended},
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": 150, "unit": "mg"}}],
            }
        ],
    }


def test_a_recently_stopped_azole_still_counts(ask):
    def change(body: Request) -> None:
        body["prefetch"]["endedMedicationRequests"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": stopped_fluconazole(body["context"]["patientId"], "2026-11-23")}],
        }

    cards = ask("trough-in-range", "patient-view", change)
    assert any("fluconazole" in c["summary"].lower() and "stopped" in c["summary"] for c in cards), summaries(cards)


def test_a_stopped_azole_past_its_effect_window_does_not_count(ask):
    def change(body: Request) -> None:
        body["prefetch"]["endedMedicationRequests"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": stopped_fluconazole(body["context"]["patientId"], "2026-11-01")}],
        }

    cards = ask("trough-in-range", "patient-view", change)
    assert not any("fluconazole" in c["summary"].lower() for c in cards), summaries(cards)


def test_a_live_vaccine_given_five_days_ago_is_seen(ask):
    def change(body: Request) -> None:
        body["prefetch"]["immunizations"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Immunization",
                        "id": "mmr",
                        "status": "completed",
                        "patient": {"reference": f"Patient/{body['context']['patientId']}"},
                        "vaccineCode": {
                            "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03", "display": "MMR"}]
                        },
                        "occurrenceDateTime": "2026-11-20",
                    }
                }
            ],
        }

    cards = ask("trough-in-range", "patient-view", change)
    hits = [c for c in cards if "given on" in c["summary"] and "vaccine" in c["summary"].lower()]
    assert hits and hits[0]["indicator"] == "warning", summaries(cards)


# ---- 13. codes real systems use ------------------------------------------------------------------


def recode(key: str, old: str, system: str, new: str) -> Callable[[Request], None]:
    def change(body: Request) -> None:
        for resource in resources(body, key):
            for coding in resource["code"]["coding"]:
                if coding["code"] == old:
                    coding.update(system=system, code=new)

    return change


LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"


def test_quantitative_hcg_19080_1_tells_the_pregnancy(ask):
    cards = ask("pregnancy-known-from-hcg", "patient-view", recode("pregnancyTests", "21198-7", LOINC, "19080-1"))
    assert any("in pregnancy meets the gestational diabetes criterion" in c["summary"] for c in cards), summaries(cards)


def test_blood_pressure_panel_55284_4_is_read(ask):
    cards = ask("pregnancy-known-from-hcg", "patient-view", recode("vitals", "85354-9", LOINC, "55284-4"))
    assert any("142/92" in c["summary"] for c in cards), summaries(cards)


def test_normal_pregnancy_72892002_is_a_pregnancy(ask):
    cards = ask("rif-rpl-pregnant", "patient-view", recode("conditions", "77386006", SCT, "72892002"))
    assert any(c["summary"].startswith("Pregnant on tacrolimus") for c in cards), summaries(cards)


def test_a_dose_in_each_counts_capsules(ask):
    def change(body: Request) -> None:
        for entry in body["context"]["draftOrders"]["entry"]:
            entry["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(unit="each", code="ea")
            entry["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].pop("system")

    critical_with(ask("dose-total-two-drafts", "order-sign", change), "5 mg/day")


# ---- 15. another patient's data --------------------------------------------------------------------


def test_another_patients_results_are_refused_and_counted(ask):
    def change(body: Request) -> None:
        observation(body, "tacrolimusLevels", TROUGH)["subject"] = {"reference": "Patient/someone-else"}

    cards = ask("trough-critical", "patient-view", change)
    assert not any("21.5" in c["summary"] for c in cards), summaries(cards)
    refused = [c for c in cards if "of another patient refused" in c["summary"]]
    assert refused and refused[0]["indicator"] == "warning" and refused[0]["summary"].startswith("1 record")


def test_an_absolute_subject_reference_to_her_is_hers(ask):
    def change(body: Request) -> None:
        observation(body, "tacrolimusLevels", TROUGH)["subject"] = {
            "reference": f"https://ehr.example.org/fhir/Patient/{body['context']['patientId']}/_history/3"
        }

    cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    assert not any("another patient" in c["summary"] for c in cards)


# ---- 16. search values percent-encoded -------------------------------------------------------------


def test_fetched_searches_survive_a_proxy_that_collapses_double_slashes(ask):
    """A public SMART launcher's FHIR proxy rewrites "//" to "/" anywhere in the URL, query included.
    The service's fallback searches must still find the critical trough through it."""
    import re
    from urllib.parse import urlsplit

    import responses
    from fhir_doubles import BASE, TOKEN

    from fhir_fixtures import FIXTURES_DIR, read_json
    from fhir_fixtures.matcher import search

    chart = [e["resource"] for e in read_json(FIXTURES_DIR / "trough-critical" / "patient.json")["entry"]]
    base_path = urlsplit(BASE).path

    def proxy(request: Any) -> tuple[int, dict[str, str], str]:
        scheme, rest = request.url.split("://", 1)
        rest = re.sub("/{2,}", "/", rest)
        relative = rest.split(base_path, 1)[1].lstrip("/")
        import json

        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(search(relative, chart))

    def change(body: Request) -> None:
        del body["prefetch"]["tacrolimusLevels"]
        body["fhirServer"] = BASE
        body["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
        }

    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + "/Observation.*"), callback=proxy)
        cards = ask("trough-critical", "patient-view", change)
        assert "%7C" in rsps.calls[0].request.url and "loinc.org|" not in rsps.calls[0].request.url
    critical_with(cards, "21.5")


# ---- 5-6. searchsets that are not the whole answer ---------------------------------------------------


TRUNCATED = {
    "resource": {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": "results truncated"}],
    },
    "search": {"mode": "outcome"},
}


def partial_card(cards: list[dict[str, Any]]) -> dict[str, Any]:
    found = [c for c in cards if "part of the data" in c["summary"] or "part of the" in c.get("detail", "")]
    assert len(found) == 1, summaries(cards)
    return found[0]


def test_a_searchset_the_server_marked_incomplete_is_said_to_be_partial(ask):
    def change(body: Request) -> None:
        body["prefetch"]["tacrolimusLevels"]["entry"].append(TRUNCATED)

    cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    card = partial_card(cards)
    assert card["indicator"] == "warning" and "- Tacrolimus levels: part of the tacrolimus levels" in card["detail"]
    assert "incomplete" in card["detail"]


def test_an_information_outcome_does_not_make_a_searchset_partial(ask):
    def change(body: Request) -> None:
        info = copy.deepcopy(TRUNCATED)
        info["resource"]["issue"][0]["severity"] = "information"
        body["prefetch"]["tacrolimusLevels"]["entry"].append(info)

    cards = ask("trough-critical", "patient-view", change)
    assert not [c for c in cards if "part of the data" in c["summary"]], summaries(cards)


def test_a_next_page_that_cannot_be_read_keeps_the_first_page(ask):
    import re

    import responses
    from fhir_doubles import BASE, TOKEN

    def change(body: Request) -> None:
        body["prefetch"]["tacrolimusLevels"]["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page=2"}]
        body["fhirServer"] = BASE
        body["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
        }

    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add(responses.GET, re.compile(re.escape(BASE) + r"/Observation\?page=2"), status=503, body="down")
        cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    assert "- Tacrolimus levels: part of the tacrolimus levels" in partial_card(cards)["detail"]


# ---- every prefetch key dropped in turn ------------------------------------------------------------


def _potassium_64(body: Request) -> None:
    observation(body, "chemistry", POTASSIUM)["valueQuantity"]["value"] = 6.4


# (scenario, a change making it critical or None, words of the critical card, the key its check reads)
CRITICAL_CHARTS = [
    ("trough-critical", None, "21.5", "tacrolimusLevels"),
    ("hyperkalaemia", _potassium_64, "6.4 mmol/L", "chemistry"),
    ("creatinine-aki", None, "acute kidney injury", "chemistry"),
]
DROPS = [
    (scenario, change, words, key)
    for scenario, change, words, reads in CRITICAL_CHARTS
    for key in load_request(scenario, "patient-view")["prefetch"]
    if key != reads
]


@pytest.mark.parametrize("scenario, change, words, key", DROPS, ids=[f"{s}-without-{k}" for s, _, _, k in DROPS])
def test_a_critical_card_survives_any_other_key_going_missing(ask, scenario, change, words, key):
    def edit(body: Request) -> None:
        if change is not None:
            change(body)
        del body["prefetch"][key]

    cards = ask(scenario, "patient-view", edit)
    critical_with(cards, words)
    if key != "patient":  # the patient is read by no check: nothing goes unchecked without it
        missing_card(cards)


def test_a_fetched_searchset_the_server_marked_incomplete_is_said_to_be_partial(ask):
    import re

    import responses
    from fhir_doubles import BASE, TOKEN

    def change(body: Request) -> None:
        levels = body["prefetch"].pop("tacrolimusLevels")
        levels["entry"].append(TRUNCATED)
        served.append(levels)
        body["fhirServer"] = BASE
        body["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "tacro-cds",
        }

    served: list[Resource] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback(
            responses.GET,
            re.compile(re.escape(BASE) + "/Observation.*"),
            callback=lambda request: (
                200,
                {"Content-Type": "application/fhir+json"},
                __import__("json").dumps(served[0]),
            ),
        )
        cards = ask("trough-critical", "patient-view", change)
    critical_with(cards, "21.5")
    assert "- Tacrolimus levels: part of the tacrolimus levels" in partial_card(cards)["detail"]


def test_a_result_with_no_time_at_all_is_named(ask):
    def change(body: Request) -> None:
        level = observation(body, "tacrolimusLevels", TROUGH)
        level["valueQuantity"]["value"] = 23.0
        del level["effectiveDateTime"]
        level.pop("issued", None)

    cards = ask("trough-critical", "patient-view", change)
    named = [c for c in cards if "could not be used" in c["summary"]]
    assert named and "no effective time" in named[0]["detail"], summaries(cards)


def test_a_stopped_azole_with_no_end_date_counts_when_it_began_inside_the_window(ask):
    def change(body: Request) -> None:
        order = stopped_fluconazole(body["context"]["patientId"], "2026-11-23")
        order["authoredOn"] = "2026-11-23"
        del order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
        body["prefetch"]["endedMedicationRequests"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": order}],
        }

    cards = ask("trough-in-range", "patient-view", change)
    assert any("fluconazole" in c["summary"].lower() for c in cards), summaries(cards)

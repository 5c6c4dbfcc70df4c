"""Feedback over HTTP: ``POST /cds-services/{id}/feedback`` and ``GET .../feedback/summary``.

CDS Hooks 2.0, Feedback: "Upon receiving a card, a user may accept its suggestions, ignore it
entirely, or dismiss it with or without an override reason."
"""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest

SERVICE = "tacrolimus-order-select"
FEEDBACK_URL = f"/cds-services/{SERVICE}/feedback"
SUMMARY_URL = f"/cds-services/{SERVICE}/feedback/summary"


def store_of(app: Any) -> Any:
    return app.extensions["tacro_cds"].store


def issue(app: Any, cards: dict[str, str]) -> None:
    """Record cards as issued (uuid -> kind), as a service call does after rendering them."""
    rendered = [{"uuid": u, "summary": "s", "indicator": "info", "source": {"label": "l"}} for u in cards]
    store_of(app).record_cards(SERVICE, rendered, list(cards.values()))


def accepted(card: str) -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": f"{card}-s1"}],
        "outcomeTimestamp": "2026-11-25T08:59:00Z",
    }


def overridden(card: str, **override: Any) -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": override,
        "outcomeTimestamp": "2026-11-25T08:59:30+01:00",
    }


SANDBOX_REASON = {"reason": {"code": "patient-preference", "system": "http://example.org/override"}}


def test_feedback_is_stored_and_summarised_per_kind_and_outcome(app, client):
    issue(app, {"card-dose": "dose", "card-trough": "trough", "card-ddi": "interaction:fluconazole"})
    response = client.post(
        FEEDBACK_URL,
        json={
            "feedback": [
                accepted("card-dose"),
                overridden("card-trough", **SANDBOX_REASON),
                overridden("card-ddi", userComment="fluconazole stopped yesterday"),
            ]
        },
    )
    assert response.status_code == 200
    assert response.get_json() == {"stored": 3}
    client.post(FEEDBACK_URL, json={"feedback": [overridden("card-dose", **SANDBOX_REASON)]})

    summary = client.get(SUMMARY_URL)
    assert summary.status_code == 200
    assert summary.get_json() == {
        "service": SERVICE,
        "total": 4,
        "byKind": {
            "dose": {"accepted": 1, "overridden": 1},
            "interaction:fluconazole": {"overridden": 1},
            "trough": {"overridden": 1},
        },
        "overrideReasons": [{"system": "http://example.org/override", "code": "patient-preference", "count": 2}],
        "overrideComments": 1,
    }


def test_feedback_on_a_card_never_issued_is_refused_and_not_counted(client):
    response = client.post(FEEDBACK_URL, json={"feedback": [accepted("from-another-deployment")]})
    assert response.get_json() == {"stored": 0, "refused": {"unknown-card": 1}}
    assert client.get(SUMMARY_URL).get_json()["total"] == 0


def test_feedback_survives_an_app_restart(make_app):
    first = make_app()
    issue(first, {"card-dose": "dose"})
    assert first.test_client().post(FEEDBACK_URL, json={"feedback": [accepted("card-dose")]}).status_code == 200
    store_of(first).dispose()

    restarted = make_app()  # a new app on the same SQLite file
    summary = restarted.test_client().get(SUMMARY_URL).get_json()
    assert summary["byKind"] == {"dose": {"accepted": 1}}


def test_summary_of_a_service_without_feedback_is_zero(client):
    assert client.get(SUMMARY_URL).get_json() == {
        "service": SERVICE,
        "total": 0,
        "byKind": {},
        "overrideReasons": [],
        "overrideComments": 0,
    }


@pytest.mark.parametrize(
    "method, url",
    [("post", "/cds-services/no-such-service/feedback"), ("get", "/cds-services/no-such-service/feedback/summary")],
    ids=["post-feedback", "get-summary"],
)
def test_unknown_service_is_404(client, method, url):
    kwargs = {"json": {"feedback": [accepted("c1")]}} if method == "post" else {}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


VALID_BODY = {"feedback": [accepted("c1"), overridden("c2", **SANDBOX_REASON)]}


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


# (id, body, JSON path the OperationOutcome must name)
INVALID = [
    ("missing-card", {"feedback": [_without(accepted("c1"), "card")]}, "$.feedback[0]"),
    ("card-not-a-string", {"feedback": [{**accepted("c1"), "card": 12}]}, "$.feedback[0].card"),
    ("bad-outcome", {"feedback": [{**accepted("c1"), "outcome": "ignored"}]}, "$.feedback[0].outcome"),
    ("missing-outcome", {"feedback": [_without(accepted("c1"), "outcome")]}, "$.feedback[0]"),
    (
        "accepted-without-acceptedSuggestions",
        {"feedback": [_without(accepted("c1"), "acceptedSuggestions")]},
        "$.feedback[0]",
    ),
    (
        "accepted-with-empty-acceptedSuggestions",
        {"feedback": [{**accepted("c1"), "acceptedSuggestions": []}]},
        "$.feedback[0].acceptedSuggestions",
    ),
    (
        "accepted-suggestion-without-id",
        {"feedback": [{**accepted("c1"), "acceptedSuggestions": [{"uuid": "s1"}]}]},
        "$.feedback[0].acceptedSuggestions[0]",
    ),
    ("override-reason-empty", {"feedback": [overridden("c1")]}, "$.feedback[0].overrideReason"),
    (
        "override-reason-coding-without-code",
        {"feedback": [overridden("c1", reason={"system": "http://example.org/override"})]},
        "$.feedback[0].overrideReason.reason",
    ),
    ("missing-timestamp", {"feedback": [_without(accepted("c1"), "outcomeTimestamp")]}, "$.feedback[0]"),
    (
        "bad-timestamp",
        {"feedback": [{**accepted("c1"), "outcomeTimestamp": "yesterday"}]},
        "$.feedback[0].outcomeTimestamp",
    ),
    (
        "timestamp-without-offset",
        {"feedback": [{**accepted("c1"), "outcomeTimestamp": "2026-11-25T08:59:00"}]},
        "$.feedback[0].outcomeTimestamp",
    ),
    (
        "timestamp-leap-second",
        {"feedback": [{**accepted("c1"), "outcomeTimestamp": "2026-12-31T23:59:60Z"}]},
        "$.feedback[0].outcomeTimestamp",
    ),
    (
        "timestamp-out-of-range-in-utc",
        {"feedback": [{**accepted("c1"), "outcomeTimestamp": "0001-01-01T00:00:00+01:00"}]},
        "$.feedback[0].outcomeTimestamp",
    ),
    ("feedback-not-a-list", {"feedback": accepted("c1")}, "$.feedback"),
    ("feedback-empty-list", {"feedback": []}, "$.feedback"),
    ("feedback-missing", {"cards": []}, "$"),
    ("body-is-a-list", [accepted("c1")], "$"),
    (
        "nul-in-comment",
        {"feedback": [overridden("c1", userComment="a\u0000b")]},
        "$.feedback[0].overrideReason.userComment",
    ),
    ("entry-not-an-object", {"feedback": ["c1"]}, "$.feedback[0]"),
    ("second-entry-bad", {"feedback": [accepted("c1"), {**accepted("c2"), "outcome": 1}]}, "$.feedback[1].outcome"),
]


@pytest.mark.parametrize("body, path", [(b, p) for _, b, p in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_feedback_is_400_naming_the_path_and_stores_nothing(client, body, path):
    response = client.post(FEEDBACK_URL, json=copy.deepcopy(body))
    assert response.status_code == 400
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["location"] == [path]
    assert client.get(SUMMARY_URL).get_json()["total"] == 0


@pytest.mark.parametrize("raw", [b"", b"{not json", b'{"feedback": [NaN]}'], ids=["empty", "not-json", "nan"])
def test_malformed_body_is_400(client, raw):
    response = client.post(FEEDBACK_URL, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


VALID = [
    ("sandbox-reason-code-and-system-only", overridden("c1", **SANDBOX_REASON)),
    ("reason-with-display", overridden("c1", reason={**SANDBOX_REASON["reason"], "display": "Patient preference"})),
    ("comment-only", overridden("c1", userComment="seen by the fertility team")),
    ("reason-and-comment", overridden("c1", userComment="why", **SANDBOX_REASON)),
    ("overridden-without-reason", {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T08:59:00Z"}),
    ("accepted-two-suggestions", {**accepted("c1"), "acceptedSuggestions": [{"id": "a"}, {"id": "b"}]}),
    ("fractional-seconds", {**accepted("c1"), "outcomeTimestamp": "2026-11-25T08:59:00.123456Z"}),
]


@pytest.mark.parametrize("entry", [e for _, e in VALID], ids=[i for i, _ in VALID])
def test_valid_feedback_shapes_are_accepted(app, client, entry):
    issue(app, {"c1": "dose"})
    response = client.post(FEEDBACK_URL, json={"feedback": [entry]})
    assert response.status_code == 200, response.get_json()
    assert client.get(SUMMARY_URL).get_json()["total"] == 1


def test_every_entry_of_a_post_is_stored(app, client):
    issue(app, {e["card"]: "dose" for e in VALID_BODY["feedback"]})
    response = client.post(FEEDBACK_URL, json=VALID_BODY)
    assert response.get_json() == {"stored": 2}
    assert client.get(SUMMARY_URL).get_json()["total"] == 2


def test_no_200_when_the_database_is_gone(make_app, tmp_path):
    """Answer 200 only after the entry is committed: an unreachable database is a 503 to retry."""
    folder = tmp_path / "data"
    app = make_app(FEEDBACK_DB=f"sqlite:///{folder / 'feedback.sqlite'}")
    store_of(app).dispose()
    shutil.rmtree(folder)
    (folder / "feedback.sqlite").mkdir(parents=True)  # a directory where the file was
    response = app.test_client().post(FEEDBACK_URL, json=VALID_BODY)
    assert response.status_code == 503
    assert response.get_json()["issue"][0]["diagnostics"] == "storage-unavailable"


@pytest.mark.parametrize(
    "method, url", [("post", FEEDBACK_URL), ("get", SUMMARY_URL)], ids=["post-feedback", "get-summary"]
)
def test_feedback_endpoints_need_a_caller_token(make_app, method, url):
    client = make_app(AUTH_REQUIRED=True).test_client()
    kwargs = {"json": VALID_BODY} if method == "post" else {}
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 401
    assert response.get_json(force=True) == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login"}],
    }


def test_override_reasons_are_counted_by_system_and_code(app, client):
    """CDS Hooks 2.0.1 "Overridden guidance": the reason is a Coding, so it is identified by system
    and code; 3.0 ballot, "Override reasons", adds HL7's suggested codes beside a service's own.
    The same code in two systems (or sent without a system, as the public sandbox does) is
    counted apart, never merged."""
    issue(app, {"c1": "dose", "c2": "dose", "c3": "trough", "c4": "trough"})
    hl7 = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
    ours = "http://example.org/fhir/CodeSystem/tacro-cds-override"
    client.post(
        FEEDBACK_URL,
        json={
            "feedback": [
                overridden("c1", reason={"system": hl7, "code": "action-completed"}),
                overridden("c2", reason={"system": ours, "code": "action-completed"}),
                overridden("c3", reason={"system": hl7, "code": "action-completed"}),
                overridden("c4", reason={"code": "action-completed"}),
            ]
        },
    )
    assert client.get(SUMMARY_URL).get_json()["overrideReasons"] == [
        {"code": "action-completed", "count": 1},
        {"system": ours, "code": "action-completed", "count": 1},
        {"system": hl7, "code": "action-completed", "count": 2},
    ]

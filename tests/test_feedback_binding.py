"""Feedback is bound to the card it is about: only from the caller (issuer, tenant) the card was
issued to, on the service that issued it; once per card and outcome; with a plausible time and an
override reason the card offered. Each caller has a rate and a quota, old rows are purged, and
``/readyz`` says whether the database can still take a write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from conftest import SteppingClock

from service.errors import FeedbackQuotaError
from service.storage.store import FeedbackQuota, Retention, Store

ISS_A = "https://ehr-a.example.org"
ISS_B = "https://ehr-b.example.org"
OFFERED = [{"system": "http://example.org/override", "code": "patient-declined", "display": "Declined"}]


def card(card_uuid: str, reasons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": card_uuid, "summary": "s", "indicator": "info", "source": {"label": "x"}}
    if reasons:
        out["overrideReasons"] = reasons
    return out


def entry(card_uuid: str, outcome: str = "accepted", when: str = "2026-11-25T08:59:00Z", **extra: Any) -> dict:
    out: dict[str, Any] = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": when}
    if outcome == "accepted":
        out["acceptedSuggestions"] = [{"id": "s1"}]
    out.update(extra)
    return out


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def store(tmp_path, clock) -> Store:
    s = Store(
        f"sqlite:///{tmp_path / 'f.sqlite'}",
        clock=clock,
        quota=FeedbackQuota(per_minute=50, total=80),
        retention=Retention(issued_cards_days=30, feedback_days=365),
    )
    s.record_cards(
        "svc-a", [card("card-a1", OFFERED), card("card-a2", OFFERED)], ["dose", "trough"], issuer=ISS_A, tenant="t1"
    )
    yield s
    s.dispose()


def test_another_issuer_tenant_or_service_cannot_post_on_a_card(store):
    for service, issuer, tenant in [
        ("svc-a", ISS_B, "t1"),
        ("svc-a", ISS_A, "t2"),
        ("svc-b", ISS_A, "t1"),
        ("svc-a", None, None),
    ]:
        result = store.submit_feedback(service, [entry("card-a1")], issuer=issuer, tenant=tenant)
        assert (result.stored, result.refused) == (0, {"unknown-card": 1}), (service, issuer, tenant)
    assert store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")["total"] == 0
    result = store.submit_feedback("svc-a", [entry("card-a1")], issuer=ISS_A, tenant="t1")
    assert result.stored == 1
    assert store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")["total"] == 1
    assert store.feedback_summary("svc-a", issuer=ISS_B, tenant="t1")["total"] == 0  # summaries are per caller


def test_the_same_entry_three_times_counts_once(store):
    result = store.submit_feedback("svc-a", [entry("card-a1")] * 3, issuer=ISS_A, tenant="t1")
    again = store.submit_feedback("svc-a", [entry("card-a1")], issuer=ISS_A, tenant="t1")
    assert (result.stored, result.refused) == (1, {"duplicate": 2})
    assert (again.stored, again.refused) == (0, {"duplicate": 1})
    assert store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")["total"] == 1


def test_forged_uuids_and_far_timestamps_are_refused(store):
    forged = [entry(f"00000000-0000-4000-8000-00000000000{i}", when="9999-12-31T23:59:59Z") for i in range(5)]
    result = store.submit_feedback(
        "svc-a",
        forged + [entry("card-a1", when="9999-12-31T23:59:59Z"), entry("card-a2", when="2001-01-01T00:00:00Z")],
        issuer=ISS_A,
        tenant="t1",
    )
    assert (result.stored, result.refused) == (0, {"unknown-card": 5, "timestamp-out-of-range": 2})


@pytest.mark.parametrize("code", ["<img src=x onerror=alert(1)>", "not offered", "other-code"])
def test_an_override_code_the_card_did_not_offer_is_refused(store, code):
    result = store.submit_feedback(
        "svc-a",
        [
            entry(
                "card-a1",
                "overridden",
                overrideReason={"reason": {"system": "http://example.org/override", "code": code}},
            )
        ],
        issuer=ISS_A,
        tenant="t1",
    )
    assert (result.stored, result.refused) == (0, {"unknown-override-reason": 1})
    ok = store.submit_feedback(
        "svc-a",
        [
            entry(
                "card-a1",
                "overridden",
                overrideReason={"reason": {"system": "http://example.org/override", "code": "patient-declined"}},
            )
        ],
        issuer=ISS_A,
        tenant="t1",
    )
    assert ok.stored == 1
    assert store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")["overrideReasons"] == [
        {"system": "http://example.org/override", "code": "patient-declined", "count": 1}
    ]


def test_a_flood_is_stopped_by_the_rate_and_the_quota(store, clock):
    uuids = [f"flood-{i}" for i in range(120)]
    store.record_cards("svc-a", [card(u) for u in uuids], ["dose"] * len(uuids), issuer=ISS_A, tenant="t1")
    assert store.submit_feedback("svc-a", [entry(u) for u in uuids[:50]], issuer=ISS_A, tenant="t1").stored == 50
    with pytest.raises(FeedbackQuotaError):  # 51st in the same minute
        store.submit_feedback("svc-a", [entry(uuids[50])], issuer=ISS_A, tenant="t1")
    # Another caller is not held back by A's flood.
    store.record_cards("svc-a", [card("b1")], ["dose"], issuer=ISS_B)
    assert store.submit_feedback("svc-a", [entry("b1")], issuer=ISS_B).stored == 1
    clock.advance(minutes=2)
    assert store.submit_feedback("svc-a", [entry(u) for u in uuids[50:80]], issuer=ISS_A, tenant="t1").stored == 30
    clock.advance(minutes=2)
    with pytest.raises(FeedbackQuotaError):  # 80 kept in all for A
        store.submit_feedback("svc-a", [entry(uuids[80])], issuer=ISS_A, tenant="t1")
    assert store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")["total"] == 80


def test_old_cards_feedback_and_jti_are_purged(store, clock):
    store.submit_feedback("svc-a", [entry("card-a1")], issuer=ISS_A, tenant="t1")
    store.remember_jti(ISS_A, "j1", clock() + timedelta(minutes=5))
    clock.advance(days=31)
    purged = store.purge_retained()
    assert purged == {"jti": 1, "issued_cards": 2, "feedback": 0}
    # A card no longer on record takes no feedback.
    assert store.submit_feedback(
        "svc-a", [entry("card-a2", when="2026-12-26T09:00:00Z")], issuer=ISS_A, tenant="t1"
    ).refused == {"unknown-card": 1}
    clock.advance(days=365)
    assert store.purge_retained()["feedback"] == 1


def test_feedback_over_http_is_bound_and_reported(make_app):
    app = make_app(FEEDBACK_RATE_PER_MINUTE=5)
    client = app.test_client()
    app.extensions["tacro_cds"].store.record_cards("tacrolimus-order-sign", [card("c1", OFFERED)], ["dose"])
    url = "/cds-services/tacrolimus-order-sign/feedback"
    body = {
        "feedback": [
            entry("c1"),
            entry("c1"),
            entry("forged"),
            entry("c1", "overridden", overrideReason={"reason": {"code": "<b>x</b>"}}),
        ]
    }
    response = client.post(url, json=body)
    assert response.status_code == 200
    assert response.get_json() == {
        "stored": 1,
        "refused": {"duplicate": 1, "unknown-card": 1, "unknown-override-reason": 1},
    }
    flood = client.post(url, json={"feedback": [entry("c1", "overridden")] * 5})
    assert flood.status_code == 429 and flood.headers["Retry-After"]


def test_readiness_fails_when_the_database_cannot_take_a_write(make_app, tmp_path):
    database = tmp_path / "ro.sqlite"
    Store(f"sqlite:///{database}").dispose()
    writable = make_app(FEEDBACK_DB=f"sqlite:///{database}").test_client()
    assert writable.get("/readyz").status_code == 200
    read_only = make_app(FEEDBACK_DB=f"sqlite:///file:{database}?mode=ro&uri=true").test_client()
    assert read_only.get("/healthz").status_code == 200
    response = read_only.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["issue"][0]["diagnostics"] == "storage-unavailable"


def test_the_summary_is_per_tenant_not_per_issuer(store):
    """Two tenants of one issuer: neither sees the other's counts or the reason systems it chose."""
    chosen = [{"system": "urn:tenant-one-private-codes", "code": "c1", "display": "One"}]
    store.record_cards("svc-a", [card("card-t2", chosen)], ["dose"], issuer=ISS_A, tenant="t2")
    overridden = entry("card-a1", outcome="overridden", overrideReason={"reason": OFFERED[0]})
    assert store.submit_feedback("svc-a", [overridden], issuer=ISS_A, tenant="t1").stored == 1
    other = entry("card-t2", outcome="overridden", overrideReason={"reason": chosen[0]})
    assert store.submit_feedback("svc-a", [other], issuer=ISS_A, tenant="t2").stored == 1
    t1 = store.feedback_summary("svc-a", issuer=ISS_A, tenant="t1")
    t2 = store.feedback_summary("svc-a", issuer=ISS_A, tenant="t2")
    assert t1["total"] == 1 and t2["total"] == 1
    assert [r["system"] for r in t1["overrideReasons"]] == ["http://example.org/override"]
    assert "urn:tenant-one-private-codes" not in str(t1)
    assert store.feedback_summary("svc-a", issuer=ISS_A)["total"] == 0  # no tenant: none of theirs

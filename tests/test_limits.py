"""Request limits at their defaults: body size (413), JSON nesting depth, draft orders and prefetch
entries (400 limit-exceeded), each answered with an OperationOutcome naming the limit."""

from __future__ import annotations

import copy
import json
import time

import pytest

from bench.samples import builtin_request
from service.config import default_settings

SELECT = "/cds-services/tacrolimus-order-select"
VIEW = "/cds-services/tacrolimus-patient-view"


def _post(client, url, raw: bytes):
    return client.post(url, data=raw, content_type="application/json")


def _issue(response) -> dict:
    assert response.mimetype == "application/fhir+json"
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]


def _padded(body: dict, size: int) -> bytes:
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))  # trailing whitespace is still valid JSON


@pytest.mark.parametrize("extra, status", [(0, 200), (1, 413)], ids=["at-limit", "one-byte-over"])
def test_body_size_limit(client, extra, status):
    size = default_settings().max_request_bytes
    assert size == 5 * 1024 * 1024
    response = _post(client, VIEW, _padded(builtin_request("patient-view"), size + extra))
    assert response.status_code == status
    if status == 413:
        assert _issue(response)["diagnostics"] == "payload-too-large"


def test_body_size_limit_is_configurable(make_app):
    client = make_app(MAX_REQUEST_BYTES=2048).test_client()
    response = _post(client, VIEW, _padded({"hook": "patient-view"}, 2049))
    assert response.status_code == 413


def _nested_request(depth: int) -> bytes:
    """A valid patient-view request whose context holds a value nested so the body is ``depth`` deep."""
    inner = depth - 2  # the body object and the context object are two levels
    value = "[" * inner + "]" * inner
    prefetch = json.dumps(builtin_request("patient-view")["prefetch"]).encode()
    return (
        b'{"hook": "patient-view", "hookInstance": "i", "prefetch": ' + prefetch + b", "
        b'"context": {"userId": "u", "patientId": "p", "extension": ' + value.encode() + b"}}"
    )


@pytest.mark.parametrize("depth, status", [(64, 200), (65, 400)], ids=["at-limit", "one-level-over"])
def test_nesting_depth_limit(client, depth, status):
    assert default_settings().max_json_depth == 64
    response = _post(client, VIEW, _nested_request(depth))
    assert response.status_code == status
    if status == 400:
        issue = _issue(response)
        assert issue["diagnostics"] == "limit-exceeded"
        assert "64" in issue["details"]["text"]


def test_hostile_depth_is_refused_fast(client):
    raw = b"[" * 4_000_000  # 4 MB of open brackets: under the size limit, far over the depth limit
    started = time.perf_counter()
    response = _post(client, VIEW, raw)
    assert response.status_code == 400
    assert _issue(response)["diagnostics"] == "limit-exceeded"
    assert time.perf_counter() - started < 2.0


def test_brackets_inside_strings_do_not_count(client):
    body = builtin_request("patient-view")
    body["context"]["note"] = "[" * 500 + '\\"{' * 100
    response = _post(client, VIEW, json.dumps(body).encode())
    assert response.status_code == 200


def _drafts(n: int) -> dict:
    body = builtin_request("order-select")
    template = body["context"]["draftOrders"]["entry"][0]
    entries = []
    for i in range(n):
        entry = copy.deepcopy(template)
        entry["resource"]["id"] = f"draft-tac-{i + 1}"
        entries.append(entry)
    body["context"]["draftOrders"]["entry"] = entries
    body["context"]["selections"] = ["MedicationRequest/draft-tac-1"]
    return body


@pytest.mark.parametrize("over, status", [(0, 200), (1, 400)], ids=["at-limit", "one-over"])
def test_draft_orders_limit(client, over, status):
    limit = default_settings().max_draft_orders
    response = _post(client, SELECT, json.dumps(_drafts(limit + over)).encode())
    assert response.status_code == status
    if status == 400:
        issue = _issue(response)
        assert issue["diagnostics"] == "limit-exceeded"
        assert issue["location"] == ["$.context.draftOrders"]


def _prefetch_entries(n: int) -> dict:
    """The sample request with exactly ``n`` prefetch entries in all, spread over two keys (the limit
    counts every key together)."""
    body = builtin_request("patient-view")
    obs = body["prefetch"]["chemistry"]["entry"][0]
    body["prefetch"]["chemistry"]["entry"] = body["prefetch"]["cbc"]["entry"] = []
    remaining = n - sum(len(v.get("entry", [])) for v in body["prefetch"].values() if isinstance(v, dict))
    body["prefetch"]["chemistry"]["entry"] = [obs] * (remaining // 2)
    body["prefetch"]["cbc"]["entry"] = [obs] * (remaining - remaining // 2)
    return body


@pytest.mark.parametrize("over, status", [(0, 200), (1, 400)], ids=["at-limit", "one-over"])
def test_prefetch_entries_limit(client, over, status):
    limit = default_settings().max_prefetch_entries
    response = _post(client, VIEW, json.dumps(_prefetch_entries(limit + over)).encode())
    assert response.status_code == status
    if status == 400:
        issue = _issue(response)
        assert issue["diagnostics"] == "limit-exceeded"
        assert issue["location"] == ["$.prefetch"]


def test_count_limits_are_configurable(make_app):
    client = make_app(MAX_DRAFT_ORDERS=2, MAX_PREFETCH_ENTRIES=10).test_client()
    assert _post(client, SELECT, json.dumps(_drafts(3)).encode()).status_code == 400
    assert _post(client, VIEW, json.dumps(_prefetch_entries(11)).encode()).status_code == 400
    assert _post(client, VIEW, json.dumps(_prefetch_entries(10)).encode()).status_code == 200


def test_non_array_bundle_entry_is_a_clear_400(client):
    body = builtin_request("patient-view")
    body["prefetch"]["conditions"]["entry"] = {"resource": {"resourceType": "Condition"}}
    response = _post(client, VIEW, json.dumps(body).encode())
    assert response.status_code == 400
    assert _issue(response)["location"] == ["$.prefetch.conditions.entry"]


@pytest.mark.parametrize(
    "hook, field, value",
    [
        ("patient-view", "selections", 5),
        ("patient-view", "selections", [{"not": "a string"}]),
        ("patient-view", "draftOrders", 1),
        ("patient-view", "draftOrders", {"resourceType": "Bundle", "entry": 3}),
        ("order-sign", "selections", [["nested"]]),
    ],
)
def test_stray_context_fields_are_ignored_not_a_500(client, hook, field, value):
    """Regression: these were 500s (AttributeError / TypeError) before the fix in validation.py."""
    body = builtin_request(hook)
    body["context"][field] = value
    response = _post(client, f"/cds-services/tacrolimus-{hook}", json.dumps(body).encode())
    assert response.status_code == 200


def test_schema_error_message_is_bounded(client):
    body = {"hook": "patient-view", "hookInstance": "i", "context": ["x" * 100] * 10_000}
    response = _post(client, VIEW, json.dumps(body).encode())
    assert response.status_code == 400
    assert len(response.data) < 2000


@pytest.mark.parametrize(
    "value, message",
    [
        ("x", "'x' is not valid under any of the given schemas"),
        ({"entry": []}, "'resourceType' is a required property"),
        ({"resourceType": "bad"}, "'bad' does not match"),
    ],
    ids=["not-an-object", "no-resourceType", "bad-resourceType"],
)
def test_a_bad_prefetch_value_is_named_with_its_fault(client, value, message):
    body = builtin_request("patient-view")
    body["prefetch"] = {**body["prefetch"], "odd": value}
    response = _post(client, VIEW, json.dumps(body).encode())
    assert response.status_code == 400
    issue = _issue(response)
    assert issue["location"][0].startswith("$.prefetch.odd")
    assert message in issue["details"]["text"]


def test_null_and_resource_prefetch_values_pass_the_schema(client):
    body = builtin_request("patient-view")
    body["prefetch"] = {**body["prefetch"], "odd": None}
    assert _post(client, VIEW, json.dumps(body).encode()).status_code == 200

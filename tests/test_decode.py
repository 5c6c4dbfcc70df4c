"""The fast decode-and-check path (service/hooks/decode.py) against the full path (parse_json, then
jsonschema in validate_request): the same request or the same error, for every fixture request, the
bench's year of data, targeted edge cases and generated bodies (valid, mutated, too deep, byte-level
damage). The fast path may decline (jsonschema then decides), never disagree."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config import default_settings
from service.errors import CdsError
from service.hooks.decode import decode_body
from service.hooks.validation import parse_json, validate_request
from tests.strategies import deep_requests, mutated_requests, valid_requests, wrong_top_level

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_REQUESTS = sorted(ROOT.glob("fhir_fixtures/*/requests/*.json"))
HOOKS = ("patient-view", "order-select", "order-sign")
LIMITS = default_settings()


def _result(request: Any) -> str:
    """A HookRequest as text that tells 1 from 1.0 from true, and keeps key order."""
    return json.dumps(asdict(request), ensure_ascii=False)


def full_path(raw: bytes, hook: str) -> tuple[str, ...]:
    try:
        document = parse_json(raw, max_depth=LIMITS.max_json_depth)
        return ("ok", _result(validate_request(document, hook=hook, limits=LIMITS)))
    except CdsError as exc:
        return ("error", type(exc).__name__, str(exc.status), json.dumps(exc.outcome()))


def fast_path(raw: bytes, hook: str) -> tuple[tuple[str, ...], str | None]:
    checked_for = None
    try:
        decoded = decode_body(raw, max_depth=LIMITS.max_json_depth)
        checked_for = decoded.checked_for
        request = validate_request(decoded.document, hook=hook, limits=LIMITS, checked_for=checked_for)
        return ("ok", _result(request)), checked_for
    except CdsError as exc:
        return ("error", type(exc).__name__, str(exc.status), json.dumps(exc.outcome())), checked_for


def assert_same(raw: bytes, hook: str) -> str | None:
    """Both paths agree on ``raw`` sent to a service of ``hook``; returns the fast path's verdict."""
    fast, checked_for = fast_path(raw, hook)
    assert fast == full_path(raw, hook)
    return checked_for


def test_there_are_fixture_requests():
    assert len(FIXTURE_REQUESTS) >= 100


@pytest.mark.parametrize("path", FIXTURE_REQUESTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_fixture_request_is_answered_alike_and_takes_the_fast_path(path):
    raw = path.read_bytes()
    hook = json.loads(raw)["hook"]
    compact = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    for body in (raw, compact):
        checked_for = assert_same(body, hook)
        if full_path(body, hook)[0] == "ok":
            assert checked_for == hook, "a valid fixture request missed the fast path"
        for other in HOOKS:
            if other != hook:
                assert_same(body, other)


@pytest.mark.parametrize("hook", ["order-select", "patient-view"])
def test_the_bench_year_of_data_takes_the_fast_path(hook):
    from bench.bodies import build_body

    raw = build_body(hook).payload
    assert assert_same(raw, hook) == hook


def _fixture(hook: str = "order-select") -> dict[str, Any]:
    """A copy of the first valid, prefetched fixture request of ``hook``."""
    return copy.deepcopy(_first_valid(hook))


@functools.cache
def _first_valid(hook: str) -> dict[str, Any]:
    for path in FIXTURE_REQUESTS:
        body = json.loads(path.read_bytes())
        if body["hook"] == hook and "prefetch" in body and full_path(path.read_bytes(), hook)[0] == "ok":
            return body
    raise AssertionError(f"no valid {hook} fixture")


AUTH = {"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "s"}


def _edit(change: Any, hook: str = "order-select") -> bytes:
    body = _fixture(hook)
    change(body)
    return json.dumps(body).encode()


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(*path: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


def _with_auth(**fields: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["fhirServer"] = "https://ehr.example.org/fhir"
        body["fhirAuthorization"] = {k: v for k, v in {**AUTH, **fields}.items() if v is not ...}

    return change


def _first_prefetch(value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["prefetch"][next(iter(body["prefetch"]))] = value

    return change


def _first_draft(**fields: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["context"]["draftOrders"]["entry"][0]["resource"].update(fields)

    return change


EDGE_CASES: dict[str, bytes] = {
    "empty": b"",
    "spaces": b"  \n ",
    "bom": b"\xef\xbb\xbf" + _edit(lambda b: None),
    "invalid utf-8": _edit(_set(("hookInstance",), "x")).replace(b'"x"', b'"\xff"'),
    "nan": _edit(_set(("context", "n"), 1)).replace(b'"n": 1', b'"n": NaN'),
    "infinity": _edit(_set(("context", "n"), 1)).replace(b'"n": 1', b'"n": -Infinity'),
    "1e400": _edit(_set(("context", "n"), 1)).replace(b'"n": 1', b'"n": 1e400'),
    "lone surrogate": _edit(_set(("context", "n"), "x")).replace(b'"n": "x"', b'"n": "\\ud800"'),
    "reversed surrogates": _edit(_set(("context", "n"), "x")).replace(b'"n": "x"', b'"n": "\\udc00\\ud800"'),
    "4301 digits": _edit(_set(("context", "n"), 1)).replace(b'"n": 1', b'"n": ' + b"1" * 4301),
    "big integer": _edit(_set(("context", "n"), 10**40)),
    "trailing data": _edit(lambda b: None) + b" {}",
    "duplicate keys": _edit(lambda b: None).replace(b'{"hook"', b'{"hook": "patient-view", "hook"', 1),
    "top-level array": b"[]",
    "top-level string": b'"order-select"',
    "hook empty": _edit(_set(("hook",), "")),
    "hook number": _edit(_set(("hook",), 7)),
    "hook of another service": _edit(_set(("hook",), "patient-view")),
    "unknown hook": _edit(_set(("hook",), "encounter-start")),
    "hookInstance 128": _edit(_set(("hookInstance",), "i" * 128)),
    "hookInstance 129": _edit(_set(("hookInstance",), "i" * 129)),
    "hookInstance missing": _edit(_drop("hookInstance")),
    "context missing": _edit(_drop("context")),
    "context a list": _edit(_set(("context",), [])),
    "userId empty": _edit(_set(("context", "userId"), "")),
    "patientId number": _edit(_set(("context", "patientId"), 5)),
    "encounterId null": _edit(_set(("context", "encounterId"), None)),
    "selections empty": _edit(_set(("context", "selections"), [])),
    "selection with a space": _edit(_set(("context", "selections"), ["MedicationRequest/a b"])),
    "selection with a newline": _edit(_set(("context", "selections"), ["MedicationRequest/ab\n"])),
    "selection not a draft": _edit(_set(("context", "selections"), ["MedicationRequest/elsewhere"])),
    "draftOrders missing": _edit(_drop("context", "draftOrders")),
    "draftOrders not a Bundle": _edit(_set(("context", "draftOrders", "resourceType"), "List")),
    "draftOrders entry a string": _edit(_set(("context", "draftOrders", "entry"), ["x"])),
    "draftOrders entries an object": _edit(_set(("context", "draftOrders", "entry"), {})),
    "draft resource id a number": _edit(_first_draft(id=7)),
    "draft resource without type": _edit(_first_draft(resourceType=None)),
    "fhirServer http": _edit(_set(("fhirServer",), "http://ehr.example.org/fhir")),
    "fhirServer ftp": _edit(_set(("fhirServer",), "ftp://ehr.example.org/fhir")),
    "fhirServer a number": _edit(_set(("fhirServer",), 1)),
    "authorization": _edit(_with_auth()),
    "authorization without fhirServer": _edit(lambda b: (_with_auth()(b), b.pop("fhirServer"))),
    "token_type bearer newline": _edit(_with_auth(token_type="bearer\n")),
    "token_type mac": _edit(_with_auth(token_type="MAC")),
    "expires_in 300.0": _edit(_with_auth(expires_in=300.0)),
    "expires_in true": _edit(_with_auth(expires_in=True)),
    "expires_in text": _edit(_with_auth(expires_in="300")),
    "access_token empty": _edit(_with_auth(access_token="")),
    "scope missing": _edit(_with_auth(scope=...)),
    "patient a number": _edit(_with_auth(patient=1)),
    "prefetch null value": _edit(_first_prefetch(None)),
    "prefetch a list value": _edit(_first_prefetch([])),
    "prefetch value without type": _edit(_first_prefetch({"id": "x"})),
    "prefetch lower-case type": _edit(_first_prefetch({"resourceType": "bundle"})),
    "prefetch type with newline": _edit(_first_prefetch({"resourceType": "Bundle\n", "entry": []})),
    "prefetch entry not a list": _edit(_first_prefetch({"resourceType": "Bundle", "entry": {}})),
    "prefetch an array": _edit(_set(("prefetch",), [])),
    "patient-view": _edit(lambda b: None, "patient-view"),
    "patient-view with stray draftOrders": _edit(_set(("context", "draftOrders"), 5), "patient-view"),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_are_answered_alike(name):
    raw = EDGE_CASES[name]
    for hook in HOOKS:
        assert_same(raw, hook)


def test_depth_limit_is_the_same_on_both_paths():
    body = _fixture("patient-view")
    for depth in (LIMITS.max_json_depth - 2, LIMITS.max_json_depth - 1, LIMITS.max_json_depth, 100_000):
        nested: Any = 1
        for i in range(depth):
            nested = [nested] if i % 2 else {"n": nested}
        deep = copy.deepcopy(body)
        deep["context"]["extension"] = nested
        raw = json.dumps(deep).encode() if depth < 1000 else b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        assert_same(raw, "patient-view")


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (the outermost one is level 1)."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((_depth(child) for child in children), default=0)


@pytest.mark.parametrize("hook", ["order-select", "patient-view"])
@pytest.mark.parametrize("over", [0, 1], ids=["at-the-limit", "one-level-over"])
def test_a_too_deep_prefetched_resource_is_refused_alike(hook, over):
    """A prefetched resource is free-form JSON however well-formed the request around it: nested
    past the limit inside a body the fast path otherwise passes, it is refused with the full path's
    error; at the limit, the fast path still takes the body."""
    body = _fixture(hook)
    key, bundle = next((k, v) for k, v in body["prefetch"].items() if isinstance(v, dict) and v.get("entry"))
    resource = bundle["entry"][0]["resource"]
    resource_depth = 6  # body, prefetch, the Bundle, its entry array, an entry, the resource
    assert _depth(body) <= LIMITS.max_json_depth
    nested: Any = "deep"
    for i in range(LIMITS.max_json_depth - resource_depth + over):
        nested = [nested] if i % 2 else {"n": nested}
    resource["_deep"] = nested
    assert _depth(body) == LIMITS.max_json_depth + over, key
    raw = json.dumps(body).encode()
    checked_for = assert_same(raw, hook)
    fast, _ = fast_path(raw, hook)
    if over:
        assert fast[:3] == ("error", "LimitExceededError", "400")
        assert f"nested deeper than {LIMITS.max_json_depth} levels" in fast[3]
    else:
        assert fast[0] == "ok" and checked_for == hook


GENERATED = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# The fuzz suite's bodies, without its huge ones (slow to draw; the limits they test are checked
# before either path's schema step, by the same code).
GENERATED_BODIES = st.one_of(
    valid_requests(), mutated_requests(), mutated_requests(), wrong_top_level(), deep_requests(LIMITS.max_json_depth)
)


@GENERATED
@given(GENERATED_BODIES, st.sampled_from(HOOKS))
def test_generated_requests_are_answered_alike(generated, other_hook):
    raw = json.dumps(generated.body).encode()
    hook = generated.service.removeprefix("tacrolimus-")
    assert_same(raw, hook)
    assert_same(raw, other_hook)


@GENERATED
@given(st.data())
def test_damaged_bytes_are_answered_alike(data):
    path = data.draw(st.sampled_from(FIXTURE_REQUESTS))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "delete":
            del raw[at]
        else:
            byte = data.draw(st.sampled_from([0x00, 0x09, 0x22, 0x2C, 0x5B, 0x5C, 0x5D, 0x7B, 0x7D, 0x80, 0xC3, 0xFF]))
            if action == "replace":
                raw[at] = byte
            else:
                raw.insert(at, byte)
    assert_same(bytes(raw), json.loads(path.read_bytes())["hook"])

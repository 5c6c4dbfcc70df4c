"""``client.decode_json`` (msgspec, with json.loads deciding whatever msgspec refuses) against
``json.loads``: the same document, of the same types, or the same error, for every answer the
fixtures and benches hold, for garbage, for generated JSON and at the nesting limit."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.bodies import year_of_monitoring
from service.fhir.client import decode_json

FIXTURES = Path(__file__).resolve().parents[1] / "fhir_fixtures"


def _outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    """What a decoder made of ``body``: the document with its exact types, or the error."""
    try:
        document = decode(body)
    except Exception as exc:  # the two decoders must fail alike, whatever the failure
        return "error", (type(exc), str(exc))
    return "document", _typed(document)


def _typed(value: Any) -> Any:
    """``value`` with every scalar's type beside it (1, 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    if isinstance(value, float):
        return (float, value, math.copysign(1.0, value))
    return (type(value), value)


def _loads_one_frame_deeper(body: bytes) -> Any:
    return json.loads(body)  # where decode_json calls it from


def _assert_same(body: bytes) -> tuple[str, Any]:
    mine = _outcome(decode_json, body)
    assert mine == _outcome(_loads_one_frame_deeper, body)
    return mine


def _answers() -> list[bytes]:
    bodies = [year_of_monitoring(hook) for hook in ("order-select", "patient-view")]
    answers = [json.dumps(v).encode() for b in bodies for v in b["prefetch"].values()]
    for path in sorted(FIXTURES.rglob("*.json")):
        answers.append(path.read_bytes())
    return answers


def test_every_answer_of_the_fixtures_and_benches_decodes_the_same():
    answers = _answers()
    assert len(answers) > 50
    for body in answers:
        assert _assert_same(body)[0] == "document"


GARBAGE = [
    b"",
    b" ",
    b"NaN",
    b"[Infinity, -Infinity]",
    b'{"value": 1E400}',
    b'{"value": -1e999}',
    b"1" + b"0" * 30,
    b"1" + b"0" * 5000,
    b'"\\ud800"',
    b'"\xed\xa0\x80"',
    b'"\xff"',
    b"\xef\xbb\xbf{}",
    b'\xff\xfe{\x00"\x00a\x00"\x00:\x001\x00}\x00',
    b'{\x00"\x00',
    b'{"a":1,"a":2}',
    b'{"a":1}\x00',
    b"[1,]",
    b'{"a":1,}',
    b"01",
    b"1.",
    b".5",
    b"-",
    b'"a\x01b"',
    b'"a\x7fb"',
    b'"\\u0000"',
    b'"\\x41"',
    b"{'a': 1}",
    b"[1 2]",
    b"true false",
    b'{"resourceType": "Bundle"',
    b"9223372036854775808",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"-0",
    b"-0.0",
    b"1.5e-400",
    b"123456789012345678901234567890.5",
    b"\t[]\r\n",
    b"<html>502 Bad Gateway</html>",
]


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_and_edge_cases_decode_or_fail_the_same(body):
    _assert_same(body)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(document=_json, ensure_ascii=st.booleans())
def test_generated_json_decodes_the_same(document, ensure_ascii):
    body = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    assert _assert_same(body)[0] == "document"


@settings(max_examples=300, deadline=None)
@given(document=_json, cut=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_damaged_json_decodes_or_fails_the_same(document, cut, byte):
    body = bytearray(json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if body:
        body[cut % len(body)] = byte
    _assert_same(bytes(body))


def _kind(decode: Any, body: bytes) -> str:
    try:
        decode(body)
    except RecursionError:
        return "too deep"
    return "document"


def test_at_the_nesting_limit_msgspec_never_accepts_what_json_loads_refuses():
    outcomes = []
    for depth in range(800, 1100):
        body = b"[" * depth + b"]" * depth
        kind = _kind(decode_json, body)
        assert kind == _kind(_loads_one_frame_deeper, body), depth
        outcomes.append(kind)
    # Both sides of the limit were seen.
    assert "document" in outcomes and "too deep" in outcomes

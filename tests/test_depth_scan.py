"""The depth scan over a request's raw bytes (``_may_nest_deeper_than`` in service/hooks/decode.py)
against the walk over the decoded document (``_deeper_than``), which stays the reference: for every
text msgspec decodes, the scan's "not deeper" must be the walk's, at every limit around the true
depth. Documents are generated (strings full of brackets, quotes, backslashes and escapes, written
with every kind of escape and whitespace), crafted, and taken from every fixture request and bench
body."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config import default_settings
from service.errors import LimitExceededError
from service.hooks.decode import _may_nest_deeper_than, _outside_strings, decode_body
from service.hooks.validation import _deeper_than

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_REQUESTS = sorted(ROOT.glob("fhir_fixtures/*/requests/*.json"))
MAX_DEPTH = default_settings().max_json_depth


def depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (the outermost one is level 1)."""
    if type(value) is dict:
        return 1 + max(map(depth, value.values()), default=0)
    if type(value) is list:
        return 1 + max(map(depth, value), default=0)
    return 0


def containers(value: Any) -> str:
    """The document's containers in text order, each as ``[`` … ``]``: what the scan must find."""
    if type(value) is dict:
        return "[" + "".join(containers(v) for v in value.values()) + "]"
    if type(value) is list:
        return "[" + "".join(containers(v) for v in value) + "]"
    return ""


def assert_scan_exact(raw: bytes) -> None:
    """On ``raw`` (valid JSON without duplicate keys), the scan finds exactly the document's
    containers, and its verdict is the walk's at every limit near the depth; ``decode_body``
    refuses exactly when the walk says too deep."""
    document = msgspec.json.decode(raw)
    assert document == json.loads(raw)
    found = _outside_strings(raw)
    if found is not None:  # None: too many escapes, the walk decides (checked below)
        assert found.decode() == containers(document)
    true_depth = depth(document)
    for limit in sorted({1, 2, max(1, true_depth - 1), max(1, true_depth), true_depth + 1, MAX_DEPTH}):
        walk = _deeper_than(document, limit)
        assert walk == (true_depth > limit)
        scan = _may_nest_deeper_than(raw, limit)
        if found is not None:
            assert scan == walk, (limit, true_depth)
        else:
            assert scan
        try:
            decode_body(raw, max_depth=limit)
            refused = False
        except LimitExceededError as exc:
            assert str(exc) == f"JSON nested deeper than {limit} levels"
            refused = True
        assert refused == walk


# Strings: mostly the bytes that matter to the scan (brackets, quotes, backslashes, slashes), with
# letters, whitespace, control characters and non-ASCII (two-, three- and four-byte UTF-8).
TRICKY = list('[]{}"\\/') + ["\\\\", '\\"', '\\\\"', '"\\', "ab", " ", "\n", "\t", "\x00", "\x1f", "é", "€", "😀"]
strings = st.one_of(
    st.lists(st.sampled_from(TRICKY), max_size=12).map("".join),
    st.text(max_size=8),
    st.sampled_from(["", "{ratio}", "mm[Hg]", "]", "[", "}{", '"]"', "\\u005b"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
)


def _documents(leaves: int) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(strings, children, max_size=5)),
        max_leaves=leaves,
    )


documents = _documents(40)


@st.composite
def deep_documents(draw: st.DrawFn) -> Any:
    """A document wrapped in a chain of containers (with siblings), so depths near the limit come up.
    The chain is built from a few drawn pieces by a seeded generator: drawing each level would
    make the test slow."""
    value = draw(documents)
    pool = draw(st.lists(_documents(4), min_size=1, max_size=3))
    keys = draw(st.lists(strings, min_size=1, max_size=3))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.sampled_from([0, 1, 5, MAX_DEPTH - 3, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 2]))):
        others = rnd.sample(pool, rnd.randrange(len(pool) + 1))
        if rnd.random() < 0.5:
            value = [*others, value] if rnd.random() < 0.5 else [value, *others]
        else:
            value = {rnd.choice(keys): value, **{f"s{i}": s for i, s in enumerate(others)}}
    return value


def write(value: Any, rnd: random.Random) -> str:
    """``value`` as JSON, with whitespace anywhere it may go and each character of a string written
    as itself or escaped in any legal way (``\\u005b``, ``\\u0022``, ``\\/``, surrogate pairs)."""

    def ws() -> str:
        return rnd.choice(["", "", "", " ", "\n", "\t", "\r\n  "])

    if type(value) is dict:
        members = [ws() + write_string(k, rnd) + ws() + ":" + ws() + write(v, rnd) + ws() for k, v in value.items()]
        return "{" + (",".join(members) if members else ws()) + "}"
    if type(value) is list:
        return "[" + (",".join(ws() + write(v, rnd) + ws() for v in value) if value else ws()) + "]"
    if type(value) is str:
        return write_string(value, rnd)
    return json.dumps(value)


SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def write_string(text: str, rnd: random.Random) -> str:
    out = ['"']
    for ch in text:
        must = ch in '"\\' or ord(ch) < 0x20
        choice = rnd.randrange(4)
        if ch in SHORT and (choice == 0 or (must and choice < 2)):
            out.append(SHORT[ch])
        elif must or choice == 1:
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
            else:
                out.append(f"\\u{code:04x}" if rnd.random() < 0.5 else f"\\u{code:04X}")
        else:
            out.append(ch)
    return "".join(out) + '"'


SCAN = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SCAN
@given(st.one_of(documents, deep_documents()), st.integers(0, 2**32))
def test_generated_documents_written_any_way(document, seed):
    rnd = random.Random(seed)
    written = [write(document, rnd).encode(), write(document, rnd).encode()]
    for ensure_ascii in (True, False):
        for options in ({}, {"separators": (",", ":")}, {"indent": 2}, {"indent": "\t", "separators": (" ,", " : ")}):
            written.append(json.dumps(document, ensure_ascii=ensure_ascii, **options).encode())
    for raw in written:
        assert_scan_exact(raw)


CRAFTED = {
    "scalar": b"1",
    "string": b'"[[[["',
    "empty object": b"{}",
    "empty array": b" [ ] ",
    "escaped quote then bracket": b'{"a": "x\\"[", "b": [1]}',
    "backslash run before quote": b'["\\\\\\\\", [["\\\\\\"]"]]]',
    "odd backslash run": b'["\\\\\\"[[[", [[]]]',
    "escaped backslash at the end": b'{"k\\\\": ["v\\\\"]}',
    "unicode bracket and quote": b'["\\u005b\\u005B\\u0022", {"\\u007b": "\\u005d"}]',
    "surrogate pair": b'["\\ud83d\\ude00[", []]',
    "string of brackets only": b'{"a": "]]]]}}}}", "b": [[[]]]}',
    "strings between brackets": b'["[", [], "]", ["{"], "}"]',
    "adjacent strings": b'{"a":"","b":"","c":["[",""]}',
    "non-ascii": '{"é": ["€[", {"😀": []}]}'.encode(),
    "whitespace everywhere": b' \r\n\t{ \n"a" \t: \r [ \n{ } , [ ] ] \n} \t',
    "at the limit": b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    "one over the limit": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "objects at the limit": b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    "wide then deep": b"[" + b"[1]," * 1000 + b"[" * 70 + b"]" * 70 + b"]",
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_texts(name):
    assert_scan_exact(CRAFTED[name])


def test_a_duplicate_key_deeper_than_the_limit_is_left_to_the_walk():
    """msgspec keeps a duplicate key's last value: the text is deeper than the document, the scan
    says so, and the walk decides (the document is accepted, as the full path accepts it)."""
    raw = b'{"a": ' + b"[" * 100 + b"]" * 100 + b', "a": 1}'
    assert msgspec.json.decode(raw) == json.loads(raw) == {"a": 1}
    assert _may_nest_deeper_than(raw, MAX_DEPTH)
    assert not _deeper_than(msgspec.json.decode(raw), MAX_DEPTH)
    assert decode_body(raw, max_depth=MAX_DEPTH).document == {"a": 1}


def test_many_escapes_are_left_to_the_walk():
    """Undoing escapes is a loop turn each; past a budget the scan gives up and the walk decides."""
    raw = json.dumps(["\\" * 5000, [[["x"]]]]).encode()
    assert _outside_strings(raw) is None
    assert _may_nest_deeper_than(raw, 1)
    assert decode_body(raw, max_depth=4).document == json.loads(raw)
    with pytest.raises(LimitExceededError):
        decode_body(raw, max_depth=3)


@pytest.mark.parametrize("path", FIXTURE_REQUESTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_fixture_request(path):
    raw = path.read_bytes()
    assert_scan_exact(raw)
    assert_scan_exact(json.dumps(json.loads(raw), separators=(",", ":")).encode())


BENCH_BODIES = ["order-select", "patient-view", "order-select-cards", "history-500-order-select"]


@pytest.mark.parametrize("name", BENCH_BODIES)
def test_bench_bodies(name):
    from bench.bodies import build_body

    assert_scan_exact(build_body(name).payload)

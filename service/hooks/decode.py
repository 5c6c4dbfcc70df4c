"""Decode a CDS Hooks request body, taking a fast path for the usual, valid request.

The full path (``validation.parse_json`` then jsonschema in ``validation.validate_request``) costs
several milliseconds on a year of prefetched data, most of it in the pure-Python schema walk and
the JSON decoder's object churn. The fast path decodes with msgspec's C decoder and checks the few
constraints of the request and context schemas written out below. It never answers on its own:

- a body msgspec cannot decode goes to ``parse_json``, whose error is the one the caller gets;
- a decoded body is the same document ``json.loads`` gives (msgspec refuses everything that
  ``parse_json`` refuses, and the differential test checks both decoders agree on every fixture
  and on generated bodies); the depth limit is checked on it as ``parse_json`` checks it, except
  that the walk over the document is skipped when the body's brackets show it cannot be too deep
  (``_may_nest_deeper_than``);
- a body that passes every check here is one the schemas accept: ``validate_request`` is told so
  (``DecodedBody.checked_for``) and skips jsonschema; any doubt (an unusual type, a missing field,
  an integer written as 1.0) leaves ``checked_for`` None, and jsonschema decides and words the error.

So the fast path can only be narrower than the schemas, never wider: answers and errors stay the
full path's. The schemas remain the one definition of a valid request; ``tests/test_decode.py`` runs
both paths side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from cards.vocab import HOOKS, ORDER_SELECT, PATIENT_VIEW
from service.errors import LimitExceededError
from service.hooks.validation import _deeper_than, parse_json, validator

_decoder = msgspec.json.Decoder()

# The schemas' patterns (request.json, context-order-select.json), matched as jsonschema matches a
# "pattern": re.search.
_HTTP_URL = re.compile(r"^https?://")
_BEARER = re.compile(r"^[Bb]earer$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_SELECTION = re.compile(r"^[A-Z][A-Za-z]+/[^/\s]{1,1024}$")
_AUTH_STRINGS = ("access_token", "token_type", "scope", "subject")
MAX_HOOK_INSTANCE = 128


@dataclass(frozen=True)
class DecodedBody:
    """A decoded request body; ``checked_for`` names the hook whose request and context schemas it
    was found to satisfy (None: not checked here, jsonschema will)."""

    document: Any
    checked_for: str | None = None


def decode_body(raw: bytes, *, max_depth: int) -> DecodedBody:
    """Decode ``raw`` as ``parse_json`` does (same document, same errors), and say whether the
    usual request checks already passed."""
    try:
        document = _decoder.decode(raw)
    except Exception:  # anything msgspec refuses: the full path decides and words the error
        return DecodedBody(parse_json(raw, max_depth=max_depth))
    if _may_nest_deeper_than(raw, max_depth) and _deeper_than(document, max_depth):
        raise LimitExceededError(f"JSON nested deeper than {max_depth} levels")
    return DecodedBody(document, _valid_hook(document))


# The depth scan over the raw bytes keeps quotes and brackets (``{}`` written as ``[]``: in valid JSON
# they pair up properly whatever their kind), and backslashes when it must undo escapes.
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_NOT_STRUCTURE_OR_ESCAPE = bytes(sorted(set(range(256)) - set(b'"[]{}\\')))
_QUOTE = 0x22
_BACKSLASH = 0x5C


def _may_nest_deeper_than(raw: bytes, max_depth: int) -> bool:
    """False if ``raw``, a text msgspec decoded, certainly nests no deeper than ``max_depth``; True
    if the walk over the decoded document (``_deeper_than``) must decide.

    The walk touches every decoded value, scattered over the heap; this reads the bytes instead,
    with a few C passes (``translate``, ``replace``), in about a third of the walk's time or less.
    The brackets outside strings are the document's containers, so their nesting is the document's
    depth, or more: a duplicate key's earlier value is in the text, not in the document. So False
    is exact, and a True (a body too deep, a duplicate key, or too many escapes to undo cheaply)
    leaves the verdict to the walk.

    The depth of the brackets is found by removing every ``[]`` pair once per pass: a pass takes
    away exactly the innermost containers, so the passes until nothing is left are the depth."""
    brackets = _outside_strings(raw)
    if brackets is None:
        return True
    passes = 0
    # ``len(brackets) // 2`` bounds the depth still to come.
    while len(brackets) > 2 * (max_depth - passes):
        if passes == max_depth:
            return True
        brackets = brackets.replace(b"[]", b"")
        passes += 1
    return False


def _outside_strings(raw: bytes) -> bytes | None:
    """The brackets of ``raw`` that are outside strings, as ``[`` and ``]`` (None: too many escapes).

    Quotes alternate opening and closing once escaped quotes are gone. Removing two adjacent quotes
    keeps that so and drops no bracket outside strings (they were an empty string, or the end and
    the start of two strings with nothing structural between), which clears most strings in one C
    pass; the few left, those holding brackets, are cut out by splitting on quotes."""
    if b"\\" in raw:
        kept = _unescaped(raw, raw.translate(_AS_BRACKETS, _NOT_STRUCTURE_OR_ESCAPE))
        if kept is None:
            return None
    else:
        kept = raw.translate(_AS_BRACKETS, _NOT_STRUCTURE)
    kept = kept.replace(b'""', b"")
    if b'"' in kept:
        kept = b"".join(kept.split(b'"')[::2])
    return kept


def _unescaped(raw: bytes, kept: bytes) -> bytes | None:
    """``kept`` (``raw``'s quotes, brackets and backslashes) without its escapes' backslashes and
    escaped quotes; None if ``raw`` has more escapes than are worth undoing one by one.

    Each escape's backslash is found in ``raw`` (to read the byte it escapes) and in ``kept`` (the
    same backslash, in the same order): an escaped backslash is kept's next byte, an escaped quote
    is marked as a backslash, and then every backslash goes."""
    budget = 16 + len(raw) // 256  # a loop turn per escape: past this, about what the walk costs
    escaped_quotes: list[int] = []
    end = -1
    at = raw.find(b"\\")
    while at >= 0:
        budget -= 1
        if budget < 0:
            return None
        end = kept.find(b"\\", end + 1)
        escaped = raw[at + 1]
        if escaped == _QUOTE:
            escaped_quotes.append(end + 1)
        elif escaped == _BACKSLASH:
            end += 1
        at = raw.find(b"\\", at + 2)
    if escaped_quotes:
        marked = bytearray(kept)
        for quote in escaped_quotes:
            marked[quote] = _BACKSLASH
        kept = bytes(marked)
    return kept.replace(b"\\", b"")


def _valid_hook(body: Any) -> str | None:
    """``body["hook"]`` if the body certainly passes request.json and that hook's context schema."""
    if type(body) is not dict:
        return None
    hook = body.get("hook")
    instance = body.get("hookInstance")
    context = body.get("context")
    if not (type(hook) is str and hook and type(instance) is str and 1 <= len(instance) <= MAX_HOOK_INSTANCE):
        return None
    if type(context) is not dict or not _context_ok(hook, context):
        return None
    if "fhirServer" in body:
        server = body["fhirServer"]
        if not (type(server) is str and _HTTP_URL.search(server) and _uri(server)):
            return None
    if "fhirAuthorization" in body:
        if "fhirServer" not in body or not _authorization_ok(body["fhirAuthorization"]):
            return None
    if "prefetch" in body:
        prefetch = body["prefetch"]
        if type(prefetch) is not dict:
            return None
        for value in prefetch.values():
            if value is None:
                continue
            if type(value) is not dict:
                return None
            resource_type = value.get("resourceType")
            if not (type(resource_type) is str and _RESOURCE_TYPE.search(resource_type)):
                return None
    return hook


def _uri(value: str) -> bool:
    """The request schema's ``format: uri``, as its validator's format checker judges it."""
    checker = validator("request.json").format_checker
    return checker is None or checker.conforms(value, "uri")


def _authorization_ok(auth: Any) -> bool:
    if type(auth) is not dict:
        return False
    for key in _AUTH_STRINGS:
        if type(auth.get(key)) is not str:
            return False
    if not auth["access_token"] or not _BEARER.search(auth["token_type"]):
        return False
    if type(auth.get("expires_in")) is not int:  # 300.0 is an integer to jsonschema: left to it
        return False
    # Every other member a string: the schema's optional patient is one, and anything else unusual
    # is left to jsonschema.
    return all(type(value) is str for key, value in auth.items() if key != "expires_in")


def _context_ok(hook: str, context: dict[str, Any]) -> bool:
    """The context schema of ``hook`` (context-<hook>.json); an unknown hook is left to jsonschema."""
    if hook not in HOOKS:
        return False
    for key in ("userId", "patientId"):
        value = context.get(key)
        if not (type(value) is str and value):
            return False
    if "encounterId" in context and type(context["encounterId"]) is not str:
        return False
    if hook == PATIENT_VIEW:
        return True
    if hook == ORDER_SELECT:
        selections = context.get("selections")
        if not (type(selections) is list and selections):
            return False
        if not all(type(s) is str and _SELECTION.search(s) for s in selections):
            return False
    return "draftOrders" in context and _bundle_ok(context["draftOrders"])


def _bundle_ok(bundle: Any) -> bool:
    """context-order-select.json's ``bundle``: a Bundle whose entries' resources have a type."""
    if type(bundle) is not dict or bundle.get("resourceType") != "Bundle" or type(bundle["resourceType"]) is not str:
        return False
    if "entry" not in bundle:
        return True
    entries = bundle["entry"]
    if type(entries) is not list:
        return False
    for entry in entries:
        if type(entry) is not dict:
            return False
        if "resource" not in entry:
            continue
        resource = entry["resource"]
        if type(resource) is not dict or type(resource.get("resourceType")) is not str:
            return False
        if "id" in resource and type(resource["id"]) is not str:
            return False
    return True

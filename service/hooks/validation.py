"""Validate a CDS Hooks request body: JSON, limits, schema (Draft 2020-12), spec invariants."""

from __future__ import annotations

import itertools
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from cards.vocab import HOOKS
from service.config import Settings
from service.errors import HookMismatchError, LimitExceededError, MalformedJsonError, SchemaError, clip
from service.hooks.base import HookRequest

SCHEMA_FILES = ("request.json", *(f"context-{hook}.json" for hook in HOOKS), "feedback.json")
_BASE = "https://tacro-cds.example.org/schemas/"
# jsonschema messages quote the offending value; a 5 MB array must not come back in the error body.
MAX_MESSAGE_CHARS = 300
# Errors weighed to pick the one reported: validation stops there, so a body with 100,000 faults
# costs no more than one with a few.
ERRORS_CONSIDERED = 16


@cache
def _registry() -> Registry:
    pairs = []
    for name in SCHEMA_FILES:
        path = resources.files("service") / "schemas" / name
        if path.is_file():
            contents = json.loads(path.read_text(encoding="utf-8"))
            pairs.append((_BASE + name, Resource.from_contents(contents)))
    return Registry().with_resources(pairs)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one of our schemas, by file name: the schema checked and compiled once per
    process (``compile_validators`` does every one at start-up), never per call."""
    schema = _registry().contents(_BASE + name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def compile_validators() -> None:
    """Check and compile every schema now, so a broken schema stops start-up and no call pays for it."""
    for name in SCHEMA_FILES:
        validator(name)


def check_schema(instance: Any, name: str, *, prefix: str = "$") -> None:
    """Raise SchemaError naming the JSON path of the most relevant of the first violations."""
    err = best_match(itertools.islice(validator(name).iter_errors(instance), ERRORS_CONSIDERED))
    if err is not None:
        path = clip(
            prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{clip(str(p), 100)}" for p in err.absolute_path)
        )
        raise SchemaError(f"{path}: {_shorten(err.message)}", location=[path])


def _shorten(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    """Decode a JSON body, refusing invalid UTF-8, invalid JSON and nesting deeper than max_depth.

    The C decoder parses first (it stops deep nesting itself with a RecursionError, long before the
    stack is at risk); the depth is then checked on the parsed document, container by container.
    A byte-by-byte scan before parsing cost more than a second for a 5 MB body."""
    if not raw.strip():
        raise MalformedJsonError("request body is empty; a JSON object is required")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise MalformedJsonError("request body is not UTF-8") from None
    except RecursionError:
        raise LimitExceededError(f"JSON nested deeper than {max_depth} levels") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise MalformedJsonError(f"request body is not valid JSON: {exc}") from None
    if _deeper_than(document, max_depth):
        raise LimitExceededError(f"JSON nested deeper than {max_depth} levels")
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _deeper_than(document: Any, max_depth: int) -> bool:
    """Whether objects and arrays nest deeper than ``max_depth`` (the outermost one is level 1).

    Walked a level at a time: each level's containers are gathered in one comprehension, which
    costs a fraction of a node-by-node stack walk on a large body."""
    level = [document] if isinstance(document, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) is dict or type(child) is list
        ]
    return False


def check_counts(body: Any, limits: Settings) -> None:
    """Refuse a body with more prefetch keys, prefetch entries, draft orders or selections than
    allowed, before the schema walks them: counting is cheap, validating 100,000 keys is not."""
    if not isinstance(body, dict):
        return
    prefetch = body.get("prefetch")
    if isinstance(prefetch, dict):
        if len(prefetch) > limits.max_prefetch_keys:
            raise LimitExceededError(
                f"$.prefetch: {len(prefetch)} keys, at most {limits.max_prefetch_keys}", location=["$.prefetch"]
            )
        entries = sum(
            len(v["entry"]) for v in prefetch.values() if isinstance(v, dict) and isinstance(v.get("entry"), list)
        )
        if entries > limits.max_prefetch_entries:
            raise LimitExceededError(
                f"$.prefetch: {entries} entries, at most {limits.max_prefetch_entries}", location=["$.prefetch"]
            )
    context = body.get("context")
    if not isinstance(context, dict):
        return
    drafts = context.get("draftOrders")
    entries_of_drafts = drafts.get("entry") if isinstance(drafts, dict) else None
    if isinstance(entries_of_drafts, list) and len(entries_of_drafts) > limits.max_draft_orders:
        raise LimitExceededError(
            f"$.context.draftOrders: {len(entries_of_drafts)} entries, at most {limits.max_draft_orders}",
            location=["$.context.draftOrders"],
        )
    selections = context.get("selections")
    if isinstance(selections, list) and len(selections) > limits.max_draft_orders:
        raise LimitExceededError(
            f"$.context.selections: {len(selections)} entries, at most {limits.max_draft_orders}",
            location=["$.context.selections"],
        )


def validate_request(body: Any, *, hook: str, limits: Settings, checked_for: str | None = None) -> HookRequest:
    """Check a decoded body against the request schema, the hook's context schema and the spec's
    invariants; return it as a HookRequest. ``checked_for``: the hook whose schemas the body is
    already known to satisfy (``service.hooks.decode``); for that hook jsonschema is not run again."""
    check_counts(body, limits)
    if checked_for != hook:
        check_schema(body, "request.json")
        if body["hook"] != hook:
            raise HookMismatchError(
                f"$.hook: this service answers the {hook} hook, not {clip(body['hook'], 100)}", location=["$.hook"]
            )
        check_schema(body["context"], f"context-{hook}.json", prefix="$.context")
    request = HookRequest(
        hook=hook,
        hook_instance=body["hookInstance"],
        context=body["context"],
        fhir_server=(body.get("fhirServer") or "").rstrip("/") or None,
        access_token=(body.get("fhirAuthorization") or {}).get("access_token"),
        prefetch=body.get("prefetch") or {},
    )
    drafts = request.draft_orders
    if len(drafts) > limits.max_draft_orders:
        raise LimitExceededError(
            f"$.context.draftOrders: {len(drafts)} entries, at most {limits.max_draft_orders}",
            location=["$.context.draftOrders"],
        )
    for key, value in request.prefetch.items():
        # A Bundle whose entry is not an array cannot be read leniently: say so rather than fail.
        if value and value.get("resourceType") == "Bundle" and not isinstance(value.get("entry", []), list):
            path = f"$.prefetch.{key}.entry"
            raise SchemaError(f"{path}: a Bundle's entry must be an array", location=[path])
    entries = sum(
        len(v.get("entry") or [])
        for v in request.prefetch.values()
        if isinstance(v, dict) and isinstance(v.get("entry"), list)
    )
    if entries > limits.max_prefetch_entries:
        raise LimitExceededError(
            f"$.prefetch: {entries} entries, at most {limits.max_prefetch_entries}", location=["$.prefetch"]
        )
    draft_refs = {f"{r.get('resourceType')}/{r.get('id')}" for r in drafts if r.get("id")}
    for i, ref in enumerate(request.selections):
        if ref not in draft_refs:
            raise SchemaError(
                f"$.context.selections[{i}]: {ref} is not an entry of draftOrders",
                location=[f"$.context.selections[{i}]"],
            )
    return request

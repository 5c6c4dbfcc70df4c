"""Check a CDS Hooks 2.0 service response against our schema and every card rule of the spec.

``assert_valid_response(body)`` is what the protocol tests call on each response; it fails with the
list of every violation found, each prefixed by its JSON path. The rules
(https://cds-hooks.hl7.org/2.0/#cds-service-response) and where each is enforced:

- schema (service/schemas/response.json): summary under 140 characters; indicator info | warning |
  critical; source.label; uuid on every card and suggestion; selectionBehavior whenever there are
  suggestions; display on every override reason; action type create | update | delete with a
  description, a resource for create and update, a resourceId ``Type/id`` for delete; links with
  label, url and type, appContext only on smart links;
- here: every create/update resource parses as a FHIR R4B model; no null and no empty string, array
  or object anywhere (the one exception: a top-level ``"cards": []``); uuids unique in the response.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft202012Validator
from pydantic import ValidationError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "service" / "schemas" / "response.json"


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def response_violations(body: Any) -> list[str]:
    """Every rule the response breaks, as ``<JSON path>: <problem>``; empty when it is valid."""
    problems = [
        f"{_path(e.absolute_path)}: {e.message}"
        for e in sorted(_validator().iter_errors(body), key=lambda e: list(map(str, e.path)))
    ]
    if not isinstance(body, dict):
        return problems
    problems.extend(_empty_values(body, []))
    problems.extend(_resource_problems(body))
    problems.extend(_duplicate_uuids(body))
    return problems


def assert_valid_response(body: dict[str, Any]) -> None:
    """Fail, listing every violation, unless ``body`` is a valid CDS Hooks 2.0 response."""
    problems = response_violations(body)
    assert not problems, "invalid CDS Hooks response:\n  " + "\n  ".join(problems)


def _empty_values(value: Any, path: list[str | int]) -> Iterator[str]:
    if path == ["cards"] and value == []:
        return  # "cards": [] is how a service says it has nothing to say
    if value is None:
        yield f"{_path(path)}: null (omit the field instead)"
    elif value == "" or value == [] or value == {}:
        yield f"{_path(path)}: empty {type(value).__name__} (omit the field instead)"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _empty_values(item, [*path, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _empty_values(item, [*path, i])


def _actions(body: dict[str, Any]) -> Iterator[tuple[list[str | int], Any]]:
    for i, card in enumerate(_list(body.get("cards"))):
        for j, suggestion in enumerate(_list(card.get("suggestions") if isinstance(card, dict) else None)):
            actions = suggestion.get("actions") if isinstance(suggestion, dict) else None
            for k, action in enumerate(_list(actions)):
                yield ["cards", i, "suggestions", j, "actions", k], action
    for k, action in enumerate(_list(body.get("systemActions"))):
        yield ["systemActions", k], action


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _resource_problems(body: dict[str, Any]) -> Iterator[str]:
    for path, action in _actions(body):
        if not isinstance(action, dict) or action.get("type") not in ("create", "update"):
            continue
        resource = action.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue  # the schema has already reported it
        where = _path([*path, "resource"])
        try:
            model = get_fhir_model_class(resource["resourceType"])
        except (ValueError, KeyError):
            yield f"{where}: {resource['resourceType']!r} is not a FHIR R4B resource type"
            continue
        try:
            model.model_validate(resource)
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(p) for p in first["loc"])
            yield f"{where}: not a valid {resource['resourceType']}: {location}: {first['msg']}"


def _duplicate_uuids(body: dict[str, Any]) -> Iterator[str]:
    seen: dict[str, str] = {}
    for i, card in enumerate(_list(body.get("cards"))):
        if not isinstance(card, dict):
            continue
        owners = [(["cards", i], card)] + [
            (["cards", i, "suggestions", j], s) for j, s in enumerate(_list(card.get("suggestions")))
        ]
        for path, owner in owners:
            uuid = owner.get("uuid") if isinstance(owner, dict) else None
            if not isinstance(uuid, str) or not uuid:
                continue
            if uuid in seen:
                yield f"{_path([*path, 'uuid'])}: uuid {uuid} already used at {seen[uuid]}"
            else:
                seen[uuid] = _path(path)

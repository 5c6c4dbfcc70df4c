"""Check a real HTTP response against the served OpenAPI description (service/openapi.json with the
schema files of service/schemas/ it references, assembled by service.api.openapi): status described,
media type described, body valid against the described schema (jsonschema, Draft 2020-12)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.api.openapi import description_text

_URI = "urn:tacro-cds:openapi"
ERROR_MEDIA_TYPE = "application/fhir+json"


@lru_cache(maxsize=1)
def description() -> dict[str, Any]:
    """The OpenAPI document as GET /openapi.json serves it."""
    doc: dict[str, Any] = json.loads(description_text())
    return doc


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(_URI, Resource.from_contents(description(), default_specification=DRAFT202012))


def _resolve(obj: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
    """Follow a ``$ref`` to a component (not a schema), returning the object and its JSON pointer."""
    while "$ref" in obj:
        pointer = obj["$ref"][1:]
        obj = description()
        for part in pointer.strip("/").split("/"):
            obj = obj[part]
    return obj, pointer


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def described_response(method: str, path: str, status: int) -> tuple[dict[str, Any], str]:
    """The response object for (method, path template, status) and its JSON pointer."""
    operation = description()["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path}: status {status} is not described"
    pointer = f"/paths/{_escape(path)}/{method.lower()}/responses/{status}"
    return _resolve(responses[str(status)], pointer)


def check_response(method: str, path: str, status: int, content_type: str | None, body: bytes) -> Any:
    """Assert the response conforms to the description; return the decoded body (or None)."""
    response, pointer = described_response(method, path, status)
    content = response.get("content")
    if not content:
        assert not body, f"{method} {path} {status}: described without a body, got {body[:200]!r}"
        return None
    media_type = (content_type or "").split(";")[0].strip()
    assert media_type in content, f"{method} {path} {status}: media type {media_type!r} not in {list(content)}"
    decoded = json.loads(body)
    schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
    validator = Draft202012Validator(
        {"$ref": f"{_URI}#{schema_pointer}"}, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(decoded), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, (
        f"{method} {path} {status}: body does not match the description: "
        f"{[f'{list(e.absolute_path)}: {e.message[:200]}' for e in errors[:3]]}"
    )
    return decoded


def schema_validator(component: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<component>``."""
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{component}"},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )

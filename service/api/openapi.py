"""The OpenAPI 3.1 description served at ``GET /openapi.json``, assembled from one source per schema.

``service/api/openapi.json`` describes the paths and responses and names its request and response
schemas by relative file references (``{"$ref": "schemas/request.json"}``,
``{"$ref": "schemas/response.json#/$defs/card"}``) to the JSON Schemas the service validates with,
``service/schemas/*.json``. Clients get one self-contained document: at start-up each referenced file
is placed, once, under the component that references the whole file (its *home*, e.g.
``CdsServiceRequest`` for ``schemas/request.json``), and every reference into a file, from the
description or from another schema file, is rewritten to a local pointer under that home
(``#/components/schemas/CdsServiceResponse/$defs/card``). The files' ``$id`` and ``$schema`` are
left out of the copy: an embedded ``$id`` would make the rewritten local pointers resolve against
the schema's own URI instead of this document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

SOURCE = "openapi.json"
SCHEMA_FOLDER = "schemas/"
COMPONENTS = "#/components/schemas/"
_FILE_ONLY_KEYS = ("$id", "$schema")


class DescriptionError(ValueError):
    """The description's references cannot be assembled into one document (a start-up error)."""


def _read(path: Traversable) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` value in a JSON document."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _rewrite(node: Any, where: str, homes: dict[str, str]) -> Any:
    """``node`` with each ``$ref`` (relative to ``where``, the file it is written in) made local."""
    if isinstance(node, dict):
        return {
            key: (
                _local(value, where, homes)
                if key == "$ref" and isinstance(value, str)
                else _rewrite(value, where, homes)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(value, where, homes) for value in node]
    return node


def _local(ref: str, where: str, homes: dict[str, str]) -> str:
    target, fragment = urldefrag(urljoin(where, ref))
    if target == SOURCE:
        return ref  # already a pointer into the description
    if target not in homes:
        raise DescriptionError(
            f"{where}: $ref {ref!r} names {target!r}, which no component of "
            f'{SOURCE} references as a whole file ({{"$ref": "{target}"}})'
        )
    if fragment and not fragment.startswith("/"):
        raise DescriptionError(f"{where}: $ref {ref!r}: only JSON-pointer fragments are supported")
    return COMPONENTS + homes[target] + fragment


def bundle(source: dict[str, Any], read_schema: Callable[[str], Any]) -> dict[str, Any]:
    """The self-contained description: ``source`` with the schema files it references embedded.

    ``read_schema(name)`` returns the parsed file ``schemas/<name>``."""
    components = source.get("components", {}).get("schemas", {})
    homes: dict[str, str] = {}
    for name, schema in components.items():
        if set(schema) == {"$ref"} and "#" not in schema["$ref"]:
            target = urljoin(SOURCE, schema["$ref"])
            if not target.startswith(SCHEMA_FOLDER):
                raise DescriptionError(f"component {name}: {schema['$ref']!r} is not a file in {SCHEMA_FOLDER}")
            if target in homes:
                raise DescriptionError(f"{target} is embedded twice: as {homes[target]} and as {name}")
            homes[target] = name
    embedded: dict[str, Any] = {}
    for target, name in homes.items():
        schema = read_schema(target.removeprefix(SCHEMA_FOLDER))
        declared = schema.get("$id", "")
        if declared and urldefrag(declared)[0].rsplit("/", 1)[-1] != target.rsplit("/", 1)[-1]:
            # Relative references are resolved against the file's place here and against its $id by
            # the validators: the two agree only when the $id ends in the file's own name.
            raise DescriptionError(f"{target}: $id {declared!r} does not end in the file's name")
        body = {key: value for key, value in schema.items() if key not in _FILE_ONLY_KEYS}
        embedded[name] = _rewrite(body, target, homes)
    document: dict[str, Any] = _rewrite({k: v for k, v in source.items() if k != "components"}, SOURCE, homes)
    bundled_components = _rewrite(source.get("components", {}), SOURCE, homes)
    bundled_components["schemas"] = {
        name: embedded.get(name, schema) for name, schema in bundled_components.get("schemas", {}).items()
    }
    document["components"] = bundled_components
    leftover = [ref for ref in _refs(document) if not ref.startswith("#")]
    if leftover:
        raise DescriptionError(f"references left outside the document: {sorted(set(leftover))}")
    for ref in sorted(set(_refs(document))):
        if not _resolves(document, ref[1:]):
            raise DescriptionError(f"$ref {ref!r} points at nothing in the assembled description")
    return document


def _resolves(document: Any, pointer: str) -> bool:
    node = document
    for part in pointer.split("/")[1:] if pointer else []:
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def referenced_files(source: dict[str, Any]) -> set[str]:
    """The schema files (names under ``schemas/``) the description references."""
    return {
        urldefrag(urljoin(SOURCE, ref))[0].removeprefix(SCHEMA_FOLDER)
        for ref in _refs(source)
        if urldefrag(urljoin(SOURCE, ref))[0].startswith(SCHEMA_FOLDER)
    }


def source_description() -> dict[str, Any]:
    """``service/api/openapi.json`` as written (with its file references)."""
    document: dict[str, Any] = _read(resources.files("service.api") / SOURCE)
    return document


@lru_cache(maxsize=1)
def description_text() -> str:
    """The served description, assembled once per process (start-up calls it, so a reference to a
    missing file or definition stops start-up instead of failing a client)."""
    folder = resources.files("service") / "schemas"
    return json.dumps(bundle(source_description(), lambda name: _read(folder / name)), ensure_ascii=False)

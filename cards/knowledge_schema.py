"""The JSON Schemas of the knowledge tables, generated from their models (``cards.knowledge_model``).

The schemas are published beside the YAML files for reviewers and for sites writing a site file; the
loader checks the effective tables against them first, for a one-line error naming the entry. They are
never edited by hand::

    python -m cards.knowledge_schema --write   # rewrite cards/knowledge/*.schema.json
    python -m cards.knowledge_schema --check   # exit 1 when a checked-in schema is out of date
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .knowledge_model import TABLE_MODELS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
FOLDER = Path(__file__).resolve().parent / "knowledge"


def table_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one knowledge table."""
    schema = TABLE_MODELS[name].model_json_schema(by_alias=True)
    title = schema.get("title")
    tidy = _tidy(schema)
    return {"$schema": SCHEMA_DIALECT, "title": title, **{k: v for k, v in tidy.items() if k != "title"}}


def schema_text(name: str) -> str:
    """The schema file's text, as written."""
    return json.dumps(table_schema(name), indent=2, ensure_ascii=False) + "\n"


def _tidy(node: Any) -> Any:
    """Drop pydantic's generated titles, and state an optional key as its type alone: a key a table may
    leave out, not one it may set to null (null was never accepted)."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tidy(value) for key, value in node.items() if key != "title"}
    properties = out.get("properties")
    if isinstance(properties, dict):
        required = set(out.get("required") or ())
        out["properties"] = {key: value if key in required else _not_null(value) for key, value in properties.items()}
    return out


def _not_null(prop: Any) -> Any:
    if not isinstance(prop, dict):
        return prop
    options = prop.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and prop.get("default", ...) is None:
        rest = [o for o in options if o != {"type": "null"}]
        base = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
        return {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **base}
    return prop


def stale(folder: Path | None = None) -> list[str]:
    """The schema files that differ from the ones the models generate."""
    folder = folder or FOLDER
    return [
        f"{name}.schema.json"
        for name in sorted(TABLE_MODELS)
        if not (folder / f"{name}.schema.json").is_file()
        or (folder / f"{name}.schema.json").read_text(encoding="utf-8") != schema_text(name)
    ]


def main(argv: list[str] | None = None) -> int:
    """Write or check the schema files."""
    parser = argparse.ArgumentParser(prog="python -m cards.knowledge_schema", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite cards/knowledge/*.schema.json")
    mode.add_argument("--check", action="store_true", help="exit 1 when a schema file is out of date")
    args = parser.parse_args(argv)
    if args.write:
        for name in sorted(TABLE_MODELS):
            (FOLDER / f"{name}.schema.json").write_text(schema_text(name), encoding="utf-8")
        return 0
    out_of_date = stale()
    for name in out_of_date:
        print(f"{name} differs from its model: run python -m cards.knowledge_schema --write")
    return 1 if out_of_date else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The clinical knowledge base: reviewable YAML files beside this module, validated at start-up.

Each ``knowledge/<name>.yaml`` has a JSON Schema ``knowledge/<name>.schema.json``. A site file
(``SITE_CONFIG``) is YAML whose top-level keys are those names; its mappings merge into the defaults
entry by entry and its lists replace them. A file that does not validate stops start-up with a
message naming the entry; so does a drug key (interactions, care, products) that codes.yaml `drugs`
does not define, since a rule naming it would silently never apply.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator


class KnowledgeError(ValueError):
    """The knowledge base or a site file is invalid; the message names the file and entry."""


Knowledge = Mapping[str, Any]


def _package_dir() -> Any:
    return resources.files("cards") / "knowledge"


def default_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _package_dir().iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{origin}: not valid YAML: {exc}") from None


def merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key; anything else (lists, numbers) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def load_knowledge(site_config: str | Path | None = None) -> dict[str, Any]:
    """Load every default file, apply the site file, validate, and return the effective tables."""
    folder = _package_dir()
    tables: dict[str, Any] = {}
    for name in default_names():
        tables[name] = _read_yaml((folder / f"{name}.yaml").read_text(encoding="utf-8"),
                                  f"cards/knowledge/{name}.yaml")
    if site_config:
        path = Path(site_config)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KnowledgeError(f"site file {path}: cannot be read: {exc.strerror}") from None
        site = _read_yaml(text, f"site file {path}")
        if site is not None:
            if not isinstance(site, dict):
                raise KnowledgeError(f"site file {path}: must be a mapping of table names")
            unknown = sorted(set(site) - set(tables))
            if unknown:
                raise KnowledgeError(
                    f"site file {path}: unknown table(s) {', '.join(unknown)}; known: {', '.join(tables)}")
            for name, override in site.items():
                tables[name] = merge(tables[name], override)
    for name, table in tables.items():
        _validate(name, table, site_config)
    check_drug_keys(tables, site_config)
    return tables


def _drug_references(tables: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(table, entry path, drug keys) for every place outside `codes.drugs` that names a drug key."""
    refs: list[tuple[str, str, list[str]]] = []
    interactions = tables.get("interactions") or {}
    for i, entry in enumerate(interactions.get("entries") or []):
        where = f"entries/{i} (id {entry.get('id')})"
        refs.append(("interactions", f"{where}/drugs", list(entry.get("drugs") or [])))
        refs.append(("interactions", f"{where}/drug_display", list(entry.get("drug_display") or {})))
        if "prefer_instead" in entry:
            refs.append(("interactions", f"{where}/prefer_instead/ingredient",
                         [entry["prefer_instead"]["ingredient"]]))
    care = tables.get("care") or {}
    for i, card in enumerate(care.get("cards") or []):
        refs.append(("care", f"cards/{i} (id {card.get('id')})/when/unless_taking",
                     list((card.get("when") or {}).get("unless_taking") or [])))
    codes = tables.get("codes") or {}
    for i, product in enumerate(codes.get("products") or []):
        refs.append(("codes", f"products/{i} (rxnorm {product.get('rxnorm')})/ingredients",
                     list(product.get("ingredients") or [])))
    for i, entry in enumerate(codes.get("release_names") or []):
        refs.append(("codes", f"release_names/{i}/ingredient", [entry["ingredient"]]))
    for i, entry in enumerate((codes.get("vaccines") or {}).get("codes") or []):
        refs.append(("codes", f"vaccines/codes/{i} (code {entry.get('code')})/drug", [entry["drug"]]))
    return refs


def check_drug_keys(tables: Mapping[str, Any], site_config: str | Path | None = None) -> None:
    """Every drug key the tables name is defined in codes.yaml `drugs`; else a KnowledgeError.

    A key codes.yaml never produces would make its interaction or exception silently never apply.
    """
    defined = set((tables.get("codes") or {}).get("drugs") or {})
    for name, entry, keys in _drug_references(tables):
        unknown = [k for k in keys if k not in defined]
        if unknown:
            origin = f"{name} (with site file {site_config})" if site_config else f"cards/knowledge/{name}.yaml"
            raise KnowledgeError(
                f"{origin}: entry {entry}: drug key(s) {', '.join(unknown)} not defined in codes.yaml `drugs`"
                " (add them there with their names, or use a key it defines)")


def _validate(name: str, table: Any, site_config: str | Path | None) -> None:
    schema_file = _package_dir() / f"{name}.schema.json"
    if not schema_file.is_file():
        raise KnowledgeError(f"cards/knowledge/{name}.yaml has no schema {name}.schema.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(table), key=lambda e: list(map(str, e.path)))
    if errors:
        err = errors[0]
        entry = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        origin = f"{name} (with site file {site_config})" if site_config else f"cards/knowledge/{name}.yaml"
        raise KnowledgeError(f"{origin}: entry {entry}: {err.message}")

"""The clinical knowledge base: reviewable YAML files beside this module, validated at start-up.

Each ``knowledge/<name>.yaml`` has a model in ``cards.knowledge_model`` and a JSON Schema generated from
it, ``knowledge/<name>.schema.json``. A site file
(``SITE_CONFIG``) is YAML whose top-level keys are those names. Its mappings merge into the defaults
key by key. Lists of entries that carry an identity (``id``, or the key of
``cards.site_merge.KEYED_LISTS``: a product's ``rxnorm``, a coding's ``system`` + ``code`` ...) merge
entry by entry: a site entry with a known identity overrides that entry, a new identity adds one, and
``{id: ..., remove: true}`` removes one. Other lists (a drug's names, the dose-band table) are
replaced whole.

Everything is checked at load, by the service at start-up as much as by ``tacro-cds knowledge check``:
the schemas and the models (built once here: the rules read the model), drug keys that codes.yaml must define, protocol source ids, and the safety guard that a
site cannot drop or weaken a critical interaction without saying so (``acknowledge_critical``).

A value a site changes cites the site file instead of the paper that gave the shipped value.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from .knowledge_model import KnowledgeBase, KnowledgeTables, ProtocolTable
from .site_merge import (
    SITE_SOURCE_ID,
    SiteMerge,
    entry_label,
    identity,
    list_key,
    merge,
    site_source,
)
from .site_merge import (
    KnowledgeError as KnowledgeError,  # raised by the loader and the merge alike
)

Knowledge = Mapping[str, Any]


def _package_dir() -> Any:
    return resources.files("cards") / "knowledge"


def default_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _package_dir().iterdir() if p.name.endswith(".yaml"))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same result, faster


def _read_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{origin}: not valid YAML: {exc}") from None


def shipped_tables() -> dict[str, Any]:
    """The knowledge files as shipped, unvalidated (validation happens on the effective tables)."""
    return copy.deepcopy(_shipped())


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    # The packaged files do not change while the process runs: parse them once.
    folder = _package_dir()
    return {
        name: _read_yaml((folder / f"{name}.yaml").read_text(encoding="utf-8"), f"cards/knowledge/{name}.yaml")
        for name in default_names()
    }


# ---------------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Change:
    """One difference between the shipped and the effective knowledge."""

    path: str
    kind: str  # "added" | "removed" | "changed"
    before: Any = None
    after: Any = None

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"~ {self.path}: {_short(self.before)} -> {_short(self.after)}"
        return f"{'+' if self.kind == 'added' else '-'} {self.path}: {self.kind}"


@dataclass(frozen=True)
class LoadedKnowledge:
    """The effective tables and what a reviewer must know about them."""

    tables: KnowledgeTables
    changes: tuple[Change, ...] = ()  # from the shipped knowledge (empty without a site file)
    warnings: tuple[str, ...] = ()  # loadable, but a clinician should look
    products_imported: int = 0
    critical_overrides: tuple[str, ...] = ()  # critical entries the site weakened, each with its reason


def load_knowledge(site_config: str | Path | None = None, products_table: str | Path | None = None) -> KnowledgeTables:
    """Load every default file, apply the site file and an imported product table, check, and return
    the effective tables."""
    return load_knowledge_report(site_config, products_table).tables


def load_knowledge_report(
    site_config: str | Path | None = None, products_table: str | Path | None = None
) -> LoadedKnowledge:
    """As ``load_knowledge``, with the differences from the shipped knowledge and the warnings."""
    shipped = shipped_tables()
    tables = copy.deepcopy(shipped)
    ctx = SiteMerge(site_name=Path(site_config).name if site_config else "")
    if site_config:
        tables = _apply_site(tables, Path(site_config), ctx)
    changes = tuple(c for c in diff(shipped, tables) if not _recited(c)) if site_config else ()
    imported = _add_products(tables, Path(products_table)) if products_table else 0
    for name, table in tables.items():
        _validate(name, table, site_config)
    check_drug_keys(tables, site_config)
    problems = source_problems(tables.get("protocol") or {})
    if problems:
        raise KnowledgeError("; ".join(problems))
    effective = KnowledgeTables(tables)
    model = _typed(tables, site_config)
    effective.model_built(model)
    return LoadedKnowledge(
        tables=effective,
        changes=changes,
        warnings=tuple(knowledge_warnings(model.protocol)),
        products_imported=imported,
        critical_overrides=tuple(ctx.acknowledged),
    )


def _apply_site(tables: dict[str, Any], path: Path, ctx: SiteMerge) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"site file {path}: cannot be read: {exc.strerror}") from None
    site = _read_yaml(text, f"site file {path}")
    if site is None:
        return tables
    if not isinstance(site, dict):
        raise KnowledgeError(f"site file {path}: must be a mapping of table names")
    unknown = sorted(set(site) - set(tables))
    if unknown:
        raise KnowledgeError(f"site file {path}: unknown table(s) {', '.join(unknown)}; known: {', '.join(tables)}")
    for name, override in site.items():
        tables[name] = merge(tables[name], override, (name,), ctx)
    protocol = tables.get("protocol")
    cites_site = any(where.startswith("protocol.") for where in ctx.cited)
    if (
        cites_site
        and isinstance(protocol, dict)
        and isinstance(protocol.get("sources"), dict)
        and SITE_SOURCE_ID not in protocol["sources"]
    ):
        protocol["sources"] = {**protocol["sources"], SITE_SOURCE_ID: site_source(path.name)}
    return tables


def _add_products(tables: dict[str, Any], path: Path) -> int:
    """Products of an imported RxNorm table that the knowledge does not already define (a reviewed entry
    of codes.yaml or the site file wins over a bulk import)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KnowledgeError(f"product table {path}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise KnowledgeError(f"product table {path}: not valid JSON: {exc}") from None
    rows = data.get("products") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise KnowledgeError(f"product table {path}: no `products` list (write it with `tacro-cds rxnorm import`)")
    codes = tables["codes"]
    known = {str(p.get("rxnorm")) for p in codes.get("products") or []}
    added = [row for row in rows if isinstance(row, dict) and str(row.get("rxnorm")) not in known]
    codes["products"] = list(codes.get("products") or []) + added
    return len(added)


# ---------------------------------------------------------------------------------------------------
# Checks


def _drug_references(tables: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(table, entry path, drug keys) for every place outside `codes.drugs` that names a drug key."""
    refs: list[tuple[str, str, list[str]]] = []
    interactions = tables.get("interactions") or {}
    for i, entry in enumerate(interactions.get("entries") or []):
        where = f"entries/{i} (id {entry.get('id')})"
        refs.append(("interactions", f"{where}/drugs", list(entry.get("drugs") or [])))
        refs.append(("interactions", f"{where}/drug_display", list(entry.get("drug_display") or {})))
        if "prefer_instead" in entry:
            refs.append(("interactions", f"{where}/prefer_instead/ingredient", [entry["prefer_instead"]["ingredient"]]))
    care = tables.get("care") or {}
    for i, card in enumerate(care.get("cards") or []):
        refs.append(
            (
                "care",
                f"cards/{i} (id {card.get('id')})/when/unless_taking",
                list((card.get("when") or {}).get("unless_taking") or []),
            )
        )
    codes = tables.get("codes") or {}
    for i, product in enumerate(codes.get("products") or []):
        refs.append(
            (
                "codes",
                f"products/{i} (rxnorm {product.get('rxnorm')})/ingredients",
                list(product.get("ingredients") or []),
            )
        )
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
                " (add them there with their names, or use a key it defines)"
            )


def source_problems(protocol: Mapping[str, Any]) -> list[str]:
    """Protocol entries whose ``source`` is not an id of the ``sources`` table (empty when all resolve)."""
    known = set(protocol.get("sources") or {})
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            src = node.get("source")
            if isinstance(src, str) and src not in known:
                problems.append(f"protocol entry {path or '(top level)'}: unknown source '{src}'")
            for key, value in node.items():
                if key != "sources":
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(protocol, "")
    return problems


def _validate(name: str, table: Any, site_config: str | Path | None) -> None:
    validator = _validator(name)
    if validator is None:
        raise KnowledgeError(f"cards/knowledge/{name}.yaml has no schema {name}.schema.json")
    errors = sorted(validator.iter_errors(table), key=lambda e: list(map(str, e.path)))
    if errors:
        err = errors[0]
        entry = _entry_path(name, table, list(err.absolute_path))
        origin = f"{name} (with site file {site_config})" if site_config else f"cards/knowledge/{name}.yaml"
        raise KnowledgeError(f"{origin}: entry {entry}: {err.message}")


def _typed(tables: Mapping[str, Any], site_config: str | Path | None) -> KnowledgeBase:
    """The tables as a ``KnowledgeBase``; what the schemas cannot say (a range without an end, a drug
    listed twice) fails here, with the same one-line message naming the entry."""
    try:
        return KnowledgeBase.model_validate(dict(tables))
    except ValidationError as exc:
        err = exc.errors()[0]
        name, *parts = [part for part in err["loc"]]
        entry = _entry_path(str(name), tables.get(str(name)), parts)
        origin = f"{name} (with site file {site_config})" if site_config else f"cards/knowledge/{name}.yaml"
        raise KnowledgeError(f"{origin}: entry {entry}: {err['msg']}") from None


@functools.cache
def _validator(name: str) -> Draft202012Validator | None:
    schema_file = _package_dir() / f"{name}.schema.json"
    if not schema_file.is_file():
        return None
    return Draft202012Validator(json.loads(schema_file.read_text(encoding="utf-8")))


def _entry_path(name: str, table: Any, parts: list[Any]) -> str:
    """ "products/12 (rxnorm 1)/release": a schema error's path, naming keyed entries by identity."""
    shown: list[str] = []
    node = table
    names: list[str] = [name]
    for part in parts:
        text = str(part)
        if isinstance(node, list) and isinstance(part, int):
            key = list_key(names, node)
            ident = identity(node[part], key) if key else None
            if ident is not None:
                text += f" ({' + '.join(key or ())} {ident})"
            names.append(ident or str(part))
        else:
            names.append(str(part))
        shown.append(text)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return "/".join(shown) or "(top level)"


# ---------------------------------------------------------------------------------------------------
# What a reviewer needs: warnings, unconfirmed entries, differences


def knowledge_warnings(protocol: ProtocolTable) -> list[str]:
    """Settings that load but that a clinician should look at, in plain words."""
    warnings: list[str] = []
    cutoff = protocol.eligibility.ratio_cutoff.standard.value
    first = protocol.dose.bands.table[0].ratio_min  # the table has at least one band
    if cutoff > first:
        warnings.append(
            f"The Th1/Th2 cut-off ({cutoff:g}) is above the start of the first dose band ({first:g}): ratios from "
            f"{first:g} to below {cutoff:g} have a band dose but are not eligible. Align the cut-off and the bands."
        )
    elif cutoff < first:
        warnings.append(
            f"The Th1/Th2 cut-off ({cutoff:g}) is below the start of the first dose band ({first:g}): an eligible "
            f"ratio from {cutoff:g} to below {first:g} has no band dose. Align the cut-off and the bands."
        )
    return warnings


# The entries a dose card rests on: all must be confirmed for the dose card to be confirmed.
DOSE_ENTRIES = ("dose.bands", "dose.th1_high_addon.th1_pct_min")


@dataclass(frozen=True)
class Confirmation:
    """Whether the entries a card rests on are confirmed by the site, and which are not."""

    pending: tuple[str, ...]

    @property
    def confirmed(self) -> bool:
        return not self.pending


def _site_defaults(node: Any, path: str) -> Iterator[str]:
    if isinstance(node, Mapping):
        if node.get("site_default") is True:
            yield path
        for key, value in node.items():
            if key != "sources":
                yield from _site_defaults(value, f"{path}.{key}" if path else str(key))


def unconfirmed_entries(tables: Mapping[str, Any]) -> tuple[str, ...]:
    """ "protocol: dose.bands", ...: every entry still marked ``site_default: true``, table by table."""
    found: list[str] = []
    for name in sorted(tables):
        found += [f"{name}: {path}" for path in _site_defaults(tables[name], "")]
    return tuple(found)


def dose_confirmation(protocol: Mapping[str, Any]) -> Confirmation:
    """The dose card is confirmed only when the dose bands and the Th1 % trigger both are."""
    pending: list[str] = []
    for path in DOSE_ENTRIES:
        node: Any = protocol
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping) or node.get("site_default") is True:
            pending.append(path)
    return Confirmation(pending=tuple(pending))


def diff(shipped: Mapping[str, Any], effective: Mapping[str, Any]) -> list[Change]:
    """Every difference from the shipped knowledge, keyed entries named by their identity."""
    changes: list[Change] = []
    for name in sorted(set(shipped) | set(effective)):
        _diff(shipped.get(name), effective.get(name), (name,), name, changes)
    return changes


def _diff(before: Any, after: Any, path: tuple[str, ...], shown: str, out: list[Change]) -> None:
    if before == after:
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in list(before) + [k for k in after if k not in before]:
            where = f"{shown}.{key}"
            if key not in after:
                out.append(Change(where, "removed", before[key], None))
            elif key not in before:
                out.append(Change(where, "added", None, after[key]))
            else:
                _diff(before[key], after[key], path + (str(key),), where, out)
        return
    if isinstance(before, list) and isinstance(after, list):
        key = list_key(path, before)
        if key is not None:
            old = {identity(b, key): b for b in before}
            new = {identity(a, key): a for a in after}
            for ident, item in old.items():
                label = f"{shown}{entry_label(key, str(ident))}"
                if ident not in new:
                    out.append(Change(label, "removed", item, None))
                else:
                    _diff(item, new[ident], path + (str(ident),), label, out)
            for ident, item in new.items():
                if ident not in old:
                    out.append(Change(f"{shown}{entry_label(key, str(ident))}", "added", None, item))
            return
    out.append(Change(shown, "changed", before, after))


def _recited(change: Change) -> bool:
    """A change the loader made because the site set a value (the entry now cites the site file):
    a consequence of another change, not one the site wrote."""
    last = change.path.rsplit(".", 1)[-1]
    after = change.after
    if change.path == f"protocol.sources.{SITE_SOURCE_ID}":
        return True
    if last == "source" and isinstance(after, str):
        return after == SITE_SOURCE_ID or after.startswith("site file ")
    if last == "sources" and isinstance(after, list) and len(after) == 1:
        return str(after[0]).startswith("Site file ")
    return last == "section" and change.kind == "removed"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."

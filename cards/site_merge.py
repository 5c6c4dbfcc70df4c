"""Merging a site file into the shipped knowledge: mappings key by key, lists of entries with an
identity entry by entry (add, override, ``remove: true``), other lists replaced whole. A value the
site changes cites the site file; a critical interaction is never dropped or weakened silently."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class KnowledgeError(ValueError):
    """The knowledge base or a site file is invalid; the message names the file and entry."""


# Lists whose entries merge by identity. "*" matches any mapping key at that level. A list not named
# here still merges by identity when every shipped entry carries an ``id`` (or is a coding: ``system`` +
# ``code``, or a code prefix: ``system`` + ``prefix``), so a code list added later merges the same way.
KEYED_LISTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("interactions", "entries"), ("id",)),
    (("interactions", "links"), ("url",)),
    (("*", "override_reasons", "codes"), ("code",)),
    (("*", "override_reasons", "reasons"), ("code",)),
    (("care", "cards"), ("id",)),
    (("codes", "products"), ("rxnorm",)),
    (("codes", "release_names"), ("ingredient", "release")),
    (("codes", "observations", "*", "codes"), ("system", "code")),
    (("codes", "observations", "*", "coded_values", "*"), ("system", "code")),
    (("codes", "conditions", "*", "codes"), ("system", "code")),
    (("codes", "conditions", "*", "code_prefixes"), ("system", "prefix")),
    (("codes", "transfer", "*"), ("system", "code")),
    (("protocol", "baseline_labs", "tests"), ("key",)),
)
REMOVE = "remove"
ACKNOWLEDGE = "acknowledge_critical"
SITE_MARKERS = frozenset({REMOVE, ACKNOWLEDGE})
# Keys that describe an entry rather than set it: changing only these keeps the entry's citation.
DESCRIPTIVE = frozenset({"source", "sources", "section", "note", "site_default", "label", "citation"})
SITE_SOURCE_ID = "site-file"


# ---------------------------------------------------------------------------------------------------
# Keyed lists


def list_key(path: Sequence[str], items: Sequence[Any]) -> tuple[str, ...] | None:
    """The identity fields of the list at ``path`` (table name first), or None: replaced whole."""
    for pattern, key in KEYED_LISTS:
        if len(pattern) == len(path) and all(p in ("*", q) for p, q in zip(pattern, path, strict=False)):
            return key
    for key in (("id",), ("system", "code"), ("system", "prefix")):
        if items and all(isinstance(i, Mapping) and all(k in i for k in key) for i in items):
            return key
    return None


def identity(item: Any, key: tuple[str, ...]) -> str | None:
    """ "fluconazole", "http://loinc.org|2160-0": an entry's identity, or None when it has none."""
    if not isinstance(item, Mapping) or any(k not in item for k in key):
        return None
    return "|".join(str(item[k]) for k in key)


def entry_label(key: tuple[str, ...], ident: str) -> str:
    return f"[{ident}]" if key == ("id",) else f"[{'+'.join(key)} {ident}]"


# ---------------------------------------------------------------------------------------------------
# Merging a site file


@dataclass
class SiteMerge:
    """One site file's merge: where it is, and what it re-cited."""

    site_name: str
    cited: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # critical entries weakened, with the reason


def merge(base: Any, override: Any, path: tuple[str, ...], ctx: SiteMerge) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = (
                merge(base[key], value, path + (str(key),), ctx)
                if key in base
                else _strip_markers(copy.deepcopy(value))
            )
        _recite(base, override, merged, path, ctx)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        key = list_key(path, base)
        if key is not None:
            return _merge_keyed(base, override, key, path, ctx)
    return _strip_markers(copy.deepcopy(override))


def _merge_keyed(
    base: list[Any], override: list[Any], key: tuple[str, ...], path: tuple[str, ...], ctx: SiteMerge
) -> list[Any]:
    where = ".".join(path)
    merged = list(base)
    index = {identity(item, key): i for i, item in enumerate(base)}
    removed: set[int] = set()
    for n, item in enumerate(override):
        ident = identity(item, key)
        if ident is None:
            raise KnowledgeError(
                f"site file {ctx.site_name}: {where}[{n}] has no {' + '.join(key)}: entries of this list are "
                f"merged one by one by {' + '.join(key)} (to add, override or remove one)"
            )
        at = index.get(ident)
        if item.get(REMOVE) is True:
            if at is None:
                raise KnowledgeError(
                    f"site file {ctx.site_name}: {where}{entry_label(key, ident)}: `remove` names no shipped entry"
                )
            _guard_critical(base[at], None, item, f"{where}{entry_label(key, ident)}", ctx)
            removed.add(at)
            continue
        if at is None:
            index[ident] = len(merged)
            merged.append(_strip_markers(copy.deepcopy(item)))
        else:
            new = merge(base[at], item, path + (ident,), ctx)
            _guard_critical(base[at], new, item, f"{where}{entry_label(key, ident)}", ctx)
            merged[at] = new
    return [item for i, item in enumerate(merged) if i not in removed]


def _strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_markers(v) for k, v in value.items() if k not in SITE_MARKERS}
    if isinstance(value, list):
        return [_strip_markers(v) for v in value]
    return value


def _guard_critical(
    before: Mapping[str, Any], after: Mapping[str, Any] | None, site_item: Mapping[str, Any], where: str, ctx: SiteMerge
) -> None:
    """A critical entry is never dropped, downgraded or narrowed by a site without an explanation."""
    if before.get("severity") != "critical":
        return
    if after is None:
        change = "removes this critical entry"
    elif after.get("severity") != "critical":
        change = f"downgrades this critical entry to {after.get('severity')}"
    elif set(before.get("drugs") or ()) - set(after.get("drugs") or ()):
        lost = sorted(set(before.get("drugs") or ()) - set(after.get("drugs") or ()))
        change = f"drops {', '.join(lost)} from this critical entry"
    else:
        return
    reason = site_item.get(ACKNOWLEDGE)
    if not (isinstance(reason, str) and reason.strip()):
        raise KnowledgeError(
            f"site file {ctx.site_name}: {where}: the site {change}. Refused: a critical interaction is only "
            f'dropped or weakened when the site says why, with `{ACKNOWLEDGE}: "<reason>"` on that entry'
        )
    ctx.acknowledged.append(f"{where}: the site {change}, because: {reason.strip()}")


def _recite(
    base: Mapping[str, Any], override: Mapping[str, Any], merged: dict[str, Any], path: tuple[str, ...], ctx: SiteMerge
) -> None:
    """An entry whose value the site sets cites the site file, unless the site gave its own source."""
    if not (isinstance(base.get("source"), str) or isinstance(base.get("sources"), list)):
        return
    if "source" in override or "sources" in override:
        return
    changed = [
        k
        for k, v in override.items()
        if k not in DESCRIPTIVE and k not in SITE_MARKERS and not isinstance(base.get(k), dict) and base.get(k) != v
    ]
    if not changed:
        return
    where = ".".join(path)
    ctx.cited.append(where)
    if isinstance(base.get("sources"), list):
        merged["sources"] = [f"Site file {ctx.site_name} (sets {', '.join(changed)})"]
    elif path and path[0] == "protocol":
        merged["source"] = SITE_SOURCE_ID
        merged.pop("section", None)
    else:
        merged["source"] = f"site file {ctx.site_name}"


def site_source(site_name: str) -> dict[str, str]:
    return {
        "label": f"Site configuration ({site_name})",
        "citation": f"Set by the site file {site_name}; not from a publication",
    }

"""``tacro-cds knowledge check [--site FILE]``: validate the knowledge base (with a site file) and
print the effective protocol tables for a clinician to review."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from cards.knowledge import (
    KnowledgeError,
    LoadedKnowledge,
    dose_confirmation,
    load_knowledge_report,
    unconfirmed_entries,
)
from cards.text import fmt_number

SITE_MARK = "  [SITE DEFAULT: a clinician must confirm]"


def _value(entry: Mapping[str, Any]) -> str:
    value = entry["value"]
    text = fmt_number(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    unit = entry.get("unit")
    if unit and unit != "{ratio}":
        text += f" {unit}"
    return text


def _line(out: TextIO, label: str, entry: Mapping[str, Any]) -> None:
    mark = SITE_MARK if entry.get("site_default") else ""
    out.write(f"  {label:<48} {_value(entry):<14} (source: {entry['source']}){mark}\n")


def _entries(node: Any, path: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """Every {value, source} entry under ``node``, with its dotted path."""
    if isinstance(node, Mapping):
        if "value" in node and "source" in node:
            return [(path, node)]
        found: list[tuple[str, Mapping[str, Any]]] = []
        for key, value in node.items():
            found += _entries(value, f"{path}.{key}" if path else str(key))
        return found
    return []


def print_protocol(protocol: Mapping[str, Any], out: TextIO) -> None:
    """The effective protocol tables, readably."""
    for section, title in (
        ("eligibility", "Eligibility"),
        ("timing", "Timing"),
        ("trough", "Trough monitoring"),
        ("safety", "Safety thresholds"),
    ):
        out.write(f"\n{title}\n")
        for path, entry in _entries(protocol[section]):
            _line(out, path, entry)
    bands = protocol["dose"]["bands"]
    mark = SITE_MARK if bands.get("site_default") else ""
    out.write(f"\nDose bands (source: {bands['source']}){mark}\n")
    for band in bands["table"]:
        upper = f"< {fmt_number(band['ratio_below'])}" if "ratio_below" in band else "and above"
        out.write(
            f"  Th1/Th2 {fmt_number(band['ratio_min']):>6} {upper:<10} -> {fmt_number(band['daily_mg'])} mg/day\n"
        )
    for path, entry in _entries({k: v for k, v in protocol["dose"].items() if k != "bands"}):
        _line(out, path, entry)
    labs = protocol["baseline_labs"]
    out.write(f"\nBaseline labs (source: {labs['source']})\n")
    _line(out, "lookback_days", labs["lookback_days"])
    for test in labs["tests"]:
        order = test["order"]
        out.write(
            f"  {test['label']:<48} satisfied by {', '.join(test['concepts'])}; "
            f"orders {order['code']} {order['display']}\n"
        )
    out.write(f"\nOverride reasons ({protocol['override_reasons']['system']})\n")
    for reason in protocol["override_reasons"]["codes"]:
        system = f" ({reason['system']})" if "system" in reason else ""
        out.write(f"  {reason['code']:<24} {reason['display']}{system}\n")
    out.write("\nSources\n")
    for sid, src in protocol["sources"].items():
        out.write(f"  {sid:<24} {src['citation']}" + (f" <{src['url']}>" if src.get("url") else "") + "\n")


def print_review(loaded: LoadedKnowledge, site: str | None, out: TextIO) -> None:
    """What a reviewer must see before trusting the tables: the site's changes, warnings, open numbers."""
    if site:
        out.write(f"\nChanges from the shipped knowledge ({len(loaded.changes)})\n")
        for change in loaded.changes:
            out.write(f"  {change}\n")
        if not loaded.changes:
            out.write("  (none)\n")
        else:
            out.write("  (a value the site sets cites the site file, not the shipped source)\n")
    if loaded.critical_overrides:
        out.write("\nCritical entries the site removed or weakened (with its reason)\n")
        for line in loaded.critical_overrides:
            out.write(f"  {line}\n")
    if loaded.products_imported:
        out.write(f"\nImported RxNorm products added: {loaded.products_imported}\n")
    if loaded.warnings:
        out.write("\nWarnings\n")
        for warning in loaded.warnings:
            out.write(f"  WARNING: {warning}\n")
    unconfirmed = unconfirmed_entries(loaded.tables)
    out.write(f"\nStill unconfirmed (site defaults a clinician must confirm): {len(unconfirmed)}\n")
    for entry in unconfirmed:
        out.write(f"  {entry}\n")
    dose = dose_confirmation(loaded.tables.get("protocol") or {})
    if dose.confirmed:
        out.write("Dose card: confirmed (dose bands and Th1 % trigger confirmed by the site)\n")
    else:
        out.write(
            "Dose card: UNCONFIRMED until the site confirms "
            + " and ".join(dose.pending)
            + " (set `site_default: false` on each)\n"
        )


def knowledge_check(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Validate; on success print the effective tables and return 0, else the message and 1."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        loaded = load_knowledge_report(args.site, getattr(args, "products", None))
    except KnowledgeError as exc:
        err.write(f"knowledge check FAILED: {exc}\n")
        return 1
    tables = loaded.tables
    out.write(
        f"Knowledge base valid{' with site file ' + str(args.site) if args.site else ''}: "
        f"tables {', '.join(sorted(tables))}\n"
    )
    if "protocol" in tables:
        print_protocol(tables["protocol"], out)
    for name in sorted(set(tables) - {"protocol"}):
        table = tables[name]
        size = (
            ", ".join(f"{k}: {len(v)}" for k, v in table.items() if isinstance(v, (list, dict)))
            if isinstance(table, dict)
            else ""
        )
        out.write(f"\nTable {name}: {size or 'loaded'}\n")
    print_review(loaded, args.site, out)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``knowledge check`` on the top-level subcommands."""
    knowledge = sub.add_parser("knowledge", help="validate and print the clinical knowledge base")
    ksub = knowledge.add_subparsers(dest="knowledge_command", required=True)
    check = ksub.add_parser(
        "check",
        help="validate (with a site file) and print the effective tables",
        description="Validate cards/knowledge (and a site file) and print the "
        "effective cut-offs, dose bands and thresholds.",
    )
    check.add_argument("--site", metavar="FILE", default=None, help="site file overriding entries")
    check.add_argument(
        "--products", metavar="FILE", default=None, help="product table written by `tacro-cds rxnorm import`"
    )
    check.set_defaults(func=knowledge_check)

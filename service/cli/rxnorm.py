"""``tacro-cds rxnorm import DIR``: a product table from a site's RxNorm release.

EHRs order products (RxNorm SCD/SBD and packs), not ingredients. The shipped product table covers the
common ones; a site covers its whole formulary by importing its RxNorm release (the RRF files of the
``rrf/`` folder, as NLM distributes them): RXNCONSO.RRF (names and term types) and RXNREL.RRF (which
component, ingredient and dose form a product has) are read, RXNSAT.RRF (strengths) when present. Only
products of the drugs the knowledge base knows (codes.yaml ``drugs``, by RxNorm ingredient code or by
name) are written. The service loads the table with ``RXNORM_PRODUCTS``; a product that codes.yaml or
the site file already defines keeps its reviewed entry.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cards.knowledge import KnowledgeError, load_knowledge, load_knowledge_report
from cards.recognise import normalise

FORMAT = "tacro-cds rxnorm products 1"
PRODUCT_TTYS = frozenset({"SCD", "SBD", "GPCK", "BPCK"})
COMPONENT_TTYS = frozenset({"SCDC", "SBDC"})
INGREDIENT_TTYS = frozenset({"IN", "PIN"})
KEPT_TTYS = PRODUCT_TTYS | COMPONENT_TTYS | INGREDIENT_TTYS | {"DF"}
# Relations walked (either direction: which side is which follows from the term types).
RELATIONS = frozenset(
    {
        "consists_of",
        "constitutes",
        "has_ingredient",
        "ingredient_of",
        "has_precise_ingredient",
        "precise_ingredient_of",
        "form_of",
        "has_form",
        "has_dose_form",
        "dose_form_of",
        "tradename_of",
        "has_tradename",
        "contains",
        "contained_in",
    }
)
_MG = re.compile(r"^(\d+(?:\.\d+)?) MG$")


class RxNormImportError(ValueError):
    """The folder is not a readable RxNorm release; the message says which file and why."""


def _rows(path: Path, min_fields: int) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("|")
            if len(fields) < min_fields:
                raise RxNormImportError(
                    f"{path.name} line {number}: {len(fields) - 1} fields, expected at "
                    f"least {min_fields - 1} (is this an RRF file?)"
                )
            yield fields


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / "rrf" / name):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Release:
    """The part of an RxNorm release the product table needs."""

    tty: dict[str, str] = field(default_factory=dict)  # rxcui -> term type
    name: dict[str, str] = field(default_factory=dict)
    links: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    strength: dict[str, str] = field(default_factory=dict)  # rxcui -> "150 MG"

    @classmethod
    def read(cls, folder: Path) -> Release:
        conso = _find(folder, "RXNCONSO.RRF")
        rel = _find(folder, "RXNREL.RRF")
        if conso is None or rel is None:
            raise RxNormImportError(f"{folder}: RXNCONSO.RRF and RXNREL.RRF are needed (in the folder or its rrf/)")
        release = cls()
        for f in _rows(conso, 18):
            rxcui, sab, tty, text, suppress = f[0], f[11], f[12], f[14], f[16]
            if sab != "RXNORM" or tty not in KEPT_TTYS or suppress not in ("N", ""):
                continue
            release.tty.setdefault(rxcui, tty)
            release.name.setdefault(rxcui, text)
        for f in _rows(rel, 16):
            a, b, rela, sab = f[0], f[4], f[7], f[10]
            if sab == "RXNORM" and rela in RELATIONS and a in release.tty and b in release.tty:
                release.links[a].add(b)
                release.links[b].add(a)
        sat = _find(folder, "RXNSAT.RRF")
        if sat is not None:
            for f in _rows(sat, 13):
                if f[9] == "RXNORM" and f[8] in ("RXN_AVAILABLE_STRENGTH", "RXN_STRENGTH") and f[0] in release.tty:
                    release.strength.setdefault(f[0], f[10].strip().upper())
        return release

    def _of(self, rxcui: str, ttys: frozenset[str] | set[str]) -> set[str]:
        return {n for n in self.links.get(rxcui, ()) if self.tty.get(n) in ttys}

    def clinical(self, product: str) -> set[str]:
        """The clinical drugs (SCD) a product stands for: a branded drug's generic, a pack's contents."""
        tty = self.tty[product]
        if tty == "SCD":
            return {product}
        if tty == "SBD":
            return self._of(product, {"SCD"}) or {product}
        found: set[str] = set()
        for drug in self._of(product, {"SCD", "SBD"}):
            found |= self.clinical(drug)
        return found

    def components(self, product: str) -> set[str]:
        """The clinical components (SCDC: ingredient and strength) of a product."""
        found: set[str] = set()
        for drug in self.clinical(product):
            found |= self._of(drug, {"SCDC"}) or self._of(drug, COMPONENT_TTYS)
        return found

    def ingredients(self, product: str) -> set[str]:
        """Ingredient (IN) rxcuis; a precise ingredient (a salt, PIN) counts as its ingredient."""
        found: set[str] = set()
        for comp in self.components(product):
            for ing in self._of(comp, INGREDIENT_TTYS):
                found |= {ing} if self.tty[ing] == "IN" else self._of(ing, {"IN"})
        return found

    def dose_form(self, product: str) -> str | None:
        forms = sorted(self.name[d] for d in self._of(product, {"DF"}))
        if not forms:
            forms = sorted({self.name[d] for drug in self.clinical(product) for d in self._of(drug, {"DF"})})
        return forms[0] if len(forms) == 1 else None

    def strength_mg(self, product: str) -> float | None:
        """mg per unit of a single-component product, from RXNSAT or the component's name."""
        comps = self.components(product)
        drugs = self.clinical(product)
        if len(comps) != 1 or len(drugs) != 1:
            return None
        [comp] = comps
        [drug] = drugs
        for text in (self.strength.get(drug), self.strength.get(comp), self.name.get(comp, "")):
            match = _MG.match(text or "") or re.search(r" (\d+(?:\.\d+)?) MG$", text or "")
            if match:
                return float(match.group(1))
        return None


def _ingredient_keys(codes: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(RxNorm ingredient code -> drug key, normalised name -> drug key) from codes.yaml."""
    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for key, drug in (codes.get("drugs") or {}).items():
        for code in drug.get("rxnorm") or []:
            by_code[str(code)] = str(key)
        for name in drug.get("names") or []:
            by_name.setdefault(normalise(str(name)), str(key))
    return by_code, by_name


def product_table(release: Release, codes: Mapping[str, Any], origin: str) -> list[dict[str, Any]]:
    """Product entries (codes.yaml `products` shape) for every product of a known drug."""
    by_code, by_name = _ingredient_keys(codes)
    rows: list[dict[str, Any]] = []
    for rxcui, tty in release.tty.items():
        if tty not in PRODUCT_TTYS:
            continue
        keys = sorted(
            {
                k
                for ing in release.ingredients(rxcui)
                for k in [by_code.get(ing) or by_name.get(normalise(release.name[ing]))]
                if k
            }
        )
        if not keys:
            continue
        row: dict[str, Any] = {"rxnorm": rxcui, "ingredients": keys}
        strength = release.strength_mg(rxcui)
        if strength is not None and len(keys) == 1:
            row["strength_mg"] = strength
        form = release.dose_form(rxcui)
        if form:
            row["dose_form"] = form
            if "Oral" in form:
                row["release"] = "extended" if "Extended Release" in form else "immediate"
        row["display"] = release.name[rxcui]
        row["source"] = f"RxNorm release {origin} ({tty})"
        rows.append(row)
    return sorted(rows, key=lambda r: int(r["rxnorm"]) if r["rxnorm"].isdigit() else 0)


def rxnorm_import(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Read the release, write the table, and check that the service loads it."""
    out = out or sys.stdout
    err = err or sys.stderr
    folder = Path(args.folder)
    try:
        codes = load_knowledge(args.site)["codes"]
        release = Release.read(folder)
        rows = product_table(release, codes, folder.name)
        target = Path(args.out)
        target.write_text(
            json.dumps({"format": FORMAT, "source": f"RxNorm release {folder.name}", "products": rows}, indent=1)
            + "\n",
            encoding="utf-8",
        )
        loaded = load_knowledge_report(args.site, target)
    except (RxNormImportError, KnowledgeError) as exc:
        err.write(f"rxnorm import FAILED: {exc}\n")
        return 1
    except OSError as exc:
        err.write(f"rxnorm import FAILED: {exc.filename}: {exc.strerror}\n")
        return 1
    per_drug: dict[str, int] = defaultdict(int)
    for row in rows:
        for key in row["ingredients"]:
            per_drug[key] += 1
    out.write(
        f"Wrote {len(rows)} products of {len(per_drug)} known drugs to {target} "
        f"({loaded.products_imported} new to the knowledge base; reviewed entries kept).\n"
    )
    for key in sorted(per_drug):
        out.write(f"  {key:<32} {per_drug[key]}\n")
    out.write(f"Load it with TACRO_CDS_RXNORM_PRODUCTS={target}\n")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``rxnorm import`` on the top-level subcommands."""
    rxnorm = sub.add_parser("rxnorm", help="build the product table from a site's RxNorm release")
    rsub = rxnorm.add_subparsers(dest="rxnorm_command", required=True)
    imp = rsub.add_parser(
        "import",
        help="read RXNCONSO/RXNREL/RXNSAT and write the product table",
        description="Read an RxNorm release (RRF files) and write the products of the "
        "drugs the knowledge base knows, with ingredient, strength and dose form.",
    )
    imp.add_argument("folder", metavar="DIR", help="the release folder (or its rrf/ folder)")
    imp.add_argument("--out", default="rxnorm-products.json", help="file to write (default rxnorm-products.json)")
    imp.add_argument("--site", metavar="FILE", default=None, help="site file (its drugs are imported too)")
    imp.set_defaults(func=rxnorm_import)

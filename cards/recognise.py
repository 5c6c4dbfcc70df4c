"""Which drug an order is: RxNorm ingredient codes, then RxNorm product codes, then names in its text.

Built once per knowledge table from codes.yaml ``drugs``, ``products`` (shipped, site and imported
from a site's RxNorm release) and ``release_names``. Text is normalised before matching (Unicode NFKC,
invisible format characters such as zero-width spaces and soft hyphens removed, typographic
apostrophes straightened), so "flu\u00adconazole" is fluconazole. A name spelled with look-alike letters of
another script ("fluc\u043enazole" with a Cyrillic o) is not recognised, since the order is not what it seems
to say, but reported so a clinician can check it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from confusable_homoglyphs import confusables

from .facts import Recognition
from .knowledge_model import CodesTable
from .knowledge_model.codes import Product

RXNORM_SYSTEMS = frozenset({"http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88"})

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalise(text: str) -> str:
    """Lower-case NFKC text without format characters (zero-width, soft hyphen, direction marks)."""
    if text.isascii():
        return text.lower()  # NFKC leaves ASCII as it is, and no ASCII character is a format character
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return visible.translate(_APOSTROPHES).lower()


def word_pattern(name: str) -> re.Pattern[str]:
    """A whole-word, case-insensitive pattern for a name from codes.yaml."""
    return re.compile(r"(?<!\w)" + re.escape(normalise(name)) + r"(?!\w)", re.IGNORECASE)


def _latin_lookalike(text: str) -> str | None:
    """The text with look-alike letters of other scripts replaced by their Latin twins, or None when it
    mixes no such letters in."""
    if not confusables.is_dangerous(text, preferred_aliases=["latin"]):
        return None
    found = confusables.is_confusable(text, preferred_aliases=["latin"], greedy=True) or []
    swaps: dict[str, str] = {}
    for hit in found:
        if hit["alias"] in ("LATIN", "COMMON"):
            continue
        latin = next((h["c"] for h in hit["homoglyphs"] if str(h["n"]).startswith("LATIN")), None)
        if latin:
            swaps[hit["character"]] = latin
    return "".join(swaps.get(ch, ch) for ch in text) if swaps else None


@dataclass(frozen=True)
class Recognised:
    """What an order was recognised as, and by what."""

    ingredients: tuple[str, ...] = ()
    by: Recognition | None = None
    matched: str | None = None  # "RxNorm 4450", "text: fluconazole"
    product: Product | None = None
    product_code: str | None = None
    problem: str | None = None  # why a name that looks like a drug was not recognised

    @property
    def dose_form(self) -> str | None:
        """ "Oral Capsule", "Vaginal Cream": the product's RxNorm dose form, when the product says it."""
        return self.product.dose_form if self.product else None

    @property
    def strength_mg(self) -> float | None:
        """mg per capsule or tablet of a single-ingredient product, when the product table gives it."""
        return self.product.strength_mg if self.product else None

    @property
    def release(self) -> Literal["immediate", "extended"] | None:
        """Immediate or extended release, when the product table says it."""
        return self.product.release if self.product else None


# Answers remembered per recogniser: a patient's orders come back call after call with the same codes
# and texts, and matching a text against every drug name is most of an order's extraction. Bounded:
# emptied when full (a worker sees a few thousand distinct orders a day at most).
REMEMBERED_ANSWERS = 4096


@dataclass
class DrugRecogniser:
    """Lookups over codes.yaml for recognising drugs (built once; not to be changed after first use,
    since answers are remembered)."""

    ingredient_codes: dict[str, str] = field(default_factory=dict)  # RxNorm ingredient -> drug key
    names: list[tuple[str, str, re.Pattern[str]]] = field(default_factory=list)  # key, name, pattern
    products: dict[str, Product] = field(default_factory=dict)  # RxNorm product -> entry
    release_names: list[tuple[str, str, re.Pattern[str]]] = field(default_factory=list)  # ingredient, release
    _recognised: dict[tuple[tuple[str, ...], tuple[str, ...]], Recognised] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _releases: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_codes(cls, codes: CodesTable) -> DrugRecogniser:
        """Build the lookups from the ``codes`` knowledge table."""
        rec = cls()
        for key, drug in codes.drugs.items():
            for code in drug.rxnorm:
                rec.ingredient_codes[code] = key
            for name in drug.names:
                rec.names.append((key, normalise(name), word_pattern(name)))
        for product in codes.products:
            rec.products[product.rxnorm] = product
        for entry in codes.release_names:
            for name in entry.names:
                rec.release_names.append((entry.ingredient, entry.release, word_pattern(name)))
        return rec

    def recognise(self, rxnorm_codes: Sequence[str], texts: Sequence[str]) -> Recognised:
        """Ingredient code first, then product code, then a name in the texts; the product, when coded,
        also gives the strength, release and dose form."""
        key = (tuple(rxnorm_codes), tuple(texts))
        known = self._recognised.get(key)
        if known is None:
            known = self._recognise(*key)
            if len(self._recognised) >= REMEMBERED_ANSWERS:
                self._recognised.clear()
            self._recognised[key] = known
        return known

    def _recognise(self, rxnorm_codes: Sequence[str], texts: Sequence[str]) -> Recognised:
        product_code = next((c for c in rxnorm_codes if c in self.products), None)
        product = self.products.get(product_code) if product_code else None
        ingredient_hits = [c for c in rxnorm_codes if c in self.ingredient_codes]
        if ingredient_hits:
            keys = tuple(dict.fromkeys(self.ingredient_codes[c] for c in ingredient_hits))
            return Recognised(keys, "rxnorm-ingredient", "RxNorm " + ", ".join(ingredient_hits), product, product_code)
        if product is not None:
            return Recognised(
                tuple(product.ingredients),
                "rxnorm-product",
                f"RxNorm {product_code}",
                product,
                product_code,
            )
        named, words = self.names_in(texts)
        if named:
            return Recognised(tuple(named), "text", "text: " + ", ".join(words))
        return Recognised(problem=self.lookalike_problem(texts))

    def names_in(self, texts: Iterable[str]) -> tuple[list[str], list[str]]:
        """Drug keys whose names occur as whole words; the longest name wins where names overlap."""
        hits: list[tuple[int, int, int, str, str]] = []  # (text no, start, end, key, name)
        for i, text in enumerate(texts):
            norm = normalise(text)
            for key, name, pattern in self.names:
                if name not in norm:
                    continue  # the pattern needs the name as a substring: skip the regex
                for m in pattern.finditer(norm):
                    hits.append((i, m.start(), m.end(), key, name))
        hits.sort(key=lambda h: h[2] - h[1], reverse=True)
        taken: list[tuple[int, int, int]] = []
        keys: list[str] = []
        words: list[str] = []
        for i, start, end, key, name in hits:
            same_span = (i, start, end) in taken
            overlaps = any(t[0] == i and start < t[2] and t[1] < end for t in taken)
            if overlaps and not same_span:
                continue
            if not same_span:
                taken.append((i, start, end))
            if key not in keys:
                keys.append(key)
            if name not in words:
                words.append(name)
        return keys, words

    def release_in(self, texts: Iterable[str], ingredients: Iterable[str]) -> str | None:
        """The release a brand name in the texts implies for one of the ingredients, or None."""
        key = (tuple(texts), tuple(ingredients))
        known = self._releases.get(key)  # (release,): None is an answer too
        if known is None:
            known = (self._release_in(*key),)
            if len(self._releases) >= REMEMBERED_ANSWERS:
                self._releases.clear()
            self._releases[key] = known
        return known[0]

    def _release_in(self, texts: Iterable[str], ingredients: Iterable[str]) -> str | None:
        norms = [normalise(t) for t in texts]
        keys = set(ingredients)
        for ingredient, release, pattern in self.release_names:
            if ingredient in keys and any(pattern.search(n) for n in norms):
                return release
        return None

    def lookalike_problem(self, texts: Iterable[str]) -> str | None:
        """Why a text that reads as a known drug was not recognised: it mixes look-alike letters of
        another script into the name. None when no text does."""
        for text in texts:
            norm = normalise(text)
            if norm.isascii():
                continue  # nothing to look alike: the common case, kept cheap
            latin = _latin_lookalike(norm)
            if latin is None:
                continue
            keys, words = self.names_in([latin])
            if keys:
                return (
                    f"the medication name reads as {', '.join(words)} but is written with look-alike letters "
                    "of another alphabet: not recognised, check the order"
                )
        return None

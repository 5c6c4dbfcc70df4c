"""The code index built once from ``codes.yaml`` (site-overridable): which codes name which concept."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cards.knowledge_model import CodesTable
from cards.recognise import DrugRecogniser, normalise
from cards.units import CANONICAL
from service.hooks.extract.common import _codings, _fmt, _texts

# ---------------------------------------------------------------------------------------------------
# The code index built from codes.yaml


@dataclass(frozen=True)
class _ObsCode:
    concept: str
    key: str  # "system|code"
    timing: Literal["trough", "unknown"] | None = None
    fasting: bool | None = None
    role: str | None = None


@dataclass
class CodeIndex:
    """Lookup tables over ``codes.yaml``."""

    hcg_cutoff: float  # IU/L: a serum hCG at or above it is positive
    pregnancy_test_max_age_days: int  # a negative test older than this says nothing
    observations: dict[tuple[str, str], _ObsCode] = field(default_factory=dict)
    coded_values: dict[tuple[str, str], str] = field(default_factory=dict)
    conditions: dict[tuple[str, str], str] = field(default_factory=dict)
    condition_prefixes: list[tuple[str, str, str]] = field(default_factory=list)
    transfer: dict[tuple[str, str], bool] = field(default_factory=dict)  # -> euploid
    drugs: DrugRecogniser = field(default_factory=DrugRecogniser)
    max_daily_mg: dict[str, float] = field(default_factory=dict)  # drug key -> plausible ceiling
    routes: dict[tuple[str, str], str] = field(default_factory=dict)  # Dosage.route coding -> route
    route_words: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)  # (route, word), in order
    vaccine_system: str | None = None
    vaccines: dict[str, str] = field(default_factory=dict)  # CVX code -> drug key
    plausible: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # concept -> range
    plausible_daily_mg: dict[str, float] = field(default_factory=dict)  # drug key -> highest mg/day

    @classmethod
    def from_knowledge(cls, codes: CodesTable) -> CodeIndex:
        """Build the lookups from the ``codes`` knowledge table."""
        index = cls(
            hcg_cutoff=codes.hcg_positive_iu_per_l,
            pregnancy_test_max_age_days=codes.pregnancy_test_max_age_days.value,
        )
        for concept, entry in codes.observations.items():
            for c in entry.codes:
                # A tacrolimus code not marked trough is a level of unknown timing; a glucose code
                # not marked fasting is not known to be fasting (fasting=False, a random glucose).
                timing: Literal["trough", "unknown"] | None = (
                    "trough" if c.timing == "trough" else "unknown" if concept == "tacrolimus" else None
                )
                fasting = bool(c.fasting) if concept == "glucose" else None
                index.observations[(c.system, c.code)] = _ObsCode(
                    concept, f"{c.system}|{c.code}", timing, fasting, c.role
                )
            for meaning, values in (entry.coded_values or {}).items():
                for v in values:
                    index.coded_values[(v.system, v.code)] = meaning
        for concept, condition in codes.conditions.items():
            for coding in condition.codes:
                index.conditions[(coding.system, _icd(coding.code))] = concept
            for p in condition.code_prefixes or []:
                index.condition_prefixes.append((p.system, _icd(p.prefix), concept))
        for coding in codes.transfer.standard:
            index.transfer[(coding.system, coding.code)] = False
        for coding in codes.transfer.euploid:
            index.transfer[(coding.system, coding.code)] = True
        index.drugs = DrugRecogniser.from_codes(codes)
        for key, drug in codes.drugs.items():
            if drug.max_daily_mg is not None:
                index.max_daily_mg[key] = drug.max_daily_mg
        if codes.routes is not None:
            for rc in codes.routes.codes:
                index.routes[(rc.system, rc.code)] = rc.route
            for words in codes.routes.words:
                # One whole-word alternation per route: one scan of each text per route.
                alternation = "|".join(re.escape(normalise(w)) for w in words.words)
                index.route_words.append(
                    (words.route, re.compile(r"(?<!\w)(?:" + alternation + r")(?!\w)", re.IGNORECASE))
                )
        if codes.vaccines is not None:
            index.vaccine_system = codes.vaccines.system
            for vc in codes.vaccines.codes:
                index.vaccines[vc.code] = vc.drug
        if codes.plausibility is not None:
            for concept, limits in codes.plausibility.observations.items():
                index.plausible[concept] = (limits.low, limits.high)
            for key, limits in (codes.plausibility.daily_dose_mg or {}).items():
                if limits.high is not None:
                    index.plausible_daily_mg[key] = limits.high
        return index

    def implausible(self, concept: str, value: float | None, shown: str) -> str | None:
        """Why a value (canonical unit) cannot be real for its concept, or None."""
        low, high = self.plausible.get(concept, (None, None))
        if value is None or (low is None or value >= low) and (high is None or value <= high):
            return None
        unit = CANONICAL.get(concept) or ""
        unit = "" if unit.startswith("{") else unit  # "{ratio}" is a UCUM annotation, not a unit to show
        bounds = f"{_fmt(low) if low is not None else '-'} to {_fmt(high) if high is not None else '-'} {unit}"
        return f"{shown or _fmt(value)} is not a plausible result (expected {bounds.strip()}); not used"

    def route_of(self, route_concepts: Any, form_texts: Iterable[str], texts: Iterable[str]) -> str | None:
        """The route: a Dosage.route code, else words of the product's dose form, else of the text."""
        for c in _codings(route_concepts):
            hit = self.routes.get((str(c.get("system")), c["code"]))
            if hit:
                return hit
        for group in (list(form_texts), list(_texts(route_concepts)) + list(texts)):
            norms = [normalise(t) for t in group if t]
            for route, pattern in self.route_words:
                if any(pattern.search(n) for n in norms):
                    return route
        return None

    def observation(self, concept_codings: Any) -> _ObsCode | None:
        return self.observation_of(_codings(concept_codings))

    def observation_of(self, codings: list[dict[str, Any]]) -> _ObsCode | None:
        """The first of the codings (from ``_codings``) that names an Observation this service reads."""
        for c in codings:
            hit = self.observations.get((str(c.get("system")), c["code"]))
            if hit:
                return hit
        return None

    def condition_concepts(self, codings: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        found: dict[str, dict[str, Any]] = {}
        for c in codings:
            system, code = str(c.get("system")), _icd(c["code"])
            concept = self.conditions.get((system, code))
            if concept is None:
                concept = next((k for s, p, k in self.condition_prefixes if s == system and code.startswith(p)), None)
            if concept and concept not in found:
                found[concept] = c
        return list(found.items())

    def transfer_kind(self, concepts: Any) -> tuple[bool, str] | None:
        """(euploid, "system|code") of the first transfer coding, or None."""
        for c in _codings(concepts):
            euploid = self.transfer.get((str(c.get("system")), c["code"]))
            if euploid is not None:
                return euploid, f"{c.get('system')}|{c['code']}"
        return None


def _icd(code: str) -> str:
    # ICD-10 codes arrive with and without the dot ("O26.2", "O262").
    return code.replace(".", "").upper() if re.match(r"^[A-Za-z]\d", code) else code


_INDEXES: dict[int, tuple[CodesTable, CodeIndex]] = {}


def _index_for(codes: CodesTable) -> CodeIndex:
    """The code index of a knowledge table, built once per loaded table (knowledge is fixed at start-up,
    so the lookups and name patterns are not rebuilt on every call)."""
    hit = _INDEXES.get(id(codes))
    if hit is not None and hit[0] is codes:
        return hit[1]
    if len(_INDEXES) >= 16:  # a few apps per process at most (tests build many): keep the cache small
        _INDEXES.clear()
    index = CodeIndex.from_knowledge(codes)
    _INDEXES[id(codes)] = (codes, index)
    return index

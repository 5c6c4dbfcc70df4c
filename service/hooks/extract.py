"""FHIR JSON to facts (``cards.facts``): the extract stage of the pipeline, a lenient mapping.

Input contract: ``docs/data-profile.md``. Every code list comes from ``cards/knowledge/codes.yaml``
(site-overridable). Parsing is lenient: objects where arrays are due, Bundles without ``type``,
missing fields, as real clients send them. A resource that looks like ours but cannot be used becomes
an ``UnusableResource`` with the reason and a description in words; resources of other kinds or codes
are simply not ours and are skipped. The clinical derivations live in ``cards``: daily dose
(``cards.dosage``), hCG cut-off, Th1/Th2 ratio and pregnancy status (``cards.derive``). What this
module decides itself is documented where it is taken (``parse_fhir_datetime``, plausibility limits,
same-time conflicts, route).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

from cards.derive import derive_ratios, hcg_result, pregnancy_status
from cards.dosage import daily_dose, duration_days
from cards.facts import (
    ACTIONABLE_STATUSES,
    HCG,
    PREGNANCY,
    PREGNANCY_OUTCOME,
    PREGNANCY_TEST,
    TH1_PCT,
    TH1_TH2_RATIO,
    TH2_PCT,
    BloodPressure,
    ConditionFact,
    Measurement,
    MedicationFact,
    PatientFacts,
    PregnancyStatus,
    TransferPlan,
    UnusableResource,
)
from cards.recognise import RXNORM_SYSTEMS, DrugRecogniser, Recognised, normalise
from cards.units import CANONICAL, to_canonical
from service.hooks.validation import HookRequest

UCUM = "http://unitsofmeasure.org"
BLOOD_PRESSURE = "blood_pressure"

IGNORED_OBSERVATION = frozenset({"entered-in-error", "cancelled"})
COUNTED_CLINICAL = frozenset({"active", "recurrence", "relapse"})
REJECTED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
TRANSFER_REQUEST_STATUSES = frozenset({"draft", "active", "on-hold"})
TRANSFER_PROCEDURE_STATUSES = frozenset({"preparation", "in-progress"})
APPOINTMENT_EXCLUDED = frozenset({"cancelled", "noshow", "entered-in-error"})
MEDREQ_STATUSES = frozenset({"active", "on-hold"})
DRAFT_MEDREQ_STATUSES = frozenset({"draft", "active", "on-hold"})
MEDSTATEMENT_STATUSES = frozenset({"active"})

# Dates outside these years are data errors ("9999-12-31" as "no end"); rules add and subtract days
# from dates, so a date near datetime's limits (years 1 and 9999) could overflow there.
MIN_YEAR, MAX_YEAR = 1000, 9000


class _Unusable(Exception):
    """The resource cannot be used; the message is the reason reported to the card."""


# ---------------------------------------------------------------------------------------------------
# Lenient accessors


def _as_list(value: Any) -> list[Any]:
    """A FHIR array that may arrive as a single object (or be absent)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _obj(value: Any) -> dict[str, Any]:
    """A FHIR object, or an empty one when absent or of the wrong shape."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _as_list(value) if isinstance(v, dict)]


def _codings(concepts: Any) -> list[dict[str, Any]]:
    """All codings of one CodeableConcept or a list of them."""
    out: list[dict[str, Any]] = []
    for cc in concepts if isinstance(concepts, list) else (concepts,):
        if not isinstance(cc, dict):
            continue
        codings = cc.get("coding")
        for c in codings if isinstance(codings, list) else (codings,):
            if not isinstance(c, dict):
                continue
            code = c.get("code")
            if isinstance(code, str) and code:
                # Only string fields are kept, so lookups never meet a list or an object.
                system, display = c.get("system"), c.get("display")
                kept = {"system": system, "code": code} if isinstance(system, str) else {"code": code}
                if isinstance(display, str):
                    kept["display"] = display
                out.append(kept)
    return out


def _texts(concepts: Any) -> list[str]:
    """The text and the codings' displays of one CodeableConcept or a list of them."""
    out: list[str] = []
    for cc in _dicts(concepts):
        if isinstance(cc.get("text"), str):
            out.append(cc["text"])
        out.extend(c["display"] for c in _dicts(cc.get("coding")) if isinstance(c.get("display"), str))
    return out


def _status_code(value: Any) -> str | None:
    """A status given as a CodeableConcept (R4) or, leniently, as a bare string."""
    if isinstance(value, str):
        return value
    for coding in _codings(value):
        return str(coding["code"])
    return None


def _status(res: Mapping[str, Any], default: str) -> str:
    """Resource.status when it is a string; otherwise the default (missing or malformed)."""
    status = res.get("status")
    return status if isinstance(status, str) and status else default


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _fmt(number: float) -> str:
    return f"{number:g}"


def _flatten(resources: list[Any], depth: int = 0) -> list[Any]:
    """Resources, with any Bundle that slipped through the resolver replaced by its entries."""
    out: list[Any] = []
    for r in resources:
        if isinstance(r, dict) and r.get("resourceType") == "Bundle" and depth < 3:
            out.extend(
                _flatten(
                    [e.get("resource") for e in _dicts(r.get("entry")) if isinstance(e.get("resource"), dict)],
                    depth + 1,
                )
            )
        else:
            out.append(r)
    return out


def _ref_of(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id') or '(no id)'}"


def _blank_medication(res: Mapping[str, Any]) -> bool:
    """No medication chosen yet: neither a reference nor a concept with a code or a text."""
    if "medicationReference" in res:
        return False
    mcc = res.get("medicationCodeableConcept")
    return (
        mcc is None
        or (isinstance(mcc, dict) and not mcc.get("coding") and not mcc.get("text"))
        or (isinstance(mcc, str) and not mcc.strip())
    )


def _describe(resource: Mapping[str, Any]) -> str:
    """What a record is, in words a clinician recognises (no ids): for the data-quality card."""
    kind = str(resource.get("resourceType") or "record")
    if kind in ("MedicationRequest", "MedicationStatement"):
        named = _texts(resource.get("medicationCodeableConcept")) or [
            str(_obj(resource.get("medicationReference")).get("display") or "")
        ]
        name = next((n for n in named if n.strip()), "")
        return f"the order for {name}" if name else "a medication order"
    names = _texts(resource.get("code"))
    name = names[0] if names else ""
    raw = resource.get("effectiveDateTime") or resource.get("issued") or resource.get("recordedDate")
    day = f" of {raw[:10]}" if isinstance(raw, str) and len(raw) >= 10 else ""
    if kind == "Observation":
        return f"the result {name}{day}" if name else f"a result{day}"
    if kind == "Condition":
        return f"the diagnosis {name}" if name else "a diagnosis"
    return f"a {kind} record{day}"


_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_datetime(value: Any) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime; None when absent; ValueError when unparsable.

    Partial dates (``2026``, ``2026-11``, ``2026-11-20``) become the first instant of that period in UTC;
    a time without a zone (invalid FHIR, seen in practice) is taken as UTC. A year outside
    ``MIN_YEAR``..``MAX_YEAR`` is a ValueError too, so no later date arithmetic can overflow.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a FHIR date")
    text = value.strip()
    partial = _PARTIAL_DATE.match(text)
    try:
        if partial:
            year, month, day = partial.groups()
            parsed = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a FHIR date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"{value!r} is outside the years {MIN_YEAR}-{MAX_YEAR} (a placeholder, not a date)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(value: Any) -> date | None:
    moment = parse_fhir_datetime(value)
    return moment.date() if moment else None


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

    observations: dict[tuple[str, str], _ObsCode] = field(default_factory=dict)
    coded_values: dict[tuple[str, str], str] = field(default_factory=dict)
    conditions: dict[tuple[str, str], str] = field(default_factory=dict)
    condition_prefixes: list[tuple[str, str, str]] = field(default_factory=list)
    transfer: dict[tuple[str, str], bool] = field(default_factory=dict)  # -> euploid
    drugs: DrugRecogniser = field(default_factory=DrugRecogniser)
    max_daily_mg: dict[str, float] = field(default_factory=dict)  # drug key -> plausible ceiling
    hcg_cutoff: float = 25.0
    pregnancy_test_max_age_days: int = 60
    routes: dict[tuple[str, str], str] = field(default_factory=dict)  # Dosage.route coding -> route
    route_words: list[tuple[str, re.Pattern[str]]] = field(default_factory=list)  # (route, word), in order
    vaccine_system: str | None = None
    vaccines: dict[str, str] = field(default_factory=dict)  # CVX code -> drug key
    plausible: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # concept -> range
    plausible_daily_mg: dict[str, float] = field(default_factory=dict)  # drug key -> highest mg/day

    @classmethod
    def from_knowledge(cls, codes: Mapping[str, Any]) -> CodeIndex:
        """Build the lookups from the ``codes`` knowledge table."""
        window = codes.get("pregnancy_test_max_age_days")
        index = cls(
            hcg_cutoff=float(codes.get("hcg_positive_iu_per_l", 25)),
            pregnancy_test_max_age_days=int(window["value"]) if isinstance(window, dict) else 60,
        )
        for concept, entry in (codes.get("observations") or {}).items():
            for c in entry.get("codes") or []:
                # A tacrolimus code not marked trough is a level of unknown timing; a glucose code
                # not marked fasting is not known to be fasting (fasting=False, a random glucose).
                timing: Literal["trough", "unknown"] | None = (
                    "trough" if c.get("timing") == "trough" else "unknown" if concept == "tacrolimus" else None
                )
                fasting = bool(c.get("fasting", False)) if concept == "glucose" else None
                index.observations[(c["system"], c["code"])] = _ObsCode(
                    concept, f"{c['system']}|{c['code']}", timing, fasting, c.get("role")
                )
            for meaning, values in (entry.get("coded_values") or {}).items():
                for v in values:
                    index.coded_values[(v["system"], v["code"])] = meaning
        for concept, entry in (codes.get("conditions") or {}).items():
            for c in entry.get("codes") or []:
                index.conditions[(c["system"], _icd(c["code"]))] = concept
            for p in entry.get("code_prefixes") or []:
                index.condition_prefixes.append((p["system"], _icd(p["prefix"]), concept))
        transfer = codes.get("transfer") or {}
        for c in transfer.get("standard") or []:
            index.transfer[(c["system"], c["code"])] = False
        for c in transfer.get("euploid") or []:
            index.transfer[(c["system"], c["code"])] = True
        index.drugs = DrugRecogniser.from_codes(codes)
        for key, drug in (codes.get("drugs") or {}).items():
            if drug.get("max_daily_mg") is not None:
                index.max_daily_mg[key] = float(drug["max_daily_mg"])
        routes = codes.get("routes") or {}
        for c in routes.get("codes") or []:
            index.routes[(str(c["system"]), str(c["code"]))] = str(c["route"])
        for entry in routes.get("words") or []:
            words = [str(w) for w in entry.get("words") or []]
            if words:  # one whole-word alternation per route: one scan of each text per route
                index.route_words.append(
                    (
                        str(entry["route"]),
                        re.compile(
                            r"(?<!\w)(?:" + "|".join(re.escape(normalise(w)) for w in words) + r")(?!\w)", re.IGNORECASE
                        ),
                    )
                )
        vaccines = codes.get("vaccines") or {}
        index.vaccine_system = vaccines.get("system")
        for c in vaccines.get("codes") or []:
            index.vaccines[str(c["code"])] = str(c["drug"])
        plausibility = codes.get("plausibility") or {}
        for concept, limits in (plausibility.get("observations") or {}).items():
            index.plausible[concept] = (limits.get("low"), limits.get("high"))
        for key, limits in (plausibility.get("daily_dose_mg") or {}).items():
            if limits.get("high") is not None:
                index.plausible_daily_mg[key] = float(limits["high"])
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


# ---------------------------------------------------------------------------------------------------
# The extractor


@dataclass
class _Single:
    """A standalone systolic or diastolic Observation, waiting to be paired by time."""

    source: str
    status: str
    when: datetime | None
    role: str
    value: float | None
    problem: str | None


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _newest_first(when: datetime | None) -> tuple[bool, datetime]:
    return (when is not None, when or _OLDEST)


# The reading of each resource type this service takes facts from (method names of _Extractor).
_HANDLERS = {
    "Observation": "_observation",
    "Condition": "_condition",
    "ServiceRequest": "_service_request",
    "Procedure": "_procedure",
    "Appointment": "_appointment",
    "MedicationRequest": "_medication",
    "MedicationStatement": "_medication",
    "Patient": "_patient",
}


class _Extractor:
    def __init__(self, request: HookRequest, index: CodeIndex) -> None:
        self.request = request
        self.index = index
        self.labs: dict[str, list[Measurement]] = {}
        self.blood_pressure: list[BloodPressure] = []
        self.singles: list[_Single] = []
        self.conditions: list[ConditionFact] = []
        self.transfers: list[TransferPlan] = []
        # When each embryo transfer happened or is planned, completed ones included: a pregnancy test
        # from before the latest past transfer says nothing about the current cycle.
        self.transfer_times: list[datetime] = []
        self.medications: list[MedicationFact] = []
        self.unusable: list[UnusableResource] = []
        self.specimen: dict[str, str] = {}
        self.medication_resources: dict[str, dict[str, Any]] = {}
        self.selections = set(request.selections)
        self.sex: str | None = None
        self.birth_date: date | None = None

    # -- collection --------------------------------------------------------------------------------

    def run(self, data: Mapping[str, list[dict[str, Any]]]) -> None:
        """Read every resource of every key once (by type and id), draft orders first."""
        # Draft orders first: a draft and a stored resource with the same id is the draft being edited.
        queue: list[tuple[Any, bool]] = [(r, True) for r in self.request.draft_orders]
        queue += [(r, False) for values in data.values() for r in _flatten(_as_list(values))]
        for resource, _ in queue:
            if (
                isinstance(resource, dict)
                and resource.get("resourceType") == "Medication"
                and isinstance(resource.get("id"), str)
            ):
                self.medication_resources.setdefault(f"Medication/{resource['id']}", resource)
        handled: set[tuple[str, str]] = set()
        for resource, draft in queue:
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                self.unusable.append(UnusableResource("(unknown)", "not a FHIR resource (no resourceType)"))
                continue
            rid = resource.get("id")
            if isinstance(rid, str) and rid:
                if (resource["resourceType"], rid) in handled:
                    continue
                handled.add((resource["resourceType"], rid))
            self._dispatch(resource, draft)
        self._pair_blood_pressure()
        self._derive_ratios()
        self._flag_conflicts()

    def _dispatch(self, resource: dict[str, Any], draft: bool) -> None:
        name = _HANDLERS.get(str(resource.get("resourceType")))
        if name is None:
            return  # Medication, Encounter ...: context, not facts
        handler = getattr(self, name)
        try:
            handler(resource, draft)
        except _Unusable as exc:
            self._unusable(resource, draft, str(exc))
        except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
            # Safety net for shapes no rule above foresaw: report, never fail the hook call.
            self._unusable(resource, draft, f"unexpected structure ({type(exc).__name__}: {exc})")

    def _unusable(self, resource: Mapping[str, Any], draft: bool, reason: str) -> None:
        source = _ref_of(resource)
        in_focus = draft and (self.request.hook == "order-sign" or source in self.selections)
        self.unusable.append(UnusableResource(source, reason, what=_describe(resource), order_in_focus=in_focus))

    # -- observations ------------------------------------------------------------------------------

    def _observation_time(self, res: Mapping[str, Any]) -> datetime | None:
        for label, raw in (
            ("effectiveDateTime", res.get("effectiveDateTime")),
            ("effectiveInstant", res.get("effectiveInstant")),
            (
                "effectivePeriod.end",
                (res.get("effectivePeriod") or {}).get("end") if isinstance(res.get("effectivePeriod"), dict) else None,
            ),
            ("issued", res.get("issued")),
        ):
            if raw is None:
                continue
            try:
                return parse_fhir_datetime(raw)
            except ValueError as exc:
                raise _Unusable(f"{label}: {exc}") from None
        return None

    def _observation(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "unknown")
        if status in IGNORED_OBSERVATION:
            return
        source = _ref_of(res)
        codings = _codings(res.get("code"))
        if not codings:
            raise _Unusable("Observation without a code")
        match = self.index.observation_of(codings)
        components = _dicts(res.get("component"))
        known_components = [(c, m) for c in components if (m := self.index.observation(c.get("code"))) is not None]
        if match is None and not known_components:
            return  # not a code this service reads
        when = self._observation_time(res)
        specimen = res.get("specimen")
        if isinstance(specimen, dict) and isinstance(specimen.get("reference"), str):
            self.specimen[source] = specimen["reference"]
        if match is not None and match.concept == BLOOD_PRESSURE:
            self._blood_pressure(res, match, known_components, source, status, when)
            return
        if match is not None:
            self._add(self._measure(match, res, source, status, when))
        for component, cmatch in known_components:
            if cmatch.concept == BLOOD_PRESSURE:
                continue  # BP components outside a BP panel: not a shape the profile names
            csource = f"{source}#{cmatch.key.split('|', 1)[1]}"
            if source in self.specimen:
                self.specimen[csource] = self.specimen[source]
            self._add(self._measure(cmatch, component, csource, status, when))

    def _add(self, m: Measurement) -> None:
        self.labs.setdefault(m.concept, []).append(m)

    def _measure(
        self, match: _ObsCode, elem: Mapping[str, Any], source: str, status: str, when: datetime | None
    ) -> Measurement:
        concept = match.concept
        value: float | None = None
        coded: str | None = None
        problem: str | None = None
        shown = ""
        has_unit = concept in CANONICAL
        unit = CANONICAL.get(concept)
        if when is None:
            problem = "no effectiveDateTime, effectivePeriod.end or issued"
        if isinstance(elem.get("valueQuantity"), dict):
            value, coded, shown, vproblem = self._quantity(concept, elem["valueQuantity"])
            problem = problem or vproblem
        elif "valueCodeableConcept" in elem:
            shown = "; ".join(_texts(elem["valueCodeableConcept"])) or "(coded)"
            coded = next(
                (
                    self.index.coded_values[(str(c.get("system")), c["code"])]
                    for c in _codings(elem["valueCodeableConcept"])
                    if (str(c.get("system")), c["code"]) in self.index.coded_values
                ),
                None,
            )
            if coded is None:
                problem = problem or f"coded value {shown!r} is not one this service reads"
        elif "valueInteger" in elem:
            number = _number(elem["valueInteger"])
            shown = str(elem["valueInteger"])
            if has_unit:
                conv = to_canonical(concept, number, None, None)
                value, problem = conv.value, problem or conv.problem
        elif isinstance(elem.get("valueRatio"), dict):
            num = _number((elem["valueRatio"].get("numerator") or {}).get("value"))
            den = _number((elem["valueRatio"].get("denominator") or {}).get("value"))
            shown = (
                f"{elem['valueRatio'].get('numerator', {}).get('value')}:"
                f"{elem['valueRatio'].get('denominator', {}).get('value')}"
            )
            if concept == TH1_TH2_RATIO and num is not None and den:
                value = num / den
            else:
                problem = problem or f"a ratio value {shown} cannot be used for {concept}"
        elif isinstance(elem.get("valueString"), str):
            shown = elem["valueString"]
            word = shown.strip().lower()
            if concept == PREGNANCY_TEST and word in ("positive", "pos", "negative", "neg"):
                coded = "positive" if word.startswith("pos") else "negative"
            else:
                problem = problem or f"value is text ({shown!r}), not a number"
        elif any(k.startswith("value") for k in elem):
            kind = next(k for k in elem if k.startswith("value"))
            shown = str(elem[kind])
            problem = problem or f"{kind} cannot be used for {concept}"
        elif "dataAbsentReason" in elem:
            reason = _status_code(elem["dataAbsentReason"]) or "; ".join(_texts(elem["dataAbsentReason"]))
            problem = problem or f"no value (data absent: {reason or 'no reason given'})"
        elif not (unit is None and concept != PREGNANCY_TEST):
            # A panel (CBC, unit None) carries no value of its own; every other concept needs one.
            problem = problem or "no value"
        if value is not None and problem is None:
            problem = self.index.implausible(concept, value, shown)
            if problem:
                value = None  # a data error: shown as recorded, never compared with a threshold
        return Measurement(
            concept=concept,
            source=source,
            code=match.key,
            status=status,
            when=when,
            value=value,
            unit=unit,
            shown=shown,
            problem=problem,
            timing=match.timing,
            fasting=match.fasting,
            reference_high=self._reference_high(concept, elem),
            coded_value=coded,
        )

    def _quantity(self, concept: str, q: Mapping[str, Any]) -> tuple[float | None, str | None, str, str | None]:
        """(canonical value, coded value, shown, problem) of a valueQuantity."""
        number = _number(q.get("value"))
        unit_code = q.get("code") if q.get("system") in (None, UCUM) and isinstance(q.get("code"), str) else None
        unit_text = q.get("unit") if isinstance(q.get("unit"), str) else None
        comparator = str(q["comparator"]) if isinstance(q.get("comparator"), str) else ""
        shown = f"{comparator}{q.get('value')} {unit_text or unit_code or ''}".strip()
        if number is None:
            return None, None, shown, f"valueQuantity has no number ({q.get('value')!r})"
        if concept not in CANONICAL:
            return None, None, shown, f"a quantity cannot be used for {concept}"
        conv = to_canonical(concept, number, unit_code, unit_text)
        if conv.value is None:
            return None, None, shown, conv.problem
        if concept == HCG:
            # Positive at or above the cut-off; a limit ("<5", ">1000") counts when it settles the side.
            cut = self.index.hcg_cutoff
            coded = hcg_result(conv.value, comparator, cut)
            if coded is None:
                return None, None, shown, f"{shown} does not say which side of {_fmt(cut)} IU/L it is"
            return (conv.value if not comparator else None), coded, shown, None
        if comparator:
            return None, None, shown, f"reported as {shown}: a limit, not a value"
        return conv.value, None, shown, None

    def _reference_high(self, concept: str, elem: Mapping[str, Any]) -> float | None:
        if concept not in CANONICAL:
            return None
        value_q = _obj(elem.get("valueQuantity"))
        for rng in _dicts(elem.get("referenceRange")):
            high = rng.get("high")
            if not isinstance(high, dict):
                continue
            code = high.get("code") if high.get("system") in (None, UCUM) else None
            unit = high.get("unit")
            if code is None and unit is None:  # the range in the value's own unit
                code, unit = value_q.get("code"), value_q.get("unit")
            conv = to_canonical(
                concept,
                _number(high.get("value")),
                code if isinstance(code, str) else None,
                unit if isinstance(unit, str) else None,
            )
            if conv.value is not None:
                return conv.value
        return None

    def _blood_pressure(
        self,
        res: Mapping[str, Any],
        match: _ObsCode,
        components: list[tuple[dict[str, Any], _ObsCode]],
        source: str,
        status: str,
        when: datetime | None,
    ) -> None:
        if match.role in ("systolic", "diastolic"):
            value, problem = self._bp_value(res)
            self.singles.append(_Single(source, status, when, match.role, value, problem))
            return
        sides: dict[str, float | None] = {"systolic": None, "diastolic": None}
        problems: list[str] = []
        for component, cmatch in components:
            if cmatch.role in sides:
                value, problem = self._bp_value(component)
                sides[cmatch.role] = value
                if problem:
                    problems.append(f"{cmatch.role}: {problem}")
        if when is None:
            problems.append("no effectiveDateTime, effectivePeriod.end or issued")
        if sides["systolic"] is None and sides["diastolic"] is None and not problems:
            problems.append("blood pressure panel without systolic or diastolic component")
        self.blood_pressure.append(
            BloodPressure(source, status, when, sides["systolic"], sides["diastolic"], "; ".join(problems) or None)
        )

    def _bp_value(self, elem: Mapping[str, Any]) -> tuple[float | None, str | None]:
        q = elem.get("valueQuantity")
        if not isinstance(q, dict):
            return None, "no valueQuantity"
        code = q.get("code") if q.get("system") in (None, UCUM) and isinstance(q.get("code"), str) else None
        unit = q.get("unit") if isinstance(q.get("unit"), str) else None
        if q.get("comparator"):
            return None, f"reported as {q.get('comparator')}{q.get('value')}: a limit, not a value"
        conv = to_canonical(BLOOD_PRESSURE, _number(q.get("value")), code, unit)
        if conv.value is not None and conv.problem is None:
            problem = self.index.implausible(BLOOD_PRESSURE, conv.value, f"{_fmt(conv.value)} mm[Hg]")
            if problem:
                return None, problem
        return conv.value, conv.problem

    def _pair_blood_pressure(self) -> None:
        """Standalone systolic and diastolic Observations with the same time make one reading."""
        by_time: dict[datetime | None, list[_Single]] = {}
        for single in self.singles:
            by_time.setdefault(single.when, []).append(single)
        for when, group in by_time.items():
            systolic = [s for s in group if s.role == "systolic"]
            diastolic = [s for s in group if s.role == "diastolic"]
            while systolic or diastolic:
                pair = [
                    p
                    for p in (systolic.pop(0) if systolic else None, diastolic.pop(0) if diastolic else None)
                    if p is not None
                ]
                statuses = [p.status for p in pair]
                status = next((s for s in statuses if s not in ACTIONABLE_STATUSES), statuses[0])
                problems = [f"{p.role}: {p.problem}" for p in pair if p.problem]
                if when is None:
                    problems.append("no effectiveDateTime, effectivePeriod.end or issued")
                self.blood_pressure.append(
                    BloodPressure(
                        source=",".join(p.source for p in pair),
                        status=status,
                        when=when,
                        systolic=next((p.value for p in pair if p.role == "systolic"), None),
                        diastolic=next((p.value for p in pair if p.role == "diastolic"), None),
                        problem="; ".join(problems) or None,
                    )
                )

    def _derive_ratios(self) -> None:
        """Th1 % / Th2 % where no ratio was reported for that specimen or day (``cards.derive``)."""
        for m in derive_ratios(
            self.labs.get(TH1_TH2_RATIO, []), self.labs.get(TH1_PCT, []), self.labs.get(TH2_PCT, []), self.specimen
        ):
            if m.value is not None and m.problem is None:
                problem = self.index.implausible(TH1_TH2_RATIO, m.value, f"{_fmt(round(m.value, 2))} ({m.shown})")
                if problem:
                    m = replace(m, value=None, problem=problem)
            self._add(m)

    def _flag_conflicts(self) -> None:
        """Results of one concept taken at the same time with different values name each other, so
        neither wins by its place in the Bundle; both are kept."""
        for concept, results in self.labs.items():
            by_time: dict[datetime, list[Measurement]] = {}
            for m in results:
                if m.when is not None and (m.value is not None or m.coded_value is not None):
                    by_time.setdefault(m.when, []).append(m)
            flagged: dict[str, tuple[str, ...]] = {}
            for group in by_time.values():
                if len(group) == 1 or len({(m.value, m.coded_value) for m in group}) == 1:
                    continue  # one result, or all agreeing: nothing to name
                for m in group:
                    others = tuple(
                        o.source
                        for o in group
                        if o.source != m.source and (o.value, o.coded_value) != (m.value, m.coded_value)
                    )
                    if others:
                        flagged[m.source] = others
            if flagged:
                self.labs[concept] = [
                    replace(m, conflicts_with=flagged[m.source]) if m.source in flagged else m for m in results
                ]

    # -- patient -----------------------------------------------------------------------------------

    def _patient(self, res: dict[str, Any], draft: bool) -> None:
        """Sex and birth date of the patient of the call (another Patient in the data is not hers)."""
        rid = res.get("id")
        if isinstance(rid, str) and rid and rid != self.request.patient_id:
            return
        gender = res.get("gender")
        if isinstance(gender, str) and gender in ("female", "male", "other", "unknown"):
            self.sex = gender
        try:
            self.birth_date = _parse_date(res.get("birthDate"))
        except ValueError as exc:
            raise _Unusable(f"birthDate: {exc}") from None

    # -- conditions --------------------------------------------------------------------------------

    def _condition(self, res: dict[str, Any], draft: bool) -> None:
        codings = _codings(res.get("code"))
        if not codings:
            raise _Unusable("Condition without a code")
        matched = self.index.condition_concepts(codings)
        if not matched:
            return
        verification = _status_code(res.get("verificationStatus"))
        if verification in REJECTED_VERIFICATION:
            return
        clinical = _status_code(res.get("clinicalStatus"))
        onset = self._lenient_time(res.get("onsetDateTime")) or self._lenient_time(
            _obj(res.get("onsetPeriod")).get("start")
        )
        recorded = self._lenient_time(res.get("recordedDate"))
        abated = self._lenient_time(res.get("abatementDateTime")) or self._lenient_time(
            _obj(res.get("abatementPeriod")).get("start")
        )
        for concept, coding in matched:
            if concept == PREGNANCY and (abated is not None or clinical in ("inactive", "resolved", "remission")):
                # A closed pregnancy is an outcome: it ends the pregnancy it records, it is no current one.
                if abated is None and onset is None and recorded is None:
                    continue  # closed, with no date to place it: says nothing about now
                concept = PREGNANCY_OUTCOME
            elif concept != PREGNANCY_OUTCOME:
                # An outcome (delivery, loss) is an event whatever its status; anything else must be current.
                if clinical is None:
                    raise _Unusable("Condition without clinicalStatus: cannot tell whether it is active")
                if clinical not in COUNTED_CLINICAL:
                    continue
            self.conditions.append(
                ConditionFact(
                    concept=concept,
                    source=_ref_of(res),
                    code=f"{coding.get('system')}|{coding['code']}",
                    display=str(coding.get("display") or (res.get("code") or {}).get("text") or coding["code"]),
                    recorded=recorded or onset,
                    onset=onset,
                    abated=abated,
                )
            )

    @staticmethod
    def _lenient_time(raw: Any) -> datetime | None:
        """A date shown or used to order events; a bad one is ignored rather than losing the resource."""
        try:
            return parse_fhir_datetime(raw)
        except ValueError:
            return None

    # -- embryo transfer ---------------------------------------------------------------------------

    def _transfer(
        self, res: Mapping[str, Any], concepts: Any, status: str, raw_when: Any, label: str, draft: bool
    ) -> None:
        kind = self.index.transfer_kind(concepts)
        if kind is None:
            return
        try:
            when = parse_fhir_datetime(raw_when)
        except ValueError as exc:
            raise _Unusable(f"{label}: {exc}") from None
        if when is not None:
            self.transfer_times.append(when)
        if status == "completed":
            return  # done: it dates the cycle (pregnancy tests) but is no plan for the rules
        self.transfers.append(
            TransferPlan(source=_ref_of(res), status=status, when=when, euploid=kind[0], from_draft_orders=draft)
        )

    def _service_request(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "draft" if draft else "unknown")
        if status not in TRANSFER_REQUEST_STATUSES and status != "completed":
            return
        period = _obj(res.get("occurrencePeriod"))
        raw, label = (
            (res["occurrenceDateTime"], "occurrenceDateTime")
            if "occurrenceDateTime" in res
            else (period.get("start"), "occurrencePeriod.start")
        )
        self._transfer(res, res.get("code"), status, raw, label, draft)

    def _procedure(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "preparation" if draft else "unknown")
        if status not in TRANSFER_PROCEDURE_STATUSES and status != "completed":
            return
        period = _obj(res.get("performedPeriod"))
        raw, label = (
            (res["performedDateTime"], "performedDateTime")
            if "performedDateTime" in res
            else (period.get("start"), "performedPeriod.start")
        )
        self._transfer(res, res.get("code"), status, raw, label, draft)

    def _appointment(self, res: dict[str, Any], draft: bool) -> None:
        status = _status(res, "unknown")
        if status in APPOINTMENT_EXCLUDED:
            return
        self._transfer(res, res.get("serviceType"), status, res.get("start"), "start", draft)

    # -- medications -------------------------------------------------------------------------------

    def _medication(self, res: dict[str, Any], draft: bool) -> None:
        rtype = str(res["resourceType"])
        if rtype == "MedicationRequest":
            # The sandbox's first draft has no status yet: a draft order is a draft.
            status = _status(res, "draft" if draft else "unknown")
            allowed = DRAFT_MEDREQ_STATUSES if draft else MEDREQ_STATUSES
        else:
            status = _status(res, "unknown")
            allowed = MEDSTATEMENT_STATUSES
        if status not in allowed:
            return
        if draft and _blank_medication(res):
            return  # an order form not filled in yet (a client's blank draft): normal input, nothing to check
        source = _ref_of(res)
        concepts, display, fallback_texts = self._drug_of(res)
        recognised = self._recognise(concepts, fallback_texts)
        if recognised.problem:
            self.unusable.append(UnusableResource(source, recognised.problem))
        recognised = self._vaccine(concepts, recognised)
        product = recognised.product
        if not display:
            codes = [f"{str(c.get('system') or '').rsplit('/', 1)[-1]} {c['code']}".strip() for c in _codings(concepts)]
            display = str(product["display"]) if product else (codes[0] if codes else "(unnamed medication)")
            if not recognised.ingredients and not product and draft:
                # Only a code this service does not know, and no name: nobody can tell what is ordered.
                self._unusable(
                    res,
                    draft,
                    f"the medication is given only as a code this service does not know ({display}) and has no name",
                )
        strength = _number(product.get("strength_mg")) if product else None
        release = product.get("release") if product else None
        if release is None:
            # No product code says it: a brand name in the text may (Envarsus XR is extended-release).
            release = self.index.drugs.release_in(_texts(concepts) + fallback_texts, recognised.ingredients)
        dosages = _as_list(res.get("dosageInstruction" if rtype == "MedicationRequest" else "dosage"))
        ceilings = [
            table[i]
            for table in (self.index.max_daily_mg, self.index.plausible_daily_mg)
            for i in recognised.ingredients
            if i in table
        ]
        daily, per_day, dose_problem = daily_dose(
            dosages, strength, recognised.product_code, min(ceilings) if ceilings else None
        )
        start, start_from, end, duration = self._period(res, rtype, dosages, source)
        self.medications.append(
            MedicationFact(
                source=source,
                resource_type=rtype,
                status=status,
                display=display,
                ingredients=tuple(recognised.ingredients),
                recognised_by=recognised.by,
                matched=recognised.matched,
                strength_mg=strength,
                release="extended" if release == "extended" else "immediate" if release == "immediate" else None,
                daily_dose_mg=daily,
                dose_problem=dose_problem,
                doses_per_day=per_day,
                start=start,
                start_from=start_from,
                end=end,
                duration_days=duration,
                is_draft=draft,
                is_selected=draft and source in self.selections,
                route=self._route(dosages, product, concepts, fallback_texts),  # type: ignore[arg-type]
                prior_prescription=self._prior(res),
                indications=self._indications(res),
                resource=res,
            )
        )

    def _route(
        self, dosages: list[Any], product: Mapping[str, Any] | None, concepts: list[Any], texts: list[str]
    ) -> str | None:
        """Dosage.route, else the product's dose form, else words in the order's texts."""
        instructions = _dicts(dosages)
        form = [str(product[k]) for k in ("dose_form", "display") if product and isinstance(product.get(k), str)]
        order_texts = (
            _texts(concepts) + texts + [str(d["text"]) for d in instructions if isinstance(d.get("text"), str)]
        )
        for dosage in instructions:
            route = self.index.route_of(dosage.get("route"), [], [])
            if route:
                return route
        return self.index.route_of(None, form, order_texts)

    @staticmethod
    def _prior(res: Mapping[str, Any]) -> str | None:
        """The order this one replaces (priorPrescription), as "MedicationRequest/<id>"."""
        ref = _obj(res.get("priorPrescription")).get("reference")
        if not isinstance(ref, str) or not ref.strip():
            return None
        parts = ref.split("/_history/")[0].rstrip("/").split("/")
        return "/".join(parts[-2:]) if len(parts) >= 2 else ref

    @staticmethod
    def _indications(res: Mapping[str, Any]) -> tuple[str, ...]:
        """Why it is given: reasonCode codes ("system|code") and texts, lower-cased."""
        found: list[str] = []
        for c in _codings(res.get("reasonCode")):
            found.append(f"{c.get('system', '')}|{c['code']}".lower())
        found += [t.strip().lower() for t in _texts(res.get("reasonCode")) if t.strip()]
        return tuple(dict.fromkeys(found))

    def _vaccine(self, concepts: list[Any], recognised: Recognised) -> Recognised:
        """A vaccine coded in CVX adds its drug key (e.g. a live attenuated vaccine)."""
        hits = [
            c["code"]
            for c in _codings(concepts)
            if c.get("system") == self.index.vaccine_system and c["code"] in self.index.vaccines
        ]
        if not hits:
            return recognised
        keys = tuple(dict.fromkeys([*recognised.ingredients, *(self.index.vaccines[c] for c in hits)]))
        return replace(
            recognised,
            ingredients=keys,
            by=recognised.by or "cvx",
            matched=recognised.matched or f"CVX {', '.join(hits)}",
        )

    def _drug_of(self, res: Mapping[str, Any]) -> tuple[list[Any], str, list[str]]:
        """(CodeableConcepts naming the drug, display text, extra texts) from either medication[x]."""
        mcc = res.get("medicationCodeableConcept")
        if isinstance(mcc, str) and mcc.strip():
            mcc = {"text": mcc}  # seen from hand-built clients: the drug name where a concept is due
        if isinstance(mcc, dict) and (mcc.get("coding") or mcc.get("text")):
            texts = _texts(mcc)
            return [mcc], texts[0] if texts else "", []
        mref = res.get("medicationReference")
        if isinstance(mref, dict):
            ref = mref.get("reference")
            ref_display = mref.get("display") if isinstance(mref.get("display"), str) else None
            med: dict[str, Any] | None = None
            if isinstance(ref, str) and ref.startswith("#"):
                med = next(
                    (
                        c
                        for c in _dicts(res.get("contained"))
                        if c.get("resourceType") == "Medication" and c.get("id") == ref[1:]
                    ),
                    None,
                )
            elif isinstance(ref, str):
                parts = ref.rstrip("/").split("/")
                med = self.medication_resources.get("/".join(parts[-2:])) if len(parts) >= 2 else None
            if med is not None:
                concepts = [med.get("code")] + [i.get("itemCodeableConcept") for i in _dicts(med.get("ingredient"))]
                texts = _texts(med.get("code"))
                return concepts, (texts[0] if texts else ref_display or ""), [ref_display] if ref_display else []
            if ref_display:
                return [], ref_display, [ref_display]
            raise _Unusable(f"medicationReference {ref!r} could not be resolved (not contained, not in the data)")
        raise _Unusable("no medication stated (medicationCodeableConcept or medicationReference)")

    def _recognise(self, concepts: list[Any], extra_texts: list[str]) -> Recognised:
        rx_codes = [str(c["code"]) for c in _codings(concepts) if c.get("system") in RXNORM_SYSTEMS]
        return self.index.drugs.recognise(rx_codes, _texts(concepts) + extra_texts)

    def _period(
        self, res: Mapping[str, Any], rtype: str, dosages: list[Any], source: str
    ) -> tuple[date | None, Literal["boundsPeriod", "authoredOn", "effective"] | None, date | None, int | None]:
        start: date | None = None
        start_from: Literal["boundsPeriod", "authoredOn", "effective"] | None = None
        end: date | None = None
        duration: int | None = None
        for dosage in _dicts(dosages):
            timing = dosage.get("timing")
            repeat = timing.get("repeat") if isinstance(timing, dict) else None
            if not isinstance(repeat, dict):
                continue
            bounds = repeat.get("boundsPeriod")
            if isinstance(bounds, dict) and start is None and end is None:
                # The first instruction with bounds gives the course (a later one continues it).
                start = self._date(bounds.get("start"), source, "boundsPeriod.start")
                end = self._date(bounds.get("end"), source, "boundsPeriod.end")
            if duration is None:
                duration = self._duration(repeat.get("boundsDuration"), source, "boundsDuration")
        if start is not None:
            start_from = "boundsPeriod"
        elif rtype == "MedicationRequest":
            start = self._date(res.get("authoredOn"), source, "authoredOn")
            start_from = "authoredOn" if start else None
        else:
            period = _obj(res.get("effectivePeriod"))
            start = self._date(res.get("effectiveDateTime"), source, "effectiveDateTime") or self._date(
                period.get("start"), source, "effectivePeriod.start"
            )
            start_from = "effective" if start else None
            end = end or self._date(period.get("end"), source, "effectivePeriod.end")
        if duration is None and isinstance(res.get("dispenseRequest"), dict):
            duration = self._duration(
                res["dispenseRequest"].get("expectedSupplyDuration"), source, "dispenseRequest.expectedSupplyDuration"
            )
        return start, start_from, end, duration

    def _duration(self, raw: Any, source: str, label: str) -> int | None:
        days, problem = duration_days(raw)
        if problem:
            # As with a bad date: the medication still counts, the unusable duration is reported.
            self.unusable.append(UnusableResource(source, f"{label}: {problem}"))
        return days

    def _date(self, raw: Any, source: str, label: str) -> date | None:
        try:
            return _parse_date(raw)
        except ValueError as exc:
            # The medication still counts (an interacting drug matters without its date); the bad date
            # is reported rather than dropped.
            self.unusable.append(UnusableResource(source, f"{label}: {exc}; date ignored"))
            return None

    # -- result ------------------------------------------------------------------------------------

    def pregnancy(self, today: date | None) -> PregnancyStatus:
        """Pregnancy status from the Conditions, hCG tests and transfers (``cards.derive``)."""
        return pregnancy_status(
            self.conditions,
            self.labs.get(PREGNANCY_TEST, []) + self.labs.get(HCG, []),
            self.transfer_times,
            today,
            negative_window_days=self.index.pregnancy_test_max_age_days,
        )


_INDEXES: dict[int, tuple[Mapping[str, Any], CodeIndex]] = {}


def _index_for(codes: Mapping[str, Any]) -> CodeIndex:
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


def build_facts(
    request: HookRequest,
    data: Mapping[str, list[dict[str, Any]]],
    knowledge: Mapping[str, Any],
    *,
    today: date | None = None,
) -> PatientFacts:
    """Turn the resolved resources (every key; draft orders from the context) into PatientFacts.

    ``today`` dates the pregnancy tests (too old, or from before her latest transfer); None skips that.
    """
    index = _index_for(knowledge.get("codes") or {})
    ex = _Extractor(request, index)
    ex.run(data)
    # Newest first; results taken at the same time are ordered by source, never by their place in the
    # Bundle (they name each other in ``conflicts_with`` when their values differ).
    labs = {
        concept: tuple(sorted(ms, key=lambda m: (_newest_first(m.when), m.source), reverse=True))
        for concept, ms in ex.labs.items()
    }
    return PatientFacts(
        hook=request.hook,
        patient_id=request.patient_id,
        user_id=request.context.get("userId"),
        encounter_id=request.context.get("encounterId"),
        labs=labs,
        blood_pressure=tuple(sorted(ex.blood_pressure, key=lambda b: _newest_first(b.when), reverse=True)),
        conditions=tuple(ex.conditions),
        pregnancy=ex.pregnancy(today),
        transfers=tuple(sorted(ex.transfers, key=lambda t: _newest_first(t.when), reverse=True)),
        medications=tuple(ex.medications),
        unusable=tuple(ex.unusable),
        selections=request.selections,
        sex=ex.sex,
        birth_date=ex.birth_date,
    )

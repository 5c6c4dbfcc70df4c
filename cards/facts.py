"""The rules' input: small frozen dataclasses extracted from FHIR by ``service.hooks.extract``.

Every fact keeps where it came from (``source``, e.g. ``Observation/abc``) and, when it cannot be
acted on, why (``problem``), so a card can say what is missing instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Literal, TypeVar, cast

_T = TypeVar("_T")

ACTIONABLE_STATUSES = frozenset({"final", "amended", "corrected"})

# Lab / observation concept keys (see docs/data-profile.md). Extraction files results under these keys.
TH1_TH2_RATIO = "th1_th2_ratio"
TH1_PCT = "th1_pct"
TH2_PCT = "th2_pct"
TACROLIMUS = "tacrolimus"
CREATININE = "creatinine"
GLUCOSE = "glucose"
HBA1C = "hba1c"
POTASSIUM = "potassium"
CBC_PANEL = "cbc_panel"
HEMOGLOBIN = "hemoglobin"
WBC = "wbc"
PLATELETS = "platelets"
ALT = "alt"
AST = "ast"
BILIRUBIN = "bilirubin"
NK_CELLS = "nk_cells"
PREGNANCY_TEST = "pregnancy_test"
HCG = "hcg"

# Condition concept keys.
RIF = "recurrent_implantation_failure"
RPL = "recurrent_pregnancy_loss"
PREGNANCY = "pregnancy"
AUTOIMMUNE = "autoimmune_disease"
TRANSPLANT = "transplant_status"  # another tacrolimus indication (e.g. ICD-10-CM Z94.x)
PREGNANCY_OUTCOME = "pregnancy_outcome"  # delivery or loss: ends a pregnancy

# Where a medication goes. Only systemic routes raise or lower blood levels.
Route = Literal["oral", "intravenous", "topical", "vaginal", "ophthalmic", "other"]
LOCAL_ROUTES = frozenset({"topical", "vaginal", "ophthalmic"})

Recognition = Literal["rxnorm-ingredient", "rxnorm-product", "text", "cvx"]


@dataclass(frozen=True, init=False)
class Measurement:
    """One observation value, normalised to its concept's canonical unit.

    Built a few hundred times per hook call, so its ``__init__`` is written out: it fills the
    instance's ``__dict__`` in one step, where a frozen dataclass's generated ``__init__`` sets each
    of the 17 fields through ``object.__setattr__`` (three times the cost). It stays frozen (assigning
    a field raises), and equality, hash, repr and ``replace`` are the dataclass's own;
    tests/test_facts_measurement.py holds the parameters to the fields."""

    concept: str
    source: str  # "Observation/<id>" (or "Observation/<id>#component")
    code: str  # the code that matched, "system|code"
    status: str
    when: datetime | None
    value: float | None  # canonical unit; None when there is no usable number
    unit: str | None  # canonical unit, e.g. "mg/dL"
    shown: str  # the value as recorded, for display, e.g. "106 umol/L"
    problem: str | None = None  # why the value cannot be used (unit, missing value, ...)
    timing: Literal["trough", "unknown"] | None = None  # tacrolimus levels only
    fasting: bool | None = None  # glucose only
    derived_from: tuple[str, ...] = ()  # ratio computed from Th1 %/Th2 %: their sources
    reference_high: float | None = None  # upper limit of normal, canonical unit, when given
    coded_value: str | None = None  # e.g. "positive" / "negative" for a qualitative test
    # Other results of the same concept taken at the same time with a different value (their sources):
    # neither wins by bundle order; the rules show both and use the worse one for safety tiers.
    conflicts_with: tuple[str, ...] = ()
    # A limit reported instead of a value (">30 ng/mL", "<1.0"): the comparator and the limit in the
    # canonical unit. ``value`` stays None; rules that can decide on the conservative reading use it.
    comparator: str | None = None
    bound: float | None = None

    def __init__(
        self,
        concept: str,
        source: str,
        code: str,
        status: str,
        when: datetime | None,
        value: float | None,
        unit: str | None,
        shown: str,
        problem: str | None = None,
        timing: Literal["trough", "unknown"] | None = None,
        fasting: bool | None = None,
        derived_from: tuple[str, ...] = (),
        reference_high: float | None = None,
        coded_value: str | None = None,
        conflicts_with: tuple[str, ...] = (),
        comparator: str | None = None,
        bound: float | None = None,
    ) -> None:
        self.__dict__.update(
            concept=concept,
            source=source,
            code=code,
            status=status,
            when=when,
            value=value,
            unit=unit,
            shown=shown,
            problem=problem,
            timing=timing,
            fasting=fasting,
            derived_from=derived_from,
            reference_high=reference_high,
            coded_value=coded_value,
            conflicts_with=conflicts_with,
            comparator=comparator,
            bound=bound,
        )

    def naming_conflicts(self, sources: tuple[str, ...]) -> Measurement:
        """This result with ``conflicts_with`` set to ``sources``: ``dataclasses.replace``, which passes
        every field through ``__init__`` by name (five times the cost, for the many same-time results of
        a long history)."""
        other = object.__new__(Measurement)
        other.__dict__.update(self.__dict__, conflicts_with=sources)
        return other

    @property
    def is_final(self) -> bool:
        return self.status in ACTIONABLE_STATUSES

    @property
    def actionable(self) -> bool:
        """True when the value may be compared with a threshold."""
        return (
            self.is_final
            and self.problem is None
            and self.when is not None
            and (self.value is not None or self.coded_value is not None)
        )

    @property
    def derived(self) -> bool:
        return bool(self.derived_from)


@dataclass(frozen=True)
class BloodPressure:
    source: str
    status: str
    when: datetime | None
    systolic: float | None  # mm[Hg]
    diastolic: float | None
    problem: str | None = None

    @property
    def actionable(self) -> bool:
        return (
            self.status in ACTIONABLE_STATUSES
            and self.problem is None
            and self.when is not None
            and (self.systolic is not None or self.diastolic is not None)
        )


@dataclass(frozen=True)
class ConditionFact:
    concept: str  # RIF, RPL, PREGNANCY, AUTOIMMUNE
    source: str  # "Condition/<id>"
    code: str  # "system|code"
    display: str
    recorded: datetime | None = None
    onset: datetime | None = None
    abated: datetime | None = None  # abatementDateTime: the condition (e.g. a pregnancy) has ended


@dataclass(frozen=True)
class PregnancyStatus:
    """Whether she is pregnant, and on what evidence."""

    pregnant: bool | None  # None: nothing on record either way
    evidence: str  # human-readable: "Condition 77386006", "urine hCG positive on 2026-11-20", ...
    source: str | None = None
    when: datetime | None = None
    since: date | None = None  # when the pregnancy became known (or the transfer that began it)
    gestational_age_days: int | None = None  # today, when it can be told (e.g. from the transfer date)


@dataclass(frozen=True)
class TransferPlan:
    source: str  # "ServiceRequest/<id>", "Procedure/<id>", "Appointment/<id>"
    status: str
    when: datetime | None
    euploid: bool  # PGT-A-tested euploid blastocyst transfer
    from_draft_orders: bool = False


@dataclass(frozen=True)
class DosageTiming:
    """When in the day one dosage instruction is taken, as the order states it."""

    time_of_day: tuple[str, ...] = ()  # timing.repeat.timeOfDay, e.g. ("20:00:00",)
    when: tuple[str, ...] = ()  # timing.repeat.when (FHIR EventTiming), e.g. ("PCV",)
    text: str = ""  # the sig
    patient_instruction: str = ""
    # Whether timeOfDay / when were sent as arrays: a rewritten sig keeps only timing stated as FHIR states it.
    time_of_day_listed: bool = False
    when_listed: bool = False


@dataclass(frozen=True, init=False)
class MedicationFact:
    """A MedicationRequest / MedicationStatement, recognised and with its daily dose computed.

    Its ``__init__`` is written out, as ``Measurement``'s is: it fills the instance's ``__dict__`` in
    one step, where the frozen dataclass's generated one sets each of the 35 fields through
    ``object.__setattr__`` (three times the cost, for every order of every call). Equality, hash,
    repr and ``replace`` are the dataclass's own; tests/test_facts_measurement.py holds the parameters
    to the fields."""

    source: str  # "MedicationRequest/<id>"
    resource_type: str
    status: str
    display: str  # what the order says the drug is (text / display), for the card
    ingredients: tuple[str, ...]  # knowledge-base drug keys, e.g. ("tacrolimus",); () unrecognised
    recognised_by: Recognition | None
    matched: str | None  # the code or word that matched, e.g. "RxNorm 198377"
    strength_mg: float | None = None  # per unit (capsule), from the product table
    release: Literal["immediate", "extended"] | None = None
    daily_dose_mg: float | None = None
    dose_problem: str | None = None  # why the daily dose is unknown
    doses_per_day: float | None = None
    start: date | None = None
    start_from: Literal["boundsPeriod", "authoredOn", "effective"] | None = None  # effective: MedicationStatement
    end: date | None = None
    duration_days: int | None = None
    is_draft: bool = False  # came from context.draftOrders
    is_selected: bool = False  # named in context.selections
    route: Route | None = None  # from Dosage.route, else the product's dose form, else the text
    prior_prescription: str | None = None  # "MedicationRequest/<id>" this order replaces
    indications: tuple[str, ...] = ()  # reasonCode codes ("system|code") and texts, lower-cased
    # What the rules read of the order itself, extracted so that no FHIR reaches them:
    reference: str | None = None  # "MedicationRequest/<id>" when the order has an id (what an action may name)
    reason_references: tuple[str, ...] = ()  # reasonReference displays, lower-cased ("lupus nephritis")
    has_dosage_instruction: bool = False  # the order states a dosageInstruction at all
    coded: bool = False  # its medicationCodeableConcept carries a code (besides any name)
    course_days: int | None = None  # how many days it runs by its structured timing; None: it does not say
    single_dose: bool = False  # one dose only, by its structured timing or, without one, its sig's words
    dosage_timings: tuple[DosageTiming, ...] = ()  # one per dosage instruction
    # What a suggested change of the order depends on (``cards.orders.build_order``):
    instructions_rewritable: bool = False  # dosageInstruction: one or more objects, nothing else
    dose_quantities: int = 0  # how many doseQuantity values its instructions state
    dose_unit: str = ""  # the code (else the unit) of the dose quantity, as sent
    by_reference: bool = False  # names the drug by medicationReference (a Medication resource)
    concept_text: str = ""  # medicationCodeableConcept.text
    timing_rewritable: bool = True  # every instruction's timing and timing.repeat absent or an object
    # Which order of this call the fact was read from: the render step applies a suggested change to it.
    key: str = field(default="", compare=False)

    def __init__(
        self,
        source: str,
        resource_type: str,
        status: str,
        display: str,
        ingredients: tuple[str, ...],
        recognised_by: Recognition | None,
        matched: str | None,
        strength_mg: float | None = None,
        release: Literal["immediate", "extended"] | None = None,
        daily_dose_mg: float | None = None,
        dose_problem: str | None = None,
        doses_per_day: float | None = None,
        start: date | None = None,
        start_from: Literal["boundsPeriod", "authoredOn", "effective"] | None = None,
        end: date | None = None,
        duration_days: int | None = None,
        is_draft: bool = False,
        is_selected: bool = False,
        route: Route | None = None,
        prior_prescription: str | None = None,
        indications: tuple[str, ...] = (),
        reference: str | None = None,
        reason_references: tuple[str, ...] = (),
        has_dosage_instruction: bool = False,
        coded: bool = False,
        course_days: int | None = None,
        single_dose: bool = False,
        dosage_timings: tuple[DosageTiming, ...] = (),
        instructions_rewritable: bool = False,
        dose_quantities: int = 0,
        dose_unit: str = "",
        by_reference: bool = False,
        concept_text: str = "",
        timing_rewritable: bool = True,
        key: str = "",
    ) -> None:
        self.__dict__.update(
            source=source,
            resource_type=resource_type,
            status=status,
            display=display,
            ingredients=ingredients,
            recognised_by=recognised_by,
            matched=matched,
            strength_mg=strength_mg,
            release=release,
            daily_dose_mg=daily_dose_mg,
            dose_problem=dose_problem,
            doses_per_day=doses_per_day,
            start=start,
            start_from=start_from,
            end=end,
            duration_days=duration_days,
            is_draft=is_draft,
            is_selected=is_selected,
            route=route,
            prior_prescription=prior_prescription,
            indications=indications,
            reference=reference,
            reason_references=reason_references,
            has_dosage_instruction=has_dosage_instruction,
            coded=coded,
            course_days=course_days,
            single_dose=single_dose,
            dosage_timings=dosage_timings,
            instructions_rewritable=instructions_rewritable,
            dose_quantities=dose_quantities,
            dose_unit=dose_unit,
            by_reference=by_reference,
            concept_text=concept_text,
            timing_rewritable=timing_rewritable,
            key=key,
        )

    def has(self, ingredient: str) -> bool:
        return ingredient in self.ingredients

    @property
    def systemic(self) -> bool:
        """False for topical, vaginal and ophthalmic products; an unknown route counts as systemic."""
        return self.route not in LOCAL_ROUTES


@dataclass(frozen=True)
class UnusableResource:
    """A resource we received but could not use; reported, never silently dropped."""

    source: str
    reason: str
    what: str = ""  # what the record is, in words for a card ("the order for fluconazole 150 mg")
    order_in_focus: bool = False  # a draft order the hook is about (selected, or any draft at signing)


@dataclass(frozen=True)
class PatientFacts:
    """Everything the rules know about the patient for one hook call."""

    hook: str
    patient_id: str
    user_id: str | None = None
    encounter_id: str | None = None
    labs: Mapping[str, tuple[Measurement, ...]] = field(default_factory=dict)  # newest first
    blood_pressure: tuple[BloodPressure, ...] = ()  # newest first
    conditions: tuple[ConditionFact, ...] = ()
    pregnancy: PregnancyStatus = PregnancyStatus(pregnant=None, evidence="nothing on record")
    transfers: tuple[TransferPlan, ...] = ()
    medications: tuple[MedicationFact, ...] = ()
    unusable: tuple[UnusableResource, ...] = ()
    selections: tuple[str, ...] = ()
    sex: str | None = None  # Patient.gender: "female", "male", "other", "unknown"
    birth_date: date | None = None
    # Prefetch keys whose data could not be had (key → why): rules needing them are skipped and
    # one card says which checks could not be made.
    missing: Mapping[str, str] = field(default_factory=dict)
    # Orders and statements that have ended (stopped, completed): an interacting drug's effect outlasts
    # its last dose, and a recent tacrolimus order is evidence of therapy. Never in ``medications``.
    ended_medications: tuple[MedicationFact, ...] = ()
    as_of: date | None = None  # the day the facts were read for (the clinic's today)
    # Prefetch keys of which only part could be had (key → why): the checks reading them run on what
    # was read, and the missing-data card says their data were partial.
    incomplete: Mapping[str, str] = field(default_factory=dict)
    # Resources whose subject is another patient than the hook's patientId: refused, never used.
    other_patient_records: int = 0

    def results(self, concept: str) -> tuple[Measurement, ...]:
        return self.labs.get(concept, ())

    def latest(self, concept: str, *, actionable: bool = True) -> Measurement | None:
        """Newest result of a concept, by default the newest one that can be acted on."""
        for m in self.results(concept):
            if m.actionable or not actionable:
                return m
        return None

    def has_condition(self, concept: str) -> bool:
        return any(c.concept == concept for c in self.conditions)

    def medications_with(self, ingredient: str) -> tuple[MedicationFact, ...]:
        return self._medications_by_ingredient.get(ingredient, ())

    def derived(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """``compute()``, worked out once per ``key`` for these facts: what several rules derive
        from the same facts (the tacrolimus orders in focus, the protocol's scope, the interaction
        decisions) is computed once per call. ``key`` names the derivation and everything besides
        the facts its value depends on; the value must not be changed by whoever reads it. It lives
        as long as these facts (a ``cached_property``, not a field)."""
        memo = self._derived
        if key in memo:
            return cast(_T, memo[key])
        value = memo[key] = compute()
        return value

    @cached_property
    def _derived(self) -> dict[Hashable, object]:
        return {}

    @cached_property
    def _medications_by_ingredient(self) -> Mapping[str, tuple[MedicationFact, ...]]:
        """``medications`` by ingredient, in their order: the rules ask a score of times a call.
        Built at the first question (``cached_property`` stores it beside the fields, not as one:
        equality, hash, repr and ``replace`` ignore it)."""
        found: dict[str, list[MedicationFact]] = {}
        for m in self.medications:
            for ingredient in dict.fromkeys(m.ingredients):
                found.setdefault(ingredient, []).append(m)
        return {ingredient: tuple(ms) for ingredient, ms in found.items()}

"""FHIR JSON to facts (``cards.facts``): the extract stage of the pipeline, a lenient mapping.

Input contract: ``docs/data-profile.md``. Every code list comes from ``cards/knowledge/codes.yaml``
(site-overridable). Parsing is lenient: objects where arrays are due, Bundles without ``type``,
missing fields, as real clients send them. A resource that looks like ours but cannot be used becomes
an ``UnusableResource`` with the reason and a description in words; resources of other kinds or codes
are simply not ours and are skipped. The daily dose is read from the Dosage elements here
(``service.hooks.extract.dosage``); the clinical derivations live in ``cards``: hCG cut-off, Th1/Th2
ratio and pregnancy status (``cards.derive``). What this
module decides itself is documented where it is taken (``parse_fhir_datetime``, plausibility limits,
same-time conflicts, route).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

from cards.derive import pregnancy_status
from cards.facts import HCG, PREGNANCY_TEST, Measurement, PatientFacts, PregnancyStatus, UnusableResource
from cards.knowledge_model import typed
from service.hooks.base import HookRequest
from service.hooks.extract.codes import CodeIndex, _index_for
from service.hooks.extract.common import _as_list, _flatten, _Unusable, parse_fhir_datetime
from service.hooks.extract.records import RecordReader
from service.hooks.extract.usual_medications import UsualMedicationReader
from service.hooks.extract.usual_observations import UsualObservationReader

__all__ = ["CodeIndex", "Extracted", "build_facts", "extract", "parse_fhir_datetime"]


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _newest_first(when: datetime | None) -> tuple[bool, datetime]:
    return (when is not None, when or _OLDEST)


_WHEN_AND_SOURCE = attrgetter("when", "source")


def _newest_results_first(results: list[Measurement]) -> tuple[Measurement, ...]:
    """A concept's results newest first; results taken at the same time ordered by source, never by
    their place in the Bundle (they name each other in ``conflicts_with`` when their values differ)."""
    if all(m.when is not None for m in results):
        # Every result timed (the usual case): the first half of ``_newest_first`` is True for all, so
        # the time and the source alone give the same order, read without a key built in Python.
        return tuple(sorted(results, key=_WHEN_AND_SOURCE, reverse=True))
    return tuple(sorted(results, key=lambda m: (_newest_first(m.when), m.source), reverse=True))


# The reading of each resource type this service takes facts from (method names of _Extractor).
_HANDLERS = {
    "Observation": "_observation",
    "Condition": "_condition",
    "ServiceRequest": "_service_request",
    "Procedure": "_procedure",
    "Appointment": "_appointment",
    "MedicationRequest": "_medication",
    "MedicationStatement": "_medication",
    "Immunization": "_immunization",
    "Patient": "_patient",
}


def _another_patient(reference: str, patient_id: str) -> bool | None:
    """Whether a subject reference names a Patient other than ``patient_id``; None when it names no
    Patient (a Group), which says nothing either way."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient":
        return parts[-1] != patient_id
    return None


class _Extractor(UsualObservationReader, RecordReader, UsualMedicationReader):
    """One extraction: every resource of the call, read once by its family's reader."""

    # Each resource type's reader (filled in below the class from ``_HANDLERS``).
    _readers: dict[str, Callable[[_Extractor, dict[str, Any], bool], None]] = {}

    def __init__(self, request: HookRequest, index: CodeIndex) -> None:
        super().__init__(request, index)
        # Each subject reference's answer in this call (``_of_another_patient``).
        self._patient_refs: dict[str, bool | None] = {}

    # -- collection --------------------------------------------------------------------------------

    def run(self, data: Mapping[str, list[dict[str, Any]]]) -> None:
        """Read every resource of every key once (by type and id), draft orders first."""
        # Draft orders first: a draft and a stored resource with the same id is the draft being edited.
        drafts = self.request.draft_orders
        stored = [r for values in data.values() for r in _flatten(_as_list(values))]
        self.resources = (drafts, stored)
        handled: set[tuple[str, str]] = set()
        readers = self._readers
        for draft, resources in ((True, drafts), (False, stored)):
            for resource in resources:
                kind = resource.get("resourceType") if isinstance(resource, dict) else None
                if not isinstance(kind, str):
                    self.unusable.append(UnusableResource("(unknown)", "not a FHIR resource (no resourceType)"))
                    continue
                rid = resource.get("id")
                if isinstance(rid, str) and rid:
                    if (kind, rid) in handled:
                        continue
                    handled.add((kind, rid))
                if not draft and self._of_another_patient(resource):
                    self.other_patient += 1  # refused, never used: counted for the data-quality card
                    continue
                reader = readers.get(kind)
                if reader is None:
                    continue  # Medication, Encounter ...: context, not facts
                try:
                    reader(self, resource, draft)
                except _Unusable as exc:
                    self._unusable(resource, draft, str(exc))
                except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
                    # Safety net for shapes no rule above foresaw: report, never fail the hook call.
                    self._unusable(resource, draft, f"unexpected structure ({type(exc).__name__}: {exc})")
        self._pair_blood_pressure()
        self._derive_ratios()
        self._flag_conflicts()

    def _of_another_patient(self, resource: Mapping[str, Any]) -> bool:
        """True when the resource's subject (or patient) is a Patient other than the hook's patientId.

        A reference of another type (a Group) or none at all says nothing either way. Each reference
        is read once per call (``_patient_refs``): a call's resources name the same patient."""
        for field in ("subject", "patient"):
            ref = resource.get(field)
            reference = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(reference, str):
                continue
            if reference in self._patient_refs:
                answer = self._patient_refs[reference]
            else:
                answer = self._patient_refs[reference] = _another_patient(reference, self.request.patient_id)
            if answer is not None:
                return answer
        return False

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


_Extractor._readers = {kind: getattr(_Extractor, name) for kind, name in _HANDLERS.items()}


@dataclass(frozen=True)
class Extracted:
    """The facts of one call, and the orders they were read from by ``MedicationFact.key`` (for the render
    step, which applies a suggested change to the order itself)."""

    facts: PatientFacts
    orders: Mapping[str, Mapping[str, Any]]


def build_facts(
    request: HookRequest,
    data: Mapping[str, list[dict[str, Any]]],
    knowledge: Mapping[str, Any],
    *,
    today: date | None = None,
    typed: bool = True,
) -> PatientFacts:
    """Turn the resolved resources (every key; draft orders from the context) into PatientFacts.

    ``today`` dates the pregnancy tests (too old, or from before her latest transfer); None skips that.
    ``typed=False`` reads every Observation and MedicationRequest by the lenient path alone (the
    differential test's reference).
    """
    return extract(request, data, knowledge, today=today, typed_observations=typed, typed_medications=typed).facts


def extract(
    request: HookRequest,
    data: Mapping[str, list[dict[str, Any]]],
    knowledge: Mapping[str, Any],
    *,
    today: date | None = None,
    typed_observations: bool = True,
    typed_medications: bool = True,
) -> Extracted:
    """``build_facts``, with the table of the orders the facts were read from."""
    index = _index_for(typed(knowledge).codes)
    ex = _Extractor(request, index)
    ex.typed_observations = typed_observations
    ex.typed_medications = typed_medications
    ex.run(data)
    labs = {concept: _newest_results_first(ms) for concept, ms in ex.labs.items()}
    facts = PatientFacts(
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
        ended_medications=tuple(ex.ended_medications),
        other_patient_records=ex.other_patient,
        as_of=today,
        unusable=tuple(ex.unusable),
        selections=request.selections,
        sex=ex.sex,
        birth_date=ex.birth_date,
    )
    return Extracted(facts, ex.orders)

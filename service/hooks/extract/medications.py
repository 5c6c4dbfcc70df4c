"""MedicationRequest and MedicationStatement: which drug, dose, route, course dates."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any, Literal

from cards.facts import MedicationFact, UnusableResource
from cards.knowledge_model.codes import Product
from cards.recognise import RXNORM_SYSTEMS, Recognised
from service.hooks.extract.common import (
    DRAFT_MEDREQ_STATUSES,
    ENDED_MED_STATUSES,
    MEDREQ_STATUSES,
    MEDSTATEMENT_STATUSES,
    _blank_medication,
    _codings,
    _describe,
    _dicts,
    _obj,
    _parse_date,
    _ref_of,
    _status,
    _texts,
    _Unusable,
)
from service.hooks.extract.dosage import (
    daily_dose,
    dosage_timings,
    duration_days,
    single_dose,
    structured_course_days,
)
from service.hooks.extract.reader import _Reader


def order_shape(res: Mapping[str, Any]) -> dict[str, Any]:
    """What the rules read of the order itself (its id, reasons, dosage timing, course), as typed values."""
    days = structured_course_days(res)
    concept = res.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return {
        **order_references(res),
        "has_dosage_instruction": bool(res.get("dosageInstruction")),
        "coded": isinstance(codings, list) and any(isinstance(c, dict) and c.get("code") for c in codings),
        "course_days": days,
        "single_dose": single_dose(res, days),
        "dosage_timings": dosage_timings(res),
        **_layout(res),
    }


def order_references(res: Mapping[str, Any]) -> dict[str, Any]:
    """The order's own reference and the displays of its reasonReferences, as ``order_shape`` gives them."""
    rid = res.get("id")
    refs = res.get("reasonReference")
    return {
        "reference": f"{res.get('resourceType')}/{rid}" if rid else None,
        "reason_references": ()
        if refs is None
        else tuple(
            str(r["display"]).strip().lower()
            for r in (refs if isinstance(refs, list) else [refs])
            if isinstance(r, dict) and isinstance(r.get("display"), str)
        ),
    }


def _layout(res: Mapping[str, Any]) -> dict[str, Any]:
    """What a suggested change of the order depends on: the shape of its instructions and dose."""
    raw = res.get("dosageInstruction")
    instructions = [raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    quantities: list[Mapping[str, Any]] = []
    timing_ok = True
    for instruction in instructions:
        if not isinstance(instruction, dict):
            continue
        dose_and_rate = instruction.get("doseAndRate")
        for item in dose_and_rate if isinstance(dose_and_rate, list) else [dose_and_rate]:
            if isinstance(item, dict) and isinstance(item.get("doseQuantity"), dict):
                quantities.append(item["doseQuantity"])
        timing = instruction.get("timing", {})
        timing_ok = timing_ok and isinstance(timing, dict) and isinstance(timing.get("repeat", {}), dict)
    concept = res.get("medicationCodeableConcept")
    return {
        "instructions_rewritable": bool(instructions) and all(isinstance(i, dict) for i in instructions),
        "dose_quantities": len(quantities),
        "dose_unit": str(quantities[0].get("code") or quantities[0].get("unit") or "").strip() if quantities else "",
        "by_reference": isinstance(res.get("medicationReference"), dict),
        "concept_text": str(concept.get("text") or "") if isinstance(concept, dict) else "",
        "timing_rewritable": timing_ok,
    }


def medication_status(res: Mapping[str, Any], rtype: str, draft: bool) -> tuple[str, bool] | None:
    """(status, ended) of an order or statement this service reads (ended: stopped or completed, kept
    apart); None for one it skips (cancelled, entered-in-error, a stored draft ...)."""
    if rtype == "MedicationRequest":
        # The sandbox's first draft has no status yet: a draft order is a draft.
        status = _status(res, "draft" if draft else "unknown")
        allowed = DRAFT_MEDREQ_STATUSES if draft else MEDREQ_STATUSES
    else:
        status = _status(res, "unknown")
        allowed = MEDSTATEMENT_STATUSES
    ended = not draft and status in ENDED_MED_STATUSES
    if status not in allowed and not ended:
        return None
    return status, ended


# (start, where the start came from, end, course length in days) of an order, as ``_period`` reads it.
_Period = tuple[date | None, Literal["boundsPeriod", "authoredOn", "effective"] | None, date | None, int | None]


class MedicationReader(_Reader):
    """Reads medication orders and statements into MedicationFacts."""

    def _medication(self, res: dict[str, Any], draft: bool) -> None:
        rtype = str(res["resourceType"])
        decided = medication_status(res, rtype, draft)
        if decided is None:
            return
        if res.get("doNotPerform") is True:
            # An order NOT to give the drug: never therapy, never an interaction; named, not dropped.
            self.unusable.append(
                UnusableResource(
                    _ref_of(res),
                    "doNotPerform: an order not to give this medication; not counted as taken",
                    what=_describe(res),
                )
            )
            return
        if draft and _blank_medication(res):
            return  # an order form not filled in yet (a client's blank draft): normal input, nothing to check
        source = _ref_of(res)
        concepts, display, fallback_texts = self._drug_of(res)
        codings = _codings(concepts)
        texts = _texts(concepts) + fallback_texts
        recognised, display, strength, release = self._identify(res, draft, source, codings, texts, display)
        instructions = _dicts(res.get("dosageInstruction" if rtype == "MedicationRequest" else "dosage"))
        dose = daily_dose(instructions, strength, recognised.product_code, self._dose_ceiling(recognised))
        self._record(
            res, rtype, draft, decided, source, recognised, display, strength, release, dose, instructions, texts
        )

    def _identify(
        self,
        res: Mapping[str, Any],
        draft: bool,
        source: str,
        codings: list[dict[str, Any]],
        texts: list[str],
        display: str,
    ) -> tuple[Recognised, str, float | None, str | None]:
        """(the drug recognised, its display, strength per unit, release) of an order naming its drug by
        ``codings`` (each with a string code, as ``_codings`` gives them) and ``texts`` (``_texts`` of its
        concepts, then the reference's display); a problem recognising it is reported."""
        recognised = self.index.drugs.recognise(
            [str(c["code"]) for c in codings if c.get("system") in RXNORM_SYSTEMS], texts
        )
        if recognised.problem:
            self.unusable.append(UnusableResource(source, recognised.problem))
        recognised = self._vaccine_of(codings, recognised)
        product = recognised.product
        if not display:
            codes = [f"{str(c.get('system') or '').rsplit('/', 1)[-1]} {c['code']}".strip() for c in codings]
            display = product.display if product else (codes[0] if codes else "(unnamed medication)")
            if not recognised.ingredients and not product and draft:
                # Only a code this service does not know, and no name: nobody can tell what is ordered.
                self._unusable(
                    res,
                    draft,
                    f"the medication is given only as a code this service does not know ({display}) and has no name",
                )
        strength = product.strength_mg if product else None
        release: str | None = product.release if product else None
        if release is None:
            # No product code says it: a brand name in the text may (Envarsus XR is extended-release).
            release = self.index.drugs.release_in(texts, recognised.ingredients)
        return recognised, display, strength, release

    def _dose_ceiling(self, recognised: Recognised) -> float | None:
        """The lowest daily-dose limit (maximum, plausibility) of the drug's ingredients, or None."""
        ceilings = [
            table[i]
            for table in (self.index.max_daily_mg, self.index.plausible_daily_mg)
            for i in recognised.ingredients
            if i in table
        ]
        return min(ceilings) if ceilings else None

    def _record(
        self,
        res: dict[str, Any],
        rtype: str,
        draft: bool,
        decided: tuple[str, bool],
        source: str,
        recognised: Recognised,
        display: str,
        strength: float | None,
        release: str | None,
        dose: tuple[float | None, float | None, str | None],
        instructions: list[dict[str, Any]],
        texts: list[str],
        shape: dict[str, Any] | None = None,
        period: _Period | None = None,
    ) -> None:
        """Add the MedicationFact of an order read this far (its course dates, route, what it replaces,
        why it is given, its shape: ``order_shape`` and ``_period``, or ``shape`` and ``period`` when
        the caller has worked them out)."""
        status, ended = decided
        daily, per_day, dose_problem = dose
        start, start_from, end, duration = self._period(res, rtype, instructions, source) if period is None else period
        (self.ended_medications if ended else self.medications).append(
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
                route=self._route(instructions, recognised.product, texts),  # type: ignore[arg-type]
                prior_prescription=self._prior(res) if "priorPrescription" in res else None,
                indications=self._indications(res) if "reasonCode" in res else (),
                key=self._keep(res, source),
                **(order_shape(res) if shape is None else shape),
            )
        )

    def _immunization(self, res: dict[str, Any], draft: bool) -> None:
        """A vaccine given (status completed), as an ended medication dated by its occurrence: a live
        vaccine given while on tacrolimus matters for weeks. Vaccines this service does not read are
        not its concern; not-done and entered-in-error records are no vaccination."""
        if _status(res, "unknown") != "completed":
            return
        source = _ref_of(res)
        concepts = [res.get("vaccineCode")]
        recognised = self._vaccine(concepts, self._recognise(concepts, []))
        if not recognised.ingredients:
            return
        given = self._date(res.get("occurrenceDateTime"), source, "occurrenceDateTime")
        names = _texts(res.get("vaccineCode"))
        self.ended_medications.append(
            MedicationFact(
                source=source,
                resource_type="Immunization",
                status="completed",
                display=names[0] if names else "a vaccine",
                ingredients=tuple(recognised.ingredients),
                recognised_by=recognised.by,
                matched=recognised.matched,
                start=given,
                start_from="effective" if given else None,
                end=given,
                route=None,
                key=self._keep(res, source),
                **order_shape(res),
            )
        )

    def _route(self, instructions: list[dict[str, Any]], product: Product | None, texts: list[str]) -> str | None:
        """Dosage.route, else the product's dose form, else words in the order's texts (``texts``: its
        concepts' and its reference's)."""
        for dosage in instructions:
            route = self.index.route_of(dosage.get("route"), [], [])
            if route:
                return route
        form = [text for text in (product.dose_form, product.display) if text] if product else []
        order_texts = texts + [str(d["text"]) for d in instructions if isinstance(d.get("text"), str)]
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
        return self._vaccine_of(_codings(concepts), recognised)

    def _vaccine_of(self, codings: list[dict[str, Any]], recognised: Recognised) -> Recognised:
        """``_vaccine`` of the codings (each with a string code, as ``_codings`` gives them)."""
        hits = [
            c["code"]
            for c in codings
            if c.get("system") == self.index.vaccine_system and c["code"] in self.index.vaccines
        ]
        if not hits:
            return recognised
        keys = tuple(dict.fromkeys([*recognised.ingredients, *(self.index.vaccines[c] for c in hits)]))
        coded = recognised.by not in (None, "text")  # an RxNorm code already said it; a name says less
        return replace(
            recognised,
            ingredients=keys,
            by=recognised.by if coded else "cvx",
            matched=recognised.matched if coded else f"CVX {', '.join(hits)}",
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

    def _period(self, res: Mapping[str, Any], rtype: str, dosages: list[Any], source: str) -> _Period:
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
        if raw is None:
            return None  # absent: no day and nothing to report (``_parse_date`` of None)
        day, problem = _day(raw) if type(raw) is str else _day.__wrapped__(raw)
        if problem is not None:
            # The medication still counts (an interacting drug matters without its date); the bad date
            # is reported rather than dropped.
            self.unusable.append(UnusableResource(source, f"{label}: {problem}; date ignored"))
        return day


@functools.lru_cache(maxsize=4096)
def _day(raw: Any) -> tuple[date | None, str | None]:
    """(the day of a FHIR date, why it cannot be read); remembered for strings, as a patient's orders
    come back call after call with the same dates."""
    try:
        return _parse_date(raw), None
    except ValueError as exc:
        return None, str(exc)
